"""The computed-field evaluator (core/expressions.py) directly: values, null safety, what it
refuses, and one evaluator per thread that never mixes two evaluations' data."""

from __future__ import annotations

import threading

import pytest

from recordbase.core.expressions import compile_expression, evaluate

PRICES = {"m1": {"prompt": 2.0}, "m2": {"prompt": 3.0}}


def test_values_paths_constants_and_failures() -> None:
    cost = compile_expression("usage.prompt_tokens * prices[model]['prompt'] / 1000")
    data = {"model": "m2", "usage": {"prompt_tokens": 500}}
    assert evaluate(cost, data, {"prices": PRICES}) == 1.5
    # A missing path is null, and null in arithmetic is no value; so is an unknown model.
    assert evaluate(cost, {"model": "m2"}, {"prices": PRICES}) is None
    assert evaluate(cost, {"model": "x", "usage": {"prompt_tokens": 1}}, {"prices": PRICES}) is None
    assert evaluate(compile_expression("coalesce(a.b.c, 'none')"), {}, {}) == "none"
    assert evaluate(compile_expression("data"), {"k": [1, 2]}, {}) == {"k": [1, 2]}
    assert evaluate(compile_expression("round"), {}, {}) is None  # not a JSON value


@pytest.mark.parametrize(
    "source",
    ["__import__('os')", "open('x')", "(1).__class__", "data.__class__", "[x for x in data]"],
)
def test_what_cannot_be_reached_is_refused_when_saved(source: str) -> None:
    with pytest.raises(ValueError):
        compile_expression(source)


def test_threads_evaluating_at_once_each_see_their_own_data() -> None:
    expr = compile_expression("n * 2 + len(tags) if kind == 'a' else n - 1")
    wrong: list[tuple[int, object]] = []
    start = threading.Barrier(4)

    def run(offset: int) -> None:
        start.wait()
        for i in range(2000):
            n = offset * 100_000 + i
            kind = "a" if i % 2 else "b"
            got = evaluate(expr, {"n": n, "kind": kind, "tags": [1] * (i % 3)}, {})
            want = n * 2 + i % 3 if kind == "a" else n - 1
            if got != want:
                wrong.append((n, got))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
