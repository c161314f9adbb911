"""The HTTP protocol `recordbase serve` runs: uvicorn's httptools protocol with each loop
step's writes to a connection joined into one.

uvicorn writes a response's head and its body with two `transport.write` calls, and uvloop
sends each at once: two `send` system calls and, with Nagle off, two TCP segments for every
answer. Here a connection's writes are held until the end of the loop step that made them
and leave as one (docs/performance.md, round 12; docs/decisions.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # uvicorn[standard]

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

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + (self._size if self._held else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class JoinedHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # After uvicorn read the addresses and made its flow control on the real one.
        self.transport = JoinedWrites(transport, self.loop)  # type: ignore[assignment]


def http_protocol() -> type[asyncio.Protocol]:
    """What `uvicorn.run(http=...)` gets from `recordbase serve` (and the bench's echo)."""
    return JoinedHttpToolsProtocol
