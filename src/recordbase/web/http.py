"""HTTP helpers shared by every face: JSON bodies with limits, JSON responses, parameters.

Bodies are checked before anything else runs: content type, size (streamed, so a liar's
Content-Length can't get past), valid JSON, and nesting depth. Every failure is a
RecordbaseError, which the face's renderer shapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from starlette.datastructures import Headers, QueryParams
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

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

    def init_headers(self, headers: Mapping[str, str] | None = None) -> None:
        # Starlette's headers for a plain JSON body, without its general case: the same two
        # headers in the same order (content-length, content-type).
        status = self.status_code
        media = self.media_type
        plain = headers is None and status >= 200 and status not in (204, 304)
        if plain and media is not None and media.startswith("application/"):
            self.raw_headers = [
                (b"content-length", str(len(self.body)).encode()),
                (b"content-type", media.encode("latin-1")),
            ]
            return
        super().init_headers(headers)


class JSONBytesResponse(JSONResponse):
    """A JSON body already rendered to bytes (records_json, a page the store printed)."""

    def __init__(self, content: bytes, status_code: int = 200, **kwargs: Any) -> None:
        plain = self.media_type == "application/json" and 200 <= status_code < 600
        if kwargs or not plain or status_code in (204, 304):
            super().__init__(content, status_code, **kwargs)
            return
        # Response.__init__ for the plain case (no headers, media type or background).
        self.status_code = status_code
        self.background = None
        self.body = content
        self.raw_headers = [
            (b"content-length", b"%d" % len(content)),
            (b"content-type", b"application/json"),
        ]

    def render(self, content: Any) -> bytes:
        body: bytes = content
        return body


class RequestHeaders(Headers):
    """A request's headers read once into a dict: a lookup is one probe, not a scan of the list.

    Answers as `Headers` does: names are matched lowercased against the raw (lowercase, per
    ASGI) names, and a repeated name answers with its first value.
    """

    def __init__(self, scope: Scope) -> None:
        # Headers(scope=scope) without its argument checks: the same list, kept in the scope.
        raw = scope["headers"]
        if type(raw) is not list:
            raw = scope["headers"] = list(raw)
        self._list = raw
        # raw name -> its first value: hot paths look a fixed name up here without a call
        self.first: dict[bytes, bytes] = dict(reversed(raw))

    def __getitem__(self, key: str) -> str:
        value = self.first.get(_NAMES.get(key) or header_name(key))
        if value is None:
            raise KeyError(key)
        return value.decode("latin-1")

    def __contains__(self, key: Any) -> bool:
        return isinstance(key, str) and (_NAMES.get(key) or header_name(key)) in self.first

    def get(self, key: str, default: Any = None) -> Any:
        # `_NAMES.get(key) or header_name(key)`: a name asked before costs no call
        value = self.first.get(_NAMES.get(key) or header_name(key))
        return default if value is None else value.decode("latin-1")


# Header names looked up (in any case) -> their lowercase latin-1 bytes; the app asks for a
# few fixed names, so lowering and encoding each lookup again was wasted work.
_NAMES: dict[str, bytes] = {}


def header_name(key: str) -> bytes:
    """`key` as ASGI carries a header name: lowercase latin-1 bytes (remembered)."""
    name = _NAMES.get(key)
    if name is None:
        name = key.lower().encode("latin-1")
        if len(_NAMES) < 256:
            _NAMES[key] = name
    return name


_NO_PARAMS = QueryParams("")


class FastRequest(Request):
    """A Request that reuses headers already read (`RequestHeaders`) and answers an empty
    query string without parsing it."""

    def __init__(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers | None = None
    ) -> None:
        super().__init__(scope, receive, send)
        if headers is not None:
            self._headers = headers

    @property
    def query_params(self) -> QueryParams:
        if not self.scope.get("query_string"):
            return _NO_PARAMS
        return super().query_params


async def read_body(request: Request) -> bytes:
    limit: int = request.app.state.settings.max_body_bytes
    # `_body` in the instance dict: hasattr on a missing attribute raises and catches inside.
    if "_body" in request.__dict__ or request._stream_consumed:
        check_declared_size(request.headers, limit)
        return await _read_stream(request, limit)  # read before: as Starlette answers
    return await receive_body(request.receive, request.headers, limit, request)


def check_declared_size(headers: Headers, limit: int) -> None:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The body is {declared} bytes; the limit is {limit}.")


async def receive_body(
    receive: Receive, headers: Headers, limit: int, request: Request | None = None
) -> bytes:
    """The request's whole body from ASGI `receive`, at most `limit` bytes: the declared
    Content-Length first, then the bytes as they come (a liar's length can't get past).

    Request.stream() without its async generator: the same messages and errors, and, given
    the `request`, the same flags set on it.
    """
    check_declared_size(headers, limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk: bytes = message.get("body", b"")
            more = message.get("more_body", False)
            if not more and request is not None:
                request._stream_consumed = True
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"The body is over the limit of {limit} bytes.")
                if not more and not chunks:
                    return chunk  # the usual case: the whole body in one message
                chunks.append(chunk)
            if not more:
                return b"".join(chunks)
        elif kind == "http.disconnect":
            if request is not None:
                request._is_disconnected = True
            raise ClientDisconnect()


async def _read_stream(request: Request, limit: int) -> bytes:
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
    limit: int = request.app.state.settings.max_depth
    return parse_json_body(raw, request.headers, limit, allow_empty=allow_empty)


class ReceiveWhole:
    """An ASGI `receive` that can also hand over, without a message, a request body that has
    all arrived (web/server.py's lane gives the lean handlers one)."""

    __slots__ = ()

    def whole(self) -> bytes | None:
        """The whole body, taken as `receive` would take it, when it has all arrived and
        nothing else is pending (an answer to 100-continue, a disconnect); else None, having
        done nothing: then call `receive`."""
        raise NotImplementedError


async def receive_json(receive: Receive, headers: Headers, settings: Any) -> Any:
    """`json_body` without a Request: the body from `receive`, with the same limits and
    checks (the lean handlers of web/dispatch.py)."""
    limit: int = settings.max_body_bytes
    raw = receive.whole() if isinstance(receive, ReceiveWhole) else None
    if raw is None:
        raw = await receive_body(receive, headers, limit)
    elif len(raw) > limit:  # receive_body's errors (a declared size is this body's own)
        check_declared_size(headers, limit)
        raise PayloadTooLarge(f"The body is over the limit of {limit} bytes.")
    return parse_json_body(raw, headers, settings.max_depth)


def parse_json_body(
    raw: bytes, headers: Headers, max_depth: int, *, allow_empty: bool = False
) -> Any:
    """A request body read whole (`receive_body`) as JSON: not empty (unless `allow_empty`:
    then None), a JSON content type, valid JSON, nested at most `max_depth` deep."""
    if not raw or raw.isspace():  # `not raw.strip()` without copying the body
        if allow_empty:
            return None
        raise InvalidJson("The request body is empty; a JSON body is required.")
    ctype = headers.get("content-type", "")
    if ctype != "application/json":  # what nearly every client sends: nothing to pick apart
        media = ctype.split(";", 1)[0].strip().lower()
        if media and media != "application/json" and not media.endswith("+json"):
            raise UnsupportedMediaType(
                f"Content-Type {media!r} is not accepted; send application/json."
            )
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidJson(f"The body is not valid JSON: {exc}") from exc
    # Nesting depth never exceeds the number of `[` and `{` in the text (those inside strings
    # only raise the count), so most small bodies need no further look. A large body (a
    # batch) nearly always holds more brackets than the limit: counting them first was a
    # quarter of its depth check, spent for nothing.
    if len(raw) >= _COUNT_BELOW or raw.count(b"[") + raw.count(b"{") > max_depth:
        within = depth_within(raw, max_depth)
        if within is None:
            check_depth(value, max_depth)
        elif not within:
            raise _too_deep(max_depth)
    return value


# Bodies from this size on skip the bracket count and go to depth_within at once.
_COUNT_BELOW = 4096
# Every byte but the quote and the four brackets (`bytes.translate` deletes them).
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')


def depth_within(raw: bytes, limit: int) -> bool | None:
    """Whether valid JSON text `raw` nests at most `limit` deep, read from the text in C.

    The strings go (escaped backslashes, then escaped quotes, then everything between
    quotes), leaving the brackets; each pass then deletes every adjacent `[]`, then every
    adjacent `{}`, which removes at least one and at most two levels. Text still left after
    `limit` passes nests deeper than `limit`: False. Text gone after p passes nests at most
    2p deep: True when 2p <= limit, else None (the caller walks the parsed value). A typical
    batch of 100 records takes a tenth of the walk's time (21 against 206 µs).
    """
    text = raw
    # No backslash, no escape: one memchr. Looking for the two bytes `\"` instead was a
    # third of this function on a batch (every quote is a candidate match).
    if b"\\" in text:
        text = text.replace(b"\\\\", b"")
        if b'\\"' in text:
            text = text.replace(b'\\"', b"")
    text = text.translate(None, _NOT_STRUCTURE)
    # A string without brackets is now `""`. When every quote is in such a pair, no string
    # held a bracket, and deleting the quotes leaves the structure. Sound: a string holding
    # one leaves a lone quote, because the opening quote of the first such string ends a run
    # of quotes that is odd (it can start only with `""` pairs or a structure character),
    # and `count` pairs quotes left to right within each run. Counting and deleting were a
    # third of replacing the pairs (one match per string: 60 -> 20 µs for 100 records).
    if text.count(b'""') * 2 == text.count(b'"'):
        text = text.translate(None, b'"')
    else:  # cut the strings out by splitting on the quotes
        text = b"".join(text.split(b'"')[::2])
    passes = 0
    while text:
        if passes == limit:
            return False
        passes += 1
        text = text.replace(b"[]", b"").replace(b"{}", b"")
    return True if 2 * passes <= limit else None


def _too_deep(limit: int) -> NestingTooDeep:
    return NestingTooDeep(f"The JSON body nests deeper than {limit} levels.")


def check_depth(value: Any, limit: int) -> None:
    """Raise NestingTooDeep when containers nest deeper than `limit` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise _too_deep(limit)
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
    if not params:
        return
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
