"""The small, safe expression language of computed fields (backed by simpleeval, never eval).

An expression reads the record's data: a name is a top-level data field (`model`), a dotted
name walks into objects (`usage.prompt_tokens`), `data` is the whole object, and the type's
`constants` are names too (`prices[model]`). Paths are null-safe (a missing field is `null`,
and so is anything below it); arithmetic, comparisons, `x if c else y`, `and`/`or`/`not`,
`in`, subscripts and a few functions (FUNCTIONS) are allowed. Attribute access never reaches
Python objects: `.x` only looks up a key of a JSON object. An expression that fails (a null in
arithmetic, an unknown model in a price table, a division by zero) yields no value, and the
field is left unset. `compile_expression` checks an expression once, when the type is saved;
see docs/decisions.md ("the expression language of computed fields") for why simpleeval.
"""

from __future__ import annotations

import ast
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from simpleeval import FeatureNotAvailable, SimpleEval

MAX_EXPRESSION = 2000
_MISSING = object()


def _coalesce(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _get(container: Any, key: Any, default: Any = None) -> Any:
    if isinstance(container, dict):
        return container.get(key, default)
    if (
        isinstance(container, list)
        and isinstance(key, int)
        and -len(container) <= key < len(container)
    ):
        return container[key]
    return default


def _lower(text: Any) -> Any:
    return text.lower() if isinstance(text, str) else None


def _upper(text: Any) -> Any:
    return text.upper() if isinstance(text, str) else None


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "coalesce": _coalesce,
    "get": _get,
    "round": round,
    "min": min,
    "max": max,
    "abs": abs,
    "len": len,
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "lower": _lower,
    "upper": _upper,
}


class _Names:
    """Name lookup for one evaluation: data fields, then constants; unknown names are null."""

    __slots__ = ("constants", "data")

    def __init__(self, data: Mapping[str, Any], constants: Mapping[str, Any]) -> None:
        self.data = data
        self.constants = constants

    def __getitem__(self, name: str) -> Any:
        if name == "data":
            return self.data
        if name in self.constants:
            return self.constants[name]
        value = self.data.get(name, _MISSING)
        if value is not _MISSING:
            return value
        if name in FUNCTIONS:
            raise KeyError(name)  # let simpleeval find the function
        return None


class _Evaluator(SimpleEval):  # type: ignore[misc]
    """simpleeval with JSON-only attribute access: `.x` is a key lookup, null-safe."""

    def _check_disallowed_items(self, item: Any) -> None:
        # simpleeval checks every node's value for modules and forbidden functions, walking
        # whole containers: a name for the record's data or a constants table was walked
        # entry by entry at every step (a third of a Keywords AI log create's CPU). Here no
        # value can be one: names are JSON (the record's data, the type's constants), the
        # functions are FUNCTIONS, attributes are object keys, and compile_expression
        # admits nothing else.
        return

    def _eval_attribute(self, node: ast.Attribute) -> Any:
        if node.attr.startswith("_"):
            raise FeatureNotAvailable(f"no access to {node.attr!r}")
        value = self._eval(node.value)
        if value is None:
            return None
        if isinstance(value, dict):
            return value.get(node.attr)
        raise FeatureNotAvailable(f".{node.attr} needs an object, not {type(value).__name__}")


_PROBE = _Evaluator(functions=FUNCTIONS)


@dataclass(frozen=True)
class Expression:
    source: str
    tree: ast.AST


def compile_expression(source: Any) -> Expression:
    """Parse and check an expression once; raises ValueError with the problem."""
    if not isinstance(source, str) or not source.strip() or len(source) > MAX_EXPRESSION:
        raise ValueError(f"an expression: a non-empty string of at most {MAX_EXPRESSION} chars")
    try:
        module = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"syntax error: {exc.msg}") from exc
    for node in ast.walk(module.body):
        if isinstance(node, ast.expr) and type(node) not in _PROBE.nodes:
            raise ValueError(f"{type(node).__name__} is not allowed in an expression")
        if isinstance(node, ast.BinOp | ast.UnaryOp | ast.BoolOp | ast.Compare):
            ops = node.ops if isinstance(node, ast.Compare) else [node.op]
            for op in ops:
                if type(op) not in _PROBE.operators and not isinstance(op, ast.And | ast.Or):
                    raise ValueError(f"operator {type(op).__name__} is not allowed")
        if isinstance(node, ast.Call) and (
            not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS
        ):
            raise ValueError(f"only these functions may be called: {', '.join(FUNCTIONS)}")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ValueError(f"no access to {node.attr!r}")
    return Expression(source, module.body)


_LOCAL = threading.local()


def evaluate(expr: Expression, data: Mapping[str, Any], constants: Mapping[str, Any]) -> Any:
    """The expression's JSON value over `data`, or None when it fails or is not JSON."""
    # One evaluator per thread, given each evaluation's names: making one builds its tables
    # and enters a warnings context (~15 us, four times per Keywords AI log).
    evaluator: _Evaluator | None = getattr(_LOCAL, "evaluator", None)
    if evaluator is None:
        evaluator = _LOCAL.evaluator = _Evaluator(functions=FUNCTIONS)
    evaluator.names = _Names(data, constants)
    try:
        value = evaluator.eval(expr.source, previously_parsed=expr.tree)
    except Exception:
        # A failing expression means "no value" by design (see the module docstring).
        return None
    return value if _is_json(value) else None


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, str | bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False
