"""The SQLite write path: group commit on the event loop, with a thread for what may wait.

Every write goes through one connection. By default (`sqlite_writer` = auto with
`synchronous` NORMAL) the event loop runs the writes itself: a write queues up, and one
callback per loop turn takes every write queued by then (up to `group_commit_max`), runs them
in one transaction and commits before any caller is answered. In WAL mode with
synchronous=NORMAL a commit is a write into the OS page cache (no fsync; it survives a killed
process), so a group costs the loop tens of microseconds, far less than handing it to a
thread and back: on one core that hand-off (queue, wake-ups, the GIL passed back and forth
around every SQLite call) cost more CPU than the writes (docs/performance.md, round 4).

The loop never waits on anything in that path:
- the connection's busy timeout is 0: when another process holds the write lock (a CLI
  command), the group goes to the writer thread, which waits for the lock;
- checkpoints (copying the WAL into the database file, with an fsync) never run in a commit
  (wal_autocheckpoint=0); a checkpointer thread runs them on its own connection;
- writes that may take long (type changes that build indexes, ANALYZE) and writes from
  another event loop go to the writer thread, which holds the connection while it works.

A group first runs without savepoints (one BEGIN, every write, one COMMIT). If a write
raises, the whole transaction is rolled back and the group is run again with a SAVEPOINT
around each write, so only the failing one fails; a write is a function of the
transaction alone, so running it again is safe (the PostgreSQL store retries them too).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

from recordbase.stores.sqlite_tx import SqliteTx

Outcome = tuple["asyncio.Future[Any]", bool, Any]
Item = tuple[Callable[[Any], Any], "asyncio.Future[Any]"]
_STOP = object()
# Checkpointer: how often it looks for committed WAL frames to copy into the database file.
CHECKPOINT_EVERY = 0.1
BUSY_WAIT_MS = 30000


class Busy(Exception):
    """Another connection holds the write lock (busy timeout 0 on the loop)."""


def run_group(conn: sqlite3.Connection, tx: SqliteTx, batch: list[Item]) -> list[Outcome]:
    """Run `batch` in one transaction; a failing write fails alone (see the module docstring).

    Raises Busy, having done nothing, when the write lock is held elsewhere.
    """
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise Busy from exc
        return [(future, False, exc) for _fn, future in batch]
    results: list[Any] = []
    try:
        for fn, _future in batch:
            results.append(fn(tx))
        conn.execute("COMMIT")
    except BaseException as exc:  # some write (or the commit) failed: undo all, isolate it
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if len(batch) == 1:
            return [(batch[0][1], False, exc)]
        return _run_savepoints(conn, tx, batch)
    return [(future, True, r) for (_fn, future), r in zip(batch, results, strict=True)]


def _run_savepoints(conn: sqlite3.Connection, tx: SqliteTx, batch: list[Item]) -> list[Outcome]:
    """Several writes in one transaction, each in its own SAVEPOINT so it fails alone."""
    outcomes: list[Outcome] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        for fn, future in batch:
            conn.execute("SAVEPOINT w")
            try:
                result = fn(tx)
                conn.execute("RELEASE w")
                outcomes.append((future, True, result))
            except BaseException as exc:  # the caller gets it; the group goes on
                conn.execute("ROLLBACK TO w")
                conn.execute("RELEASE w")
                outcomes.append((future, False, exc))
        conn.execute("COMMIT")
    except BaseException as exc:  # the commit itself failed: nobody's write happened
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        outcomes = [(future, False, exc) for _fn, future in batch]
    return outcomes


def resolve(outcomes: list[Outcome]) -> None:
    for future, ok, value in outcomes:
        if future.done():  # the caller went away (cancelled)
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class Writer:
    """Owns the writer connection: the loop lane, the thread lane and the checkpointer."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: str,
        *,
        on_loop: bool,
        group_max: int,
        analyze_seconds: int,
        connect: Callable[[], sqlite3.Connection],
    ) -> None:
        self.conn = conn
        self.tx = SqliteTx(conn)
        self.path = path
        self.on_loop = on_loop
        self.group_max = max(1, group_max)
        self.analyze_seconds = analyze_seconds
        self._connect = connect
        self.loop: asyncio.AbstractEventLoop | None = None
        # the loop lane
        self._pending: collections.deque[Item] = collections.deque()
        self._scheduled = False
        # who uses the connection: the loop (for one group) or the thread
        self._conn_lock = threading.Lock()
        self._wanted = False  # the loop found the connection taken; the thread calls it back
        # the thread lane: (items, loop) groups
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._commits = 0  # groups committed: the checkpointer copies when this moves
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        self._next_analyze = time.monotonic() + analyze_seconds
        self._analyzed_at = 0

    def start(self) -> None:
        if self.on_loop:
            self.loop = asyncio.get_running_loop()
            self.conn.execute("PRAGMA busy_timeout=0")
            self.conn.execute("PRAGMA wal_autocheckpoint=0")
            if self.path != ":memory:":
                self._checkpointer = threading.Thread(
                    target=self._checkpoint_loop, name="recordbase-checkpoint", daemon=True
                )
                self._checkpointer.start()
        self._thread = threading.Thread(
            target=self._thread_loop, name="recordbase-writer", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        while self._pending:  # writes queued on the loop are still carried out
            self._flush()
            if self._pending:
                await asyncio.sleep(0.001)
        if self._thread is not None:
            self._queue.put(_STOP)
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
            self._thread = None
        self._stop.set()
        if self._checkpointer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._checkpointer.join)
            self._checkpointer = None
        self.conn.close()

    async def write(self, fn: Callable[[Any], Any], *, slow: bool = False) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if slow or loop is not self.loop:
            self._queue.put(([(fn, future)], loop))
        else:
            self._pending.append((fn, future))
            if not self._scheduled:
                self._scheduled = True
                loop.call_soon(self._flush)
        return await future

    # the loop lane -------------------------------------------------------------------------

    def _flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        if not self._conn_lock.acquire(blocking=False):
            # The thread has the connection; it calls _flush again once it lets go. Asking
            # before trying once more leaves no moment where both miss each other.
            self._wanted = True
            if not self._conn_lock.acquire(blocking=False):
                return
        n = min(len(self._pending), self.group_max)
        batch = [self._pending.popleft() for _ in range(n)]
        try:
            outcomes = run_group(self.conn, self.tx, batch)
        except Busy:  # another process writes: let the thread wait for the lock
            self._queue.put((batch, self.loop))
            outcomes = []
        finally:
            self._conn_lock.release()
        if outcomes:
            self._commits += 1
            resolve(outcomes)
        if self._pending and not self._scheduled:
            self._scheduled = True
            assert self.loop is not None
            self.loop.call_soon(self._flush)

    # the thread lane ------------------------------------------------------------------------

    def _thread_loop(self) -> None:
        while True:
            timeout = None
            if self.analyze_seconds > 0:
                timeout = max(0.0, self._next_analyze - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is _STOP:
                break
            with self._conn_lock:
                if self.on_loop:
                    self.conn.execute(f"PRAGMA busy_timeout={BUSY_WAIT_MS}")
                try:
                    if item is not None:
                        self._run_thread_group(*item)
                    self._maybe_analyze()
                finally:
                    if self.on_loop:
                        self.conn.execute("PRAGMA busy_timeout=0")
            self._call_back_loop()

    def _run_thread_group(self, first: list[Item], loop: asyncio.AbstractEventLoop) -> None:
        groups = [(first, loop)]
        size = len(first)
        while size < self.group_max:  # fold what else waits into the same transaction
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                break
            if more is _STOP:
                self._queue.put(_STOP)
                break
            groups.append(more)
            size += len(more[0])
        batch = [item for items, _loop in groups for item in items]
        try:
            outcomes = run_group(self.conn, self.tx, batch)
        except Busy as exc:  # cannot happen with a busy timeout, but answer rather than hang
            outcomes = [(future, False, exc.__cause__ or exc) for _fn, future in batch]
        self._commits += 1
        by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
        pos = 0
        for items, item_loop in groups:
            by_loop.setdefault(item_loop, []).extend(outcomes[pos : pos + len(items)])
            pos += len(items)
        for item_loop, found in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody to answer
                item_loop.call_soon_threadsafe(resolve, found)

    def _maybe_analyze(self) -> None:
        if self.analyze_seconds <= 0 or time.monotonic() < self._next_analyze:
            return
        # Statistics follow the data as it grows (a type created empty and filled later would
        # keep the plan of an empty table). Sampled: analysis_limit.
        if self._commits != self._analyzed_at:
            self._analyzed_at = self._commits
            with contextlib.suppress(sqlite3.OperationalError):
                self.conn.execute("ANALYZE")
        self._next_analyze = time.monotonic() + self.analyze_seconds

    def _call_back_loop(self) -> None:
        if self._wanted and self.loop is not None:
            self._wanted = False
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._flush)

    # the checkpointer -----------------------------------------------------------------------

    def _checkpoint_loop(self) -> None:
        """Copy committed WAL frames into the database file, off the event loop.

        PASSIVE: it never waits for, nor blocks, the writer or the readers. The writer starts
        the WAL over once everything in it has been copied.
        """
        conn = self._connect()
        seen = -1
        try:
            while not self._stop.wait(CHECKPOINT_EVERY):
                if self._commits != seen:
                    seen = self._commits
                    with contextlib.suppress(sqlite3.OperationalError):
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            with contextlib.suppress(sqlite3.OperationalError):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()
