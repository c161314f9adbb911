"""Idempotency-Key on every write route of every face (rules in core/idempotency.py).

The pipeline calls `run_idempotent` for a write request (any method but GET, HEAD and OPTIONS)
that carries an `Idempotency-Key` header, once the caller is authenticated. It buffers the body
(to fingerprint the request and hand it on unchanged), claims the key through the service, and
then either replays the stored response (marked `Idempotent-Replayed: true`) or runs the route
while copying its response, which it stores once sent. Failures (422 reused key, 409 in progress)
are raised as RecordbaseErrors, so each face renders them in its own shape.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recordbase.core.idempotency import StoredResponse, fingerprint
from recordbase.core.records import Principal
from recordbase.errors import PayloadTooLarge

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REPLAYED = "Idempotent-Replayed"


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is over the limit of {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def run_idempotent(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    service: Any,
    principal: Principal,
    key: str,
) -> None:
    body = await _read_body(receive, service.settings.max_body_bytes)
    query = scope.get("query_string", b"").decode("latin-1")
    fp = fingerprint(scope["method"], scope["path"], query, body)
    token, stored = await service.idempotency.begin(principal, key, fp)
    if stored is not None:
        await _replay(stored, send)
        return
    delivered = False

    async def replay_receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    status = 0
    headers: list[tuple[str, str]] = []
    chunks: list[bytes] = []

    async def capture(message: Message) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message["headers"]]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
        await send(message)

    try:
        await app(scope, replay_receive, capture)
    except BaseException:
        await service.idempotency.release(principal, key, token)
        raise
    response = StoredResponse(status, headers, b"".join(chunks))
    await service.idempotency.complete(principal, key, token, response)


async def _replay(stored: StoredResponse, send: Send) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored.headers]
    headers.append((REPLAYED.lower().encode(), b"true"))
    await send({"type": "http.response.start", "status": stored.status, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body, "more_body": False})
