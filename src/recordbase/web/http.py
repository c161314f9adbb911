"""HTTP helpers shared by every face: JSON bodies with limits, JSON responses, parameters.

Bodies are checked before anything else runs: content type, size (streamed, so a liar's
Content-Length can't get past), valid JSON, and nesting depth. Every failure is a
RecordbaseError, which the face's renderer shapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from recordbase.errors import (
    FieldError,
    InvalidJson,
    NestingTooDeep,
    PayloadTooLarge,
    UnknownMember,
    UnknownParameter,
    UnsupportedMediaType,
    ValidationFailed,
)

JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def dumps(content: Any) -> bytes:
    return orjson.dumps(content, option=JSON_OPTIONS)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


async def read_body(request: Request) -> bytes:
    limit: int = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The body is {declared} bytes; the limit is {limit}.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is over the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request, *, allow_empty: bool = False) -> Any:
    """The request's JSON body, checked; `allow_empty` turns an empty body into None."""
    raw = await read_body(request)
    if not raw.strip():
        if allow_empty:
            return None
        raise InvalidJson("The request body is empty; a JSON body is required.")
    ctype = request.headers.get("content-type", "")
    media = ctype.split(";", 1)[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(
            f"Content-Type {media!r} is not accepted; send application/json."
        )
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"The body is not valid JSON: {exc}") from exc
    limit = request.app.state.settings.max_depth
    # Nesting depth never exceeds the number of `[` and `{` in the text (those inside strings
    # only raise the count), so most bodies need no walk at all.
    if raw.count(b"[") + raw.count(b"{") > limit:
        check_depth(value, limit)
    return value


def check_depth(value: Any, limit: int) -> None:
    """Raise NestingTooDeep when containers nest deeper than `limit` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise NestingTooDeep(f"The JSON body nests deeper than {limit} levels.")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, (dict, list)))


def expect_object(value: Any, allowed: Iterable[str], where: str = "") -> dict[str, Any]:
    """`value` must be an object whose members are all in `allowed`."""
    allowed = tuple(allowed)
    if not isinstance(value, dict):
        raise ValidationFailed(
            "Expected a JSON object.",
            errors=[FieldError(where or "/", "type", "expected an object")],
        )
    unknown = [k for k in value if k not in allowed]
    if unknown:
        raise UnknownMember(
            f"Unknown member(s) {', '.join(map(repr, unknown))}; valid: {', '.join(allowed)}.",
            errors=[
                FieldError(f"{where}/{k}", "unknown_member", "not accepted here") for k in unknown
            ],
            extra={"valid": list(allowed)},
        )
    return value


def check_params(params: Mapping[str, str], allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    unknown = [k for k in params if k not in allowed]
    if unknown:
        raise UnknownParameter(
            f"Unknown query parameter(s) {', '.join(map(repr, unknown))}; valid: "
            f"{', '.join(allowed)}.",
            extra={"valid": list(allowed)},
        )


def int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        from recordbase.errors import PageTooLarge

        cls = (
            PageTooLarge
            if name in ("limit", "page_size", "page[size]") and value > high
            else (ValidationFailed)
        )
        raise cls(
            f"{name} must be an integer from {low} to {high}.",
            errors=[FieldError(f"/{name}", "range", f"{low}..{high}")],
        )
    return value


def bool_param(params: Mapping[str, str], name: str) -> bool:
    raw = params.get(name)
    if raw is None:
        return False
    lowered = raw.lower()
    if lowered in ("true", "1", "yes", ""):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValidationFailed(f"{name} must be true or false.")
