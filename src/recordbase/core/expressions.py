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

simpleeval defines the language (its node and operator tables, what `compile_expression`
admits) and the meaning of each node; `_compile` turns a checked tree into nested closures
that do what simpleeval's handler for each node does, with simpleeval's own operator
functions (its length and power limits included). Walking the tree with simpleeval at every
evaluation was a third of a Keywords AI log create's event-loop time (four computed fields
per log; docs/performance.md, round 11); tests/test_expressions.py holds the two to each
other.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from simpleeval import MAX_STRING_LENGTH, FeatureNotAvailable, IterableTooLong, SimpleEval

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


# The language's tables: the nodes and operators simpleeval knows.
_PROBE = SimpleEval(functions=FUNCTIONS)


# A compiled node: (the record's data, the type's constants) -> its value; raises when the
# expression fails there (evaluate turns that into "no value").
Run = Callable[[Mapping[str, Any], Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Expression:
    source: str
    tree: ast.AST
    run: Run


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
    return Expression(source, module.body, _compile(module.body))


def _compile(node: ast.AST) -> Run:
    """Closures for a tree `compile_expression` admitted; each mirrors simpleeval's handler
    of its node (SimpleEval._eval_<node>), with attribute access as an object-key look-up
    and the language's names (`_name`)."""
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, str | bytes) and len(value) > MAX_STRING_LENGTH:

            def too_long(data: Mapping[str, Any], constants: Mapping[str, Any]) -> Any:
                raise IterableTooLong("literal too long")

            return too_long
        return lambda data, constants: value
    if isinstance(node, ast.Name):
        return _name(node.id)
    if isinstance(node, ast.Attribute):
        inner, attr = _compile(node.value), node.attr

        def attribute(data: Mapping[str, Any], constants: Mapping[str, Any]) -> Any:
            value = inner(data, constants)
            if value is None:
                return None
            if isinstance(value, dict):
                return value.get(attr)
            raise FeatureNotAvailable(f".{attr} needs an object, not {type(value).__name__}")

        return attribute
    if isinstance(node, ast.BinOp):
        binary = _PROBE.operators[type(node.op)]
        left, right = _compile(node.left), _compile(node.right)
        return lambda data, constants: binary(left(data, constants), right(data, constants))
    if isinstance(node, ast.UnaryOp):
        unary, operand = _PROBE.operators[type(node.op)], _compile(node.operand)
        return lambda data, constants: unary(operand(data, constants))
    if isinstance(node, ast.BoolOp):
        values = [_compile(v) for v in node.values]
        every = isinstance(node.op, ast.And)

        def boolean(data: Mapping[str, Any], constants: Mapping[str, Any]) -> Any:
            result: Any = False
            for value in values:
                result = value(data, constants)
                if not result if every else result:
                    break
            return result

        return boolean
    if isinstance(node, ast.Compare):
        first = _compile(node.left)
        steps = [
            (_PROBE.operators[type(op)], _compile(c))
            for op, c in zip(node.ops, node.comparators, strict=True)
        ]

        def compare(data: Mapping[str, Any], constants: Mapping[str, Any]) -> Any:
            right = first(data, constants)
            result: Any = True
            for operator, comparator in steps:
                if not result:
                    break
                left, right = right, comparator(data, constants)
                result = operator(left, right)
            return result

        return compare
    if isinstance(node, ast.IfExp):
        test, body, orelse = _compile(node.test), _compile(node.body), _compile(node.orelse)
        return lambda data, constants: (
            body(data, constants) if test(data, constants) else orelse(data, constants)
        )
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)  # compile_expression admits no other
        function = FUNCTIONS[node.func.id]
        args = [_compile(a) for a in node.args]
        keywords = [(k.arg, _compile(k.value)) for k in node.keywords]

        def call(data: Mapping[str, Any], constants: Mapping[str, Any]) -> Any:
            positional = [a(data, constants) for a in args]
            named: dict[Any, Any] = dict((name, k(data, constants)) for name, k in keywords)
            return function(*positional, **named)

        return call
    if isinstance(node, ast.Subscript):
        container, key = _compile(node.value), _compile(node.slice)
        return lambda data, constants: container(data, constants)[key(data, constants)]
    if isinstance(node, ast.Slice):
        parts = [None if n is None else _compile(n) for n in (node.lower, node.upper, node.step)]

        def cut(data: Mapping[str, Any], constants: Mapping[str, Any]) -> Any:
            return slice(*(None if p is None else p(data, constants) for p in parts))

        return cut
    if isinstance(node, ast.JoinedStr):
        pieces = [_compile(v) for v in node.values]

        def joined(data: Mapping[str, Any], constants: Mapping[str, Any]) -> Any:
            length, out = 0, []
            for piece in pieces:
                text = str(piece(data, constants))
                if len(text) + length > MAX_STRING_LENGTH:
                    raise IterableTooLong("too long")
                out.append(text)
            return "".join(out)

        return joined
    if isinstance(node, ast.FormattedValue):
        shown = _compile(node.value)
        spec = None if node.format_spec is None else _compile(node.format_spec)
        if spec is None:
            return shown
        return lambda data, constants: ("{:" + spec(data, constants) + "}").format(
            shown(data, constants)
        )
    raise ValueError(f"{type(node).__name__} is not allowed in an expression")


def _name(name: str) -> Run:
    """A name: the whole data, a constant, a data field, a function (as a value), else null."""
    if name == "data":
        return lambda data, constants: data

    def lookup(data: Mapping[str, Any], constants: Mapping[str, Any]) -> Any:
        if name in constants:
            return constants[name]
        value = data.get(name, _MISSING)
        if value is not _MISSING:
            return value
        return FUNCTIONS.get(name)

    return lookup


def evaluate(expr: Expression, data: Mapping[str, Any], constants: Mapping[str, Any]) -> Any:
    """The expression's JSON value over `data`, or None when it fails or is not JSON."""
    try:
        value = expr.run(data, constants)
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
