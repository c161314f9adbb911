"""The HTTP protocol `recordbase serve` runs: uvicorn's httptools protocol with each loop
step's writes to a connection joined into one, and a lane for the lean routes.

uvicorn writes a response's head and its body with two `transport.write` calls, and uvloop
sends each at once: two `send` system calls and, with Nagle off, two TCP segments for every
answer. Here a connection's writes are held until the end of the loop step that made them
and leave as one (docs/performance.md, round 12; docs/decisions.md).

The lane (`LaneHttpToolsProtocol`): a request for a lean route (web/dispatch.py: native record
creates, Keywords AI log creates) is run by the served app's `serve_lean` (inside uvicorn's own
`run_asgi`, for its error handling) in place of the proxy-headers middleware and the app's own
outer call, and its answer goes out as one prepared write in place of two ASGI `send` calls: those
layers did nothing for such a request but cost ~8 µs of a single create's ~75 µs on the event
loop (docs/performance.md, round 15). Everything else about the request is uvicorn's: parsing,
its RequestResponseCycle (body, 100-continue, flow control, disconnects, keep-alive,
pipelining), and `receive`, except that a body which has all arrived is handed to the lean
handler at once (`LaneReceive.whole`, round 16). A request the lane cannot answer byte for
byte as uvicorn would (forwarded headers for the proxy-headers middleware to read, an access
log, a paused transport, a header value uvicorn refuses) takes the usual path.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import operator
from collections.abc import Awaitable, Coroutine
from typing import Any, Protocol

from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import (  # uvicorn[standard]
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from recordbase.web.dispatch import WriteWhole
from recordbase.web.http import ReceiveWhole

# Held bytes past this go out at once: a response streamed in one step stays bounded, and
# the transport's own flow control (pause_writing) sees it.
HOLD_MAX = 64 * 1024


class JoinedWrites:
    """A transport that sends what one loop step wrote to it in one write.

    Everything but writing and closing is the real transport's. Held writes go out at the
    end of the step (`call_soon`), at once past `HOLD_MAX` bytes, and before a close or
    `write_eof`; `abort` drops them, as the transport would."""

    __slots__ = ("_held", "_loop", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] | None = None
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if type(data) is not bytes:  # the caller may change it once we return
            data = bytes(data)
        held = self._held
        if held is None:
            self._held = [data]
            self._size = len(data)
            self._loop.call_soon(self.flush)
        else:
            held.append(data)
            self._size += len(data)
        if self._size > HOLD_MAX:
            self.flush()

    def write_whole(self, data: bytes) -> None:
        """A whole answer already in one piece: sent at once when nothing is held (holding
        it to the end of the step would join it with nothing), else after what is."""
        if self._held is None and not self._transport.is_closing():
            self._transport.write(data)
        else:
            self.write(data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def is_closing(self) -> bool:  # asked after every answer: no __getattr__ on the way
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + (self._size if self._held else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class JoinedHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # After uvicorn read the addresses and made its flow control on the real one.
        self.transport = JoinedWrites(transport, self.loop)  # type: ignore[assignment]


class LeanServed(Protocol):
    """What an app served with the lane offers (recordbase.app's outer app)."""

    def lean_route(self, scope: Any) -> Any:
        """What `serve_lean` needs to answer this request in the lane, or None."""

    def serve_lean(
        self, scope: Any, receive: Any, send: Any, found: Any, write: WriteWhole
    ) -> Awaitable[None]:
        """The app's answer to the request, as its ASGI call would give it; `write` may send
        a whole answer in one go."""


FORWARDED = frozenset((b"x-forwarded-for", b"x-forwarded-proto"))
_name = operator.itemgetter(0)  # of a header pair


def write_whole(
    cycle: RequestResponseCycle, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> bool:
    """A whole answer (its `content-length` among `headers`) in one transport write, with the
    cycle left as uvicorn's `send` leaves it after the answer's head and body; False, having
    done nothing, where `send` would do more or other than that (the caller then sends)."""
    if (
        cycle.response_started
        or cycle.flow.write_paused
        or cycle.access_log
        or cycle.scope["method"] == "HEAD"
    ):
        return False
    if cycle.disconnected:
        return True  # send() would drop it too
    content = [STATUS_LINE[status]]
    for name, value in cycle.default_headers:
        content += (name, b": ", value, b"\r\n")
    values = []
    for name, value in headers:  # names are our own, lowercase; values may echo the client
        values.append(value)
        content += (name, b": ", value, b"\r\n")
    if HEADER_VALUE_RE.search(b"".join(values)):  # one search: it matches single bytes
        return False  # send() raises for it
    if not cycle.keep_alive:
        content.append(b"connection: close\r\n")
    content += (b"\r\n", body)
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    transport: Any = cycle.transport  # JoinedWrites under recordbase's protocols
    if type(transport) is JoinedWrites:
        transport.write_whole(b"".join(content))
    else:
        transport.write(b"".join(content))
    cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        cycle.transport.close()
    cycle.on_response()
    return True


class LaneReceive(ReceiveWhole):
    """uvicorn's `receive` for a lane request, and its body at once when all of it arrived
    (the usual case: one read brings a small request whole). uvicorn's `receive` would wait
    on the cycle's event (set already), clear it and copy the body into a message; a lean
    handler takes the bytes. Everything else, `receive` answers as ever."""

    __slots__ = ("_cycle",)

    def __init__(self, cycle: RequestResponseCycle) -> None:
        self._cycle = cycle

    def __call__(self) -> Awaitable[Any]:
        return self._cycle.receive()

    def whole(self) -> bytes | None:
        cycle = self._cycle
        if (
            cycle.more_body
            or cycle.waiting_for_100_continue
            or cycle.disconnected
            or cycle.response_complete
            or cycle.flow.read_paused
        ):
            return None
        body = bytes(cycle.body)
        cycle.body = bytearray()
        return body


def lean_served(app: Any) -> tuple[LeanServed | None, bool]:
    """The app under uvicorn's proxy-headers middleware when it serves lean routes, and
    whether that middleware is there; (None, _) when anything else wraps it."""
    proxied = False
    while isinstance(app, ProxyHeadersMiddleware):
        proxied = True
        app = app.app
    if callable(getattr(app, "lean_route", None)) and callable(getattr(app, "serve_lean", None)):
        return app, proxied
    return None, proxied


class LaneHttpToolsProtocol(JoinedHttpToolsProtocol):
    """JoinedHttpToolsProtocol that runs lean routes in the lane (module docstring)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._served, self._proxied = lean_served(self.app)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        served = self._served
        if served is not None and app is self.app:
            scope = cycle.scope
            found = served.lean_route(scope)
            if found is not None and not (
                self._proxied and not FORWARDED.isdisjoint(map(_name, scope["headers"]))
            ):
                coro = self._run_lean(served, cycle, found)
                if self.config.reset_contextvars:
                    task = self.loop.create_task(coro, context=contextvars.Context())
                else:
                    task = self.loop.create_task(coro)
                task.add_done_callback(self.tasks.discard)
                self.tasks.add(task)
                return
        super()._start_asgi_task(cycle, app)

    def _run_lean(
        self, served: LeanServed, cycle: RequestResponseCycle, found: Any
    ) -> Coroutine[Any, Any, None]:
        """uvicorn's own `run_asgi` (its error handling, its 500s) around `serve_lean`."""
        write = functools.partial(write_whole, cycle)
        receive = LaneReceive(cycle)
        return cycle.run_asgi(
            lambda scope, _receive, send: served.serve_lean(scope, receive, send, found, write)
        )


def http_protocol() -> type[asyncio.Protocol]:
    """What `uvicorn.run(http=...)` gets from `recordbase serve` (and the bench's echo)."""
    return LaneHttpToolsProtocol
