"""The request pipeline: request id -> face -> principal -> rate limit -> idempotency -> errors.

A pure ASGI middleware (no per-request BaseHTTPMiddleware overhead). It picks the face by
path prefix, lets the face pull the credential out of the headers, authenticates through the
service, charges the key's token bucket, and renders any RecordbaseError (or an unexpected
exception, as a 500 that leaks nothing) in the face's own error shape.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recordbase.core.clock import new_request_id
from recordbase.core.records import Principal
from recordbase.errors import RateLimited, RecordbaseError, Unavailable
from recordbase.ratelimit import Decision
from recordbase.web.dispatch import Direct, Found, WriteWhole
from recordbase.web.http import RequestHeaders, header_name
from recordbase.web.idempotency import SAFE_METHODS, run_idempotent

log = logging.getLogger("recordbase")

ErrorRenderer = Callable[[RecordbaseError, Request], Response]
CredentialReader = Callable[[Headers], str | None]
LimitHeaders = Callable[[Decision], dict[str, str]]


def standard_limit_headers(d: Decision) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(d.limit),
        "RateLimit-Remaining": str(d.remaining),
        "RateLimit-Reset": str(d.reset),
    }


# (a face's limit_headers, a decision) -> its headers, encoded. Decisions repeat (a key's
# limit and the tokens it has left, rounded down, move little between requests): encoding the
# same three headers again was ~1 µs of a single create (docs/performance.md, round 12).
_LIMIT_HEADERS: dict[tuple[LimitHeaders, Decision], list[tuple[bytes, bytes]]] = {}
LIMIT_HEADERS_KEPT = 4096


def limit_header_bytes(make: LimitHeaders, decision: Decision) -> list[tuple[bytes, bytes]]:
    """`make(decision)` as ASGI header pairs (remembered; the list must not be changed)."""
    key = (make, decision)
    found = _LIMIT_HEADERS.get(key)
    if found is None:
        found = [(header_name(k), v.encode("latin-1")) for k, v in make(decision).items()]
        if len(_LIMIT_HEADERS) >= LIMIT_HEADERS_KEPT:
            _LIMIT_HEADERS.clear()
        _LIMIT_HEADERS[key] = found
    return found


def bearer_or_api_key(headers: Headers) -> str | None:
    auth = headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key") or None


@dataclass(frozen=True)
class Face:
    name: str
    prefixes: tuple[str, ...]
    render_error: ErrorRenderer
    credentials: CredentialReader = bearer_or_api_key
    limit_headers: LimitHeaders = standard_limit_headers
    public_paths: frozenset[str] = field(default_factory=frozenset)
    # Faces may turn their own user identity headers into Principal.user etc.
    refine: Callable[[Principal, Headers], Principal] | None = None


class Pipeline:
    def __init__(self, app: ASGIApp, faces: Sequence[Face], fallback: Face) -> None:
        self.app = app
        # A Direct app's plain handlers are run here and their responses sent with our
        # headers in them, without a wrapper around `send` (see _serve).
        self.direct = app if isinstance(app, Direct) else None
        self.faces = sorted(faces, key=lambda f: -max(len(p) for p in f.prefixes))
        self.fallback = fallback

    def face_for(self, path: str) -> Face:
        for face in self.faces:
            if path.startswith(face.prefixes):  # a tuple: any of them, in C
                return face
        return self.fallback

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        return self.serve(scope, receive, send)  # no coroutine of its own around serve's

    async def serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        found: Found | None = None,
        write: WriteWhole | None = None,
    ) -> None:
        """The ASGI call; `found`: the direct route when the caller has looked it up already;
        `write`: may send a whole answer of a lean route at once (web/server.py's lane)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        face = self.face_for(path)
        headers = RequestHeaders(scope)  # read once for every lookup of this request
        given = headers.first.get(b"x-request-id")
        if given:
            request_id = given.decode("latin-1")
        else:
            request_id = new_request_id()
            given = request_id.encode("latin-1")
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["face"] = face
        # Our headers on every answer, encoded once: the request id, then the face's limits.
        extra: list[tuple[bytes, bytes]] = [(b"x-request-id", given)]
        started: list[bool] = []  # not empty once the answer's head went out

        try:
            if path not in face.public_paths and path not in PUBLIC:
                later = self._admit(face, state, extra, headers)
                if later is not None:
                    await later
            # The Idempotency-Key of a write (web/idempotency.py), read from the dict
            if scope["method"] in SAFE_METHODS:
                key = None
            else:
                raw_key = headers.first.get(b"idempotency-key")
                key = None if raw_key is None else raw_key.decode("latin-1")
            direct = self.direct
            if key is not None and "principal" in state:
                await run_idempotent(
                    self.app,
                    scope,
                    receive,
                    _sending_with(send, extra, started),
                    self._service(scope),
                    state["principal"],
                    key,
                )
            elif direct is not None and (
                found is not None or (found := direct.endpoint_for(scope)) is not None
            ):
                lean = found[3]
                if lean is not None:
                    app_state = self.app.state  # type: ignore[attr-defined]
                    answer = await lean(scope, receive, headers, found[2]["path_params"], app_state)
                    if answer is not None:
                        status, body = answer
                        started.append(True)
                        head = [
                            (b"content-length", b"%d" % len(body)),
                            (b"content-type", b"application/json"),
                            *extra,
                        ]
                        if write is not None and write(status, head, body):
                            return
                        await send(
                            {"type": "http.response.start", "status": status, "headers": head}
                        )
                        await send({"type": "http.response.body", "body": body})
                        return
                response = await direct.respond(found, scope, receive, send, headers)
                if type(response).__call__ is not Response.__call__:
                    await response(scope, receive, _sending_with(send, extra, started))
                    return
                # Response.__call__ for http, with our headers added as _sending_with does.
                started.append(True)
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status_code,
                        "headers": with_headers(response.raw_headers, extra),
                    }
                )
                await send({"type": "http.response.body", "body": response.body})
                if response.background is not None:
                    await response.background()
            else:
                await self.app(scope, receive, _sending_with(send, extra, started))
        except Exception as exc:
            if started:
                raise
            error = exc if isinstance(exc, RecordbaseError) else _internal(exc, path)
            response = face.render_error(error, Request(scope))
            ours = {name.decode("latin-1"): value.decode("latin-1") for name, value in extra}
            for name, value in {**error.headers, **ours}.items():
                response.headers.setdefault(name, value)
            await response(scope, receive, send)

    def _admit(
        self,
        face: Face,
        state: dict[str, Any],
        extra: list[tuple[bytes, bytes]],
        headers: Headers,
    ) -> Awaitable[None] | None:
        """Authenticate the request's key and take a token from its bucket: the principal
        goes to state["principal"], the bucket's headers to `extra`. None once done without
        awaiting anything (a key seen lately with the service's caches fresh, a bucket in
        this process: no coroutine made, the usual case); else an awaitable that finishes."""
        secret = face.credentials(headers)
        principal = self.app.state.service.authenticated(secret)  # type: ignore[attr-defined]
        if principal is None:
            take = functools.partial(self._take, face, state, extra, headers)
            return self._admit_later(secret, take)  # read the key, then the same `_take`
        return self._take(face, state, extra, headers, principal)

    async def _admit_later(
        self, secret: str | None, take: Callable[[Principal], Awaitable[None] | None]
    ) -> None:
        principal = await self.app.state.service.authenticate(secret)  # type: ignore[attr-defined]
        later = take(principal)
        if later is not None:
            await later

    def _take(
        self,
        face: Face,
        state: dict[str, Any],
        extra: list[tuple[bytes, bytes]],
        headers: Headers,
        principal: Principal,
    ) -> Awaitable[None] | None:
        """The face's refinement of the principal, then a token from its bucket: None once
        taken at once; an awaitable when the bucket is shared (asked over the network)."""
        app_state = self.app.state  # type: ignore[attr-defined]
        if face.refine is not None:
            principal = face.refine(principal, headers)
        state["principal"] = principal
        settings = app_state.service.settings
        rate = principal.rate if principal.rate is not None else settings.default_rate
        burst = principal.burst if principal.burst is not None else settings.default_burst
        try:
            decision = app_state.limiter.take_now(principal.key_id, rate, burst)
        except Exception as exc:
            _limiter_down(exc, settings)
            return None
        if decision is None:
            return self._take_shared(face, extra, principal.key_id, rate, burst, settings)
        _decided(face, extra, decision)
        return None

    async def _take_shared(
        self,
        face: Face,
        extra: list[tuple[bytes, bytes]],
        key_id: str,
        rate: float,
        burst: int,
        settings: Any,
    ) -> None:
        try:
            decision = await self.app.state.limiter.take(key_id, rate, burst)  # type: ignore[attr-defined]
        except Exception as exc:
            _limiter_down(exc, settings)
            return
        _decided(face, extra, decision)

    def _service(self, scope: Scope) -> Any:
        return self._state(scope).service

    def _limiter(self, scope: Scope) -> Any:
        return self._state(scope).limiter

    def _state(self, scope: Scope) -> Any:
        return self.app.state  # type: ignore[attr-defined]


def _decided(face: Face, extra: list[tuple[bytes, bytes]], decision: Decision) -> None:
    """The bucket's answer: its headers on the answer, and 429 when it had no token."""
    extra += limit_header_bytes(face.limit_headers, decision)
    if not decision.allowed:
        raise RateLimited(
            f"Too many requests for this key; retry in {decision.retry_after} s.",
            headers={"Retry-After": str(decision.retry_after)},
            extra={"retry_after": decision.retry_after},
        )


def _limiter_down(exc: Exception, settings: Any) -> None:
    """The shared limiter failed: admit the request (fail open), or answer 503."""
    log.warning("rate limiter unavailable: %s", exc)
    if not settings.ratelimit_fail_open:
        raise Unavailable("The rate limiter is unavailable; try again shortly.") from exc


def with_headers(
    raw: list[tuple[bytes, bytes]], extra: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """`raw` plus each header of `extra` (encoded) it lacks, as MutableHeaders would add it."""
    present = {name for name, _ in raw}
    out = list(raw)
    for pair in extra:
        if pair[0] not in present:
            present.add(pair[0])
            out.append(pair)
    return out


def _sending_with(send: Send, extra: list[tuple[bytes, bytes]], started: list[bool]) -> Send:
    """`send` with our headers added to the answer's head; `started` marks that it went."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            started.append(True)
            message["headers"] = with_headers(list(message["headers"]), extra)
        await send(message)

    return sending


PUBLIC = ("/v1/openapi.json", "/docs", "/healthz", "/favicon.ico")


def _internal(exc: Exception, path: str) -> RecordbaseError:
    log.exception("unexpected error on %s", path, exc_info=exc)
    return RecordbaseError("An unexpected error occurred; it has been logged.")


Handler = Callable[[Request], Awaitable[Response]]
