"""SQLite reader threads: each with its own read-only connection, all fed by one queue.

A read is queued with its future and event loop; a free reader runs it in one read
transaction (WAL: it never waits for the writer) and settles the future on its loop with
`call_soon_threadsafe`. This replaces a ThreadPoolExecutor + `run_in_executor`, whose
concurrent.futures Future, its chaining to an asyncio future and the executor's bookkeeping
cost ~15 µs of the one core per read (docs/performance.md, "Read path, round 4").
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from recordbase.stores.loops import running_loop
from recordbase.stores.sqlite_tx import SqliteTx

T = TypeVar("T")
_STOP = object()


class Readers:
    def __init__(self, count: int, connect: Callable[[], sqlite3.Connection]) -> None:
        self._count = max(1, count)
        self._connect = connect
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for i in range(self._count):
            # the connection is made here, so a database that cannot be opened fails open()
            conn = self._connect()
            thread = threading.Thread(
                target=self._loop, args=(conn,), name=f"recordbase-read_{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Let the reads queued so far finish, then end the threads (blocking)."""
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join()
        self._threads.clear()

    async def run(self, fn: Callable[[Any], T]) -> T:
        assert self._threads, "store not open"
        loop = running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, future, loop))
        return await future

    def _loop(self, conn: sqlite3.Connection) -> None:
        tx = SqliteTx(conn)
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                fn, future, loop = item
                try:
                    conn.execute("BEGIN")
                    try:
                        outcome = (future, True, fn(tx))
                    finally:
                        conn.execute("COMMIT")
                except BaseException as exc:  # the caller gets it; the reader goes on
                    outcome = (future, False, exc)
                # A closed loop's caller is gone: nobody is left to answer.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, *outcome)
                del item, fn, future, outcome
        finally:
            conn.close()


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # cancelled while it ran
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
