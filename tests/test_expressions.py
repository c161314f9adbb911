"""The computed-field evaluator (core/expressions.py) directly: values, null safety, what it
refuses, threads evaluating at once, and the compiled closures against simpleeval's own walk
of the same trees."""

from __future__ import annotations

import ast
import threading
from typing import Any

import pytest
from simpleeval import FeatureNotAvailable, SimpleEval

from recordbase.core.expressions import (
    FUNCTIONS,
    Expression,
    _is_json,
    compile_expression,
    evaluate,
)

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


# The reference: simpleeval walking the tree at each evaluation, with the language's names
# and JSON-only attribute access, as core/expressions.py evaluated before it compiled trees
# to closures (docs/decisions.md, round 11). The compiled closures must agree with it.
class _ReferenceNames:
    def __init__(self, data: Any, constants: Any) -> None:
        self.data, self.constants = data, constants

    def __getitem__(self, name: str) -> Any:
        if name == "data":
            return self.data
        if name in self.constants:
            return self.constants[name]
        if name in self.data:
            return self.data[name]
        if name in FUNCTIONS:
            raise KeyError(name)
        return None


class _Reference(SimpleEval):  # type: ignore[misc]
    def _eval_attribute(self, node: ast.Attribute) -> Any:
        if node.attr.startswith("_"):
            raise FeatureNotAvailable(node.attr)
        value = self._eval(node.value)
        if value is None:
            return None
        if isinstance(value, dict):
            return value.get(node.attr)
        raise FeatureNotAvailable(node.attr)


def _reference(expr: Expression, data: Any, constants: Any) -> Any:
    evaluator = _Reference(functions=FUNCTIONS)
    evaluator.names = _ReferenceNames(data, constants)
    try:
        value = evaluator.eval(expr.source, previously_parsed=expr.tree)
    except Exception:
        return None
    return value if _is_json(value) else None


SOURCES = [
    "1",
    "'text'",
    "None",
    "True and n",
    "n or 0",
    "not flag",
    "-n",
    "+n",
    "~n",
    "n + 1",
    "n - m",
    "n * m",
    "n / m",
    "n // m",
    "n % m",
    "n ** 2",
    "n ** m",
    "n << 2",
    "n >> 1",
    "n & m | 1 ^ m",
    "s + s",
    "s * n",
    "s * 100000000",
    "1 < n <= m",
    "n == m != 3",
    "n > m or n < m",
    "'a' in s",
    "'a' not in tags",
    "n is None",
    "n is not None",
    "s if flag else n",
    "usage.prompt_tokens + usage.completion_tokens",
    "usage.missing.deeper",
    "tags.length",
    "s.upper",
    "tags[0]",
    "tags[-1]",
    "tags[5]",
    "tags[1:]",
    "tags[::-1]",
    "tags[n:m]",
    "s[0:2]",
    "prices[model]['prompt'] * usage.prompt_tokens / 1000",
    "prices[model].prompt",
    "data",
    "data.usage",
    "data['model']",
    "unknown",
    "unknown + 1",
    "coalesce(unknown, n, 3)",
    "get(usage, 'prompt_tokens', 0)",
    "get(tags, 1)",
    "round(n / 3, 2)",
    "round(x=1)",
    "min(n, m)",
    "max(tags)",
    "abs(-n)",
    "len(s)",
    "len(n)",
    "int(s)",
    "int('12')",
    "float(n)",
    "str(n)",
    "bool(tags)",
    "lower(s)",
    "upper(n)",
    "round",
    "len",
    "f'{s}-{n}'",
    "f'{n:>8}'",
    "f'{n:{m}}'",
    "f'{s!r}'",
    "n / 0",
    "(n, m)",
    "'x' * 200000",
]

DATAS: list[dict[str, Any]] = [
    {},
    {"n": 7, "m": 3, "s": "abc", "flag": True, "tags": ["a", "b", "c"], "model": "m1"},
    {"n": 0, "m": 0, "s": "", "flag": False, "tags": [], "model": "x"},
    {"n": -2.5, "m": 4, "s": "A", "flag": None, "tags": [3, 1, 2], "model": "m2"},
    {"n": None, "m": "2", "s": 5, "flag": "yes", "tags": "str", "model": None},
    {"n": True, "m": 1e308, "s": "ab", "tags": [[1], {"k": 1}], "model": "m1", "usage": {}},
    {"n": 3, "m": 2, "usage": {"prompt_tokens": 100, "completion_tokens": 5}, "model": "m1"},
    {"n": 10**6, "m": 10**6, "s": "x" * 50, "data": "shadowed", "prices": "shadowed"},
]


@pytest.mark.parametrize("source", SOURCES)
def test_compiled_expressions_agree_with_simpleeval(source: str) -> None:
    try:
        expr = compile_expression(source)
    except ValueError:
        with pytest.raises(FeatureNotAvailable):  # simpleeval would refuse it too
            _Reference(functions=FUNCTIONS).eval(source)
        return
    for data in DATAS:
        got = evaluate(expr, data, {"prices": PRICES})
        want = _reference(expr, data, {"prices": PRICES})
        assert (type(got), got) == (type(want), want), (source, data)
