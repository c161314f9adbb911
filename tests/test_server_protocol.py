"""The HTTP protocol `recordbase serve` runs (web/server.py): uvicorn's httptools protocol whose
writes of one loop step leave as one. A real uvicorn server on a free port, real sockets."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from recordbase.web.server import HOLD_MAX, JoinedHttpToolsProtocol, JoinedWrites, http_protocol
from tests.server import free_port

# Every write that reached a real transport, per connection (the spy below sits under
# JoinedWrites, on the real uvloop/asyncio transport).
WRITES: list[bytes] = []


class _Spy:
    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        WRITES.append(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class SpiedProtocol(JoinedHttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        joined = self.transport
        assert isinstance(joined, JoinedWrites)
        joined._transport = _Spy(transport)  # type: ignore[assignment]


async def small(request: Request) -> Response:
    body = await request.body()
    return Response(b'{"echo":' + (body or b"null") + b"}", media_type="application/json")


async def chunks(request: Request) -> StreamingResponse:
    async def parts() -> AsyncIterator[bytes]:
        for i in range(3):
            await asyncio.sleep(0.01)
            yield b"part%d;" % i

    return StreamingResponse(parts(), media_type="text/plain")


async def burst(request: Request) -> StreamingResponse:
    async def parts() -> AsyncIterator[bytes]:  # many chunks, no await between them
        for _ in range(40):
            yield b"x" * 8192

    return StreamingResponse(parts(), media_type="text/plain")


APP = Starlette(
    routes=[
        Route("/small", small, methods=["GET", "POST", "HEAD"]),
        Route("/chunks", chunks),
        Route("/burst", burst),
    ]
)


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(
        APP, host="127.0.0.1", port=port, log_level="warning", http=SpiedProtocol, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield port
    server.should_exit = True
    thread.join(10)


def test_serve_uses_the_joined_protocol() -> None:
    assert issubclass(http_protocol(), JoinedHttpToolsProtocol)


def test_a_response_leaves_in_one_write_and_keep_alive_goes_on(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for n in range(3):
        WRITES.clear()
        conn.request("POST", "/small", body=b'{"n":%d}' % n)
        r = conn.getresponse()
        assert r.status == 200 and r.read() == b'{"echo":{"n":%d}}' % n
        assert len(WRITES) == 1, WRITES  # uvicorn wrote the head and the body apart
        assert WRITES[0].startswith(b"HTTP/1.1 200 OK\r\n")
        assert WRITES[0].endswith(b'{"echo":{"n":%d}}' % n)
    conn.close()


def test_head_and_connection_close_still_answer(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("HEAD", "/small")  # a head and no body: it must not wait for one
    r = conn.getresponse()
    assert r.status == 200 and r.read() == b""
    conn.close()
    # The server closes right after the body: the held bytes must leave before the close.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    assert got.startswith(b"HTTP/1.1 200 OK") and got.endswith(b'{"echo":null}')


def test_streamed_chunks_go_out_as_they_come(port: int) -> None:
    WRITES.clear()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/chunks")
    r = conn.getresponse()
    assert r.read() == b"part0;part1;part2;"
    # Each chunk comes a step later than the one before, so none waits for the next.
    assert len(WRITES) >= 3
    conn.close()


def test_a_burst_in_one_step_is_sent_in_bounded_writes(port: int) -> None:
    WRITES.clear()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/burst")
    r = conn.getresponse()
    assert r.read() == b"x" * 8192 * 40
    assert len(WRITES) >= 4  # 320 KB do not pile up in one held write
    assert max(len(w) for w in WRITES) <= HOLD_MAX + 8192 + 64
    conn.close()


def test_expect_100_continue(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
            b"Expect: 100-continue\r\nConnection: close\r\n\r\n"
        )
        # The 100 must come on its own, before the client sends the body.
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"{}")
        got = b""
        while chunk := sock.recv(65536):
            got += chunk
    assert b'{"echo":{}}' in got
