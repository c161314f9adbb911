"""What the bench measures: each scenario is recordbase (A) beside its references (B, C, ...).

A scenario's measures are run in rotation, A B C A B C ..., one round at a time, so every ratio
compares figures taken minutes apart in the same run (this machine's speed drifts). A ratio is
computed per round and reported as the median with min-max.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sample:
    rate: float  # requests (or rows) per second, by the measure's unit
    p99_ms: float
    failed: int = 0
    note: str = ""


@dataclass
class Measure:
    label: str
    unit: str  # "req/s" | "rows/s" | "q/s" | "tx/s"
    run: Callable[[], Sample]
    samples: list[Sample] = field(default_factory=list)
    # A short unmeasured run before the first round (reads only): see Scenario.run.
    warm: Callable[[], object] | None = None


@dataclass
class Target:
    """recordbase / `ref` must be >= `at_least` (a fraction, or a multiple when `times`)."""

    ref: str
    name: str
    at_least: float | None = None
    stretch: float | None = None
    times: bool = False
    p99_at_most: float | None = None  # recordbase p99 / ref p99 must be <= this


@dataclass
class Scenario:
    name: str
    backend: str
    a: Measure
    refs: list[Measure]
    targets: list[Target]
    skip: str | None = None
    p99_limit_ms: float | None = None  # an absolute bound on recordbase's p99
    p99_target: str = ""

    def run(self, rounds: int, log: Callable[[str], None]) -> None:
        if self.a.unit == "q/s":
            # Reads: the first pass over a query's pages fetches them from the disk (this
            # machine's page cache does not keep a copied database for long), and whoever ran
            # first in round 1 paid for it alone (an indexed page at 29 q/s, then 544).
            for m in (self.a, *self.refs):
                if m.warm is not None:
                    m.warm()
            log(f"  [{self.name}/{self.backend}] warmed up (unmeasured)")
        for r in range(rounds):
            for m in (self.a, *self.refs):
                sample = m.run()
                m.samples.append(sample)
                extra = f" ({sample.failed} failed)" if sample.failed else ""
                log(
                    f"  [{self.name}/{self.backend}] round {r + 1}: {m.label}: "
                    f"{sample.rate:,.0f} {m.unit}, p99 {sample.p99_ms:.1f} ms{extra}"
                )


def spread(values: list[float], fmt: Callable[[float], str]) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt(med)
    return f"{fmt(med)} [{fmt(min(values))}\u2013{fmt(max(values))}]"  # an en dash


def ratios(a: Measure, b: Measure) -> list[float]:
    return [x.rate / y.rate for x, y in zip(a.samples, b.samples, strict=False) if y.rate]


def _num(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"


def _ratio(v: float, times: bool) -> str:
    return f"{v:.1f}x" if times else f"{v * 100:.0f}%"


def verdict(values: list[float], t: Target) -> str:
    if not values or t.at_least is None:
        return ""
    med = statistics.median(values)
    if t.stretch is not None and med >= t.stretch:
        return "met (stretch)"
    return "met" if med >= t.at_least else "SHORT"


def table(scenarios: list[Scenario], extra_rows: list[list[str]]) -> str:
    head = ["scenario", "recordbase", "reference", "reference figure", "ratio", "target", "verdict"]
    rows: list[list[str]] = []
    for s in scenarios:
        title = f"{s.name} ({s.backend})"
        if s.skip:
            rows.append([title, "skipped", s.skip, "", "", "", ""])
            continue
        a_fig = spread([x.rate for x in s.a.samples], _num) + f" {s.a.unit}"
        by_label = {m.label: m for m in s.refs}
        if not s.targets:
            rows.append([title, a_fig, "", "", "", "", ""])
        for t in s.targets:
            ref = by_label[t.ref]
            values = ratios(s.a, ref)
            goal = "" if t.at_least is None else f"{t.name} ≥ {_ratio(t.at_least, t.times)}"
            if t.stretch is not None:
                goal += f" (stretch {_ratio(t.stretch, t.times)})"
            rows.append(
                [
                    title,
                    a_fig,
                    ref.label,
                    spread([x.rate for x in ref.samples], _num) + f" {ref.unit}",
                    spread(values, lambda v, t=t: _ratio(v, t.times)),
                    goal,
                    verdict(values, t),
                ]
            )
            if t.p99_at_most is not None:
                p99s = [
                    x.p99_ms / y.p99_ms
                    for x, y in zip(s.a.samples, ref.samples, strict=False)
                    if y.p99_ms
                ]
                ok = p99s and statistics.median(p99s) <= t.p99_at_most
                rows.append(
                    [
                        title + " p99",
                        spread([x.p99_ms for x in s.a.samples], _num) + " ms",
                        ref.label,
                        spread([x.p99_ms for x in ref.samples], _num) + " ms",
                        spread(p99s, lambda v: f"{v:.1f}x"),
                        f"{t.name} p99 ≤ {t.p99_at_most:g}x",
                        "met" if ok else "SHORT",
                    ]
                )
        if s.p99_limit_ms is not None:
            p99s = [x.p99_ms for x in s.a.samples]
            ok = p99s and statistics.median(p99s) <= s.p99_limit_ms
            rows.append(
                [
                    title + " p99",
                    spread(p99s, _num) + " ms",
                    "",
                    "",
                    "",
                    f"{s.p99_target} p99 ≤ {s.p99_limit_ms:g} ms",
                    "met" if ok else "SHORT",
                ]
            )
    rows += extra_rows
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def results_json(scenarios: list[Scenario]) -> list[dict[str, Any]]:
    out = []
    for s in scenarios:
        out.append(
            {
                "scenario": s.name,
                "backend": s.backend,
                "skip": s.skip,
                "measures": {m.label: [vars(x) for x in m.samples] for m in (s.a, *s.refs)},
            }
        )
    return out
