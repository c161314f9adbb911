"""The SQLite write path: one connection, group commit, run by a writer thread or the loop.

Writes queue up; a group is every write queued by the time it starts (up to
`group_commit_max`), run in one transaction and committed before any caller is answered.

A group first runs without savepoints (one BEGIN, every write, one COMMIT), the new records
of its writes held back and inserted together (sqlite_held.py). If a write raises, or the
held rows do, the whole transaction is rolled back and the group is run again with a
SAVEPOINT around each write and nothing held, so only the failing one fails; a write is a
function of the transaction alone, so running it again is safe (the PostgreSQL store
retries them too). SAVEPOINT and RELEASE were a third of the writer's time under single
creates (docs/performance.md).

Who runs the groups (`sqlite_writer`):
- `thread` (the default): a writer thread runs the writes and commits; the event loop only
  queues writes and is told of each group's outcome.
- `loop`: the event loop runs each group's writes itself, one group per loop turn, and a
  committer thread runs its COMMIT. Writes are Python code and changes to pages in SQLite's
  own cache; on a writer thread they pass the GIL back and forth with the loop around every
  SQLite call. The COMMIT is where the disk is touched (the WAL is written; a checkpoint may
  run and sync), so it stays off the loop: a slow disk delays answers, never the loop. The
  connection is held from the loop's BEGIN to the committer's COMMIT; the next group starts
  after it. The loop never waits on a lock: its busy timeout is 0 and a group that finds the
  database locked by another process goes to the writer thread, which waits. Slow writes
  (type changes that build indexes) and writes from another event loop use the writer
  thread too.
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

from recordbase.stores.loops import running_loop
from recordbase.stores.sqlite_indexes import analyze
from recordbase.stores.sqlite_tx import SqliteTx

Outcome = tuple["asyncio.Future[Any]", bool, Any]
Item = tuple[Callable[[Any], Any], "asyncio.Future[Any]"]
_STOP = object()
BUSY_WAIT_MS = 30000


class Busy(Exception):
    """Another connection holds the write lock (busy timeout 0 on the loop)."""


def begin(conn: sqlite3.Connection, tx: SqliteTx) -> None:
    """BEGIN IMMEDIATE, `tx` remembering nothing from before; Busy when another connection
    holds the write lock."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise Busy from exc
        raise
    tx.forget()


def run_writes(conn: sqlite3.Connection, tx: SqliteTx, batch: list[Item]) -> list[Outcome]:
    """Run `batch` in the transaction `begin` opened; a failing write fails alone.

    Leaves the transaction open for `commit` unless every write failed (then nothing is open).
    """
    results: list[Any] = []
    try:
        if len(batch) > 1:  # new records of several writes go out together (sqlite_held.py)
            tx.hold_inserts()
        for fn, _future in batch:
            results.append(fn(tx))
        tx.send_held()
    except BaseException as exc:  # some write failed: undo all, then isolate it
        tx.forget()
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
        tx.forget()
        for fn, future in batch:
            conn.execute("SAVEPOINT w")
            try:
                result = fn(tx)
                conn.execute("RELEASE w")
                outcomes.append((future, True, result))
            except BaseException as exc:  # the caller gets it; the group goes on
                tx.forget()  # it may have changed a type before it failed
                conn.execute("ROLLBACK TO w")
                conn.execute("RELEASE w")
                outcomes.append((future, False, exc))
    except BaseException as exc:  # the database failed under us: nobody's write happened
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return failed(batch, exc)
    return outcomes


def commit(conn: sqlite3.Connection, outcomes: list[Outcome]) -> list[Outcome]:
    """COMMIT the open transaction; if that fails, nobody's write happened."""
    if not conn.in_transaction:
        return outcomes
    try:
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        return [(future, False, exc) for future, _ok, _value in outcomes]
    return outcomes


def run_group(conn: sqlite3.Connection, tx: SqliteTx, batch: list[Item]) -> list[Outcome]:
    """begin + run_writes + commit: the whole group on the calling thread."""
    try:
        begin(conn, tx)  # Busy propagates: the caller decides who waits
    except sqlite3.Error as exc:
        return failed(batch, exc)
    return commit(conn, run_writes(conn, tx, batch))


def failed(batch: list[Item], exc: BaseException) -> list[Outcome]:
    """Every write of `batch` failed with `exc` (nothing of it was committed)."""
    return [(future, False, exc) for _fn, future in batch]


def resolve(outcomes: list[Outcome]) -> None:
    for future, ok, value in outcomes:
        if future.done():  # the caller went away (cancelled)
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class Writer:
    """Owns the writer connection: the loop lane, the writer thread and the committer."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        on_loop: bool,
        group_max: int,
        analyze_seconds: int,
        on_thread_start: Callable[[], None] = lambda: None,
    ) -> None:
        self.conn = conn
        self.on_thread_start = on_thread_start  # each of its threads runs it first
        self.tx = SqliteTx(conn, remember_types=True)
        self.on_loop = on_loop
        self.group_max = max(1, group_max)
        self.analyze_seconds = analyze_seconds
        self.loop: asyncio.AbstractEventLoop | None = None
        # the loop lane: writes waiting for the next group
        self._pending: collections.deque[Item] = collections.deque()
        self._scheduled = False
        # the writer thread's writes of the current turn of each event loop (_hand_over)
        self._outbox: dict[asyncio.AbstractEventLoop, list[Item]] = {}
        # Who has the connection: the writer thread for a group, or the loop lane from its
        # BEGIN until the committer's COMMIT (the committer releases it).
        self._conn_lock = threading.Lock()
        self._wanted = False  # the loop found the connection taken by the writer thread
        # the writer thread: (items, loop) groups; the committer: loop-lane outcomes to commit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._commits: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._groups = 0  # groups committed: ANALYZE runs only when this moved
        self._next_analyze = time.monotonic() + analyze_seconds
        self._analyzed_at = 0

    def start(self) -> None:
        targets = [(self._thread_loop, "recordbase-writer")]
        if self.on_loop:
            self.loop = asyncio.get_running_loop()
            self.conn.execute("PRAGMA busy_timeout=0")
            targets.append((self._commit_loop, "recordbase-commit"))
        for target, name in targets:
            thread = threading.Thread(target=self._starting, args=(target,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    async def stop(self) -> None:
        while self._pending or self._conn_lock.locked():  # queued writes are carried out
            self._flush()
            await asyncio.sleep(0.001)
        for waiting, box in list(self._outbox.items()):
            self._hand_over(waiting, box)
        self._queue.put(_STOP)
        self._commits.put(_STOP)
        loop = asyncio.get_running_loop()
        for thread in self._threads:
            await loop.run_in_executor(None, thread.join)
        self._threads.clear()
        self.conn.close()

    def write(self, fn: Callable[[Any], Any], *, slow: bool = False) -> asyncio.Future[Any]:
        """Queue `fn`; the future answers its result once its group committed (or its error).

        A plain function returning the future, not a coroutine around it: one coroutine less
        to make, start and finish per write (the caller awaits the future itself)."""
        loop = running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if slow:
            self._queue.put(([(fn, future)], loop))
        elif loop is self.loop:
            self._pending.append((fn, future))
            if not self._scheduled:
                self._scheduled = True
                loop.call_soon(self._flush)
        else:
            box = self._outbox.get(loop)
            if box is None:
                box = self._outbox[loop] = []
                loop.call_soon(self._hand_over, loop, box)
            box.append((fn, future))
            if len(box) >= self.group_max:
                self._hand_over(loop, box)
        return future

    def _hand_over(self, loop: asyncio.AbstractEventLoop, box: list[Item]) -> None:
        """Give the writer thread what this loop turn wrote, as one queue item.

        Putting each write on the queue on its own woke the waiting writer thread once per
        write; on one core each wake-up took the GIL's holder off the CPU for the writer,
        which then waited for the GIL: 10% of the GIL's time in single creates went to
        `put` (py-spy --gil, docs/performance.md). The writes of one loop turn go together.
        """
        if self._outbox.get(loop) is box:
            del self._outbox[loop]
            self._queue.put((box, loop))

    # the loop lane -------------------------------------------------------------------------

    def _flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        if not self._conn_lock.acquire(blocking=False):
            # Taken: by the committer (its answer calls _flush) or by the writer thread, which
            # calls _flush when it lets go if asked. Asking before trying once more leaves no
            # moment where both miss each other.
            self._wanted = True
            if not self._conn_lock.acquire(blocking=False):
                return
        n = min(len(self._pending), self.group_max)
        batch = [self._pending.popleft() for _ in range(n)]
        try:
            begin(self.conn, self.tx)
        except Busy:  # another process writes: let the writer thread wait for the lock
            self._conn_lock.release()
            self._queue.put((batch, self.loop))
            return
        except BaseException as exc:
            self._conn_lock.release()
            resolve(failed(batch, exc))
            self._again()
            return
        try:
            outcomes = run_writes(self.conn, self.tx, batch)
        except BaseException as exc:  # run_writes answers write errors; this is the database
            outcomes = failed(batch, exc)
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        if self.conn.in_transaction:
            self._commits.put(outcomes)  # the committer commits, lets go and answers
            return
        self._conn_lock.release()  # every write failed: nothing to commit
        resolve(outcomes)
        self._again()

    def _again(self) -> None:
        if self._pending and not self._scheduled:
            self._scheduled = True
            assert self.loop is not None
            self.loop.call_soon(self._flush)

    def _answer(self, outcomes: list[Outcome]) -> None:
        """On the loop, once the committer is done: answer, then start the next group."""
        resolve(outcomes)
        self._again()

    def _commit_loop(self) -> None:
        assert self.loop is not None
        while True:
            outcomes = self._commits.get()
            if outcomes is _STOP:
                break
            try:
                outcomes = commit(self.conn, outcomes)
                self._groups += 1
            finally:
                self._conn_lock.release()
            self._call_back_loop()
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody to answer
                self.loop.call_soon_threadsafe(self._answer, outcomes)

    # the writer thread ----------------------------------------------------------------------

    def _starting(self, target: Callable[[], None]) -> None:
        self.on_thread_start()
        target()

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
        except Busy as exc:  # the busy timeout ran out
            outcomes = failed(batch, exc.__cause__ or exc)
        self._groups += 1
        by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
        pos = 0
        for items, item_loop in groups:
            by_loop.setdefault(item_loop, []).extend(outcomes[pos : pos + len(items)])
            pos += len(items)
        for item_loop, found in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody to answer
                item_loop.call_soon_threadsafe(resolve, found)

    def groups(self) -> int:
        """Groups committed so far (the checkpointer's cue; read from another thread)."""
        return self._groups

    def _maybe_analyze(self) -> None:
        if self.analyze_seconds <= 0 or time.monotonic() < self._next_analyze:
            return
        # Statistics follow the data as it grows (a type created empty and filled later would
        # keep the plan of an empty table). Sampled: analysis_limit.
        if self._groups != self._analyzed_at:
            self._analyzed_at = self._groups
            with contextlib.suppress(sqlite3.OperationalError):
                analyze(self.conn)
        self._next_analyze = time.monotonic() + self.analyze_seconds

    def _call_back_loop(self) -> None:
        if self._wanted and self.loop is not None:
            self._wanted = False
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._flush)
