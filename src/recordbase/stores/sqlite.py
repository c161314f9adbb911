"""The embedded SQLite store: WAL, one group-committing writer connection, pooled readers.

Writes are group-committed on one connection (stores/sqlite_writer.py): every write queued
by the time the group starts runs in one transaction, a failing write fails alone, and no
caller hears "done" before the commit. A writer thread runs the groups (or, by setting, the
event loop itself). Reads run on a few reader threads, each with its own connection (WAL
lets them read while the writer writes).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from recordbase.config import Settings
from recordbase.stores.common import apply_migrations
from recordbase.stores.sqlite_checkpoint import BACKSTOP_PAGES, Checkpointer
from recordbase.stores.sqlite_indexes import analyze, upgrade_indexes
from recordbase.stores.sqlite_readers import Readers
from recordbase.stores.sqlite_sched import thread_policy
from recordbase.stores.sqlite_writer import Writer

log = logging.getLogger("recordbase")

T = TypeVar("T")
# The writer thread and the event loop share one GIL. Under the default scheduling policy
# (`sqlite_threads=normal`), at CPython's default 5 ms switch interval the loop waited up to
# 5 ms for the GIL whenever it made a blocking call while the writer ran Python code; 0.5 ms
# nearly doubled batch-of-100 throughput (docs/performance.md). Under SCHED_BATCH (the
# default, sqlite_sched.py) the writer runs in the loop's pauses, and CPython's 5 ms is
# faster: +5% single creates, +7% batches of 100, p99 lower (round 15).
GIL_SWITCH_INTERVAL = 0.0005


# Reader threads when `sqlite_readers` is 0: one per usable core, at most this many.
MAX_AUTO_READERS = 4


def reader_count(configured: int) -> int:
    """Reader threads for a `sqlite_readers` setting (0: one per usable core, at most 4).

    Python's sqlite3 hands the GIL back and forth around each step of a query, so reader
    threads beyond the cores the process may use only contend for it: on one core, four
    readers gave ~470 filtered lists/s and one gave ~690, with half the p99
    (docs/performance.md).
    """
    if configured > 0:
        return configured
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_AUTO_READERS, cores))


def writes_on_loop(setting: str) -> bool:
    """Whether the event loop runs the write groups (`sqlite_writer`: thread or loop)."""
    if setting not in ("thread", "loop"):
        raise ValueError(f"sqlite_writer must be thread or loop, not {setting!r}")
    return setting == "loop"


def sqlite_path(url: str) -> str:
    for prefix in ("sqlite:///", "sqlite://", "sqlite:"):
        if url.startswith(prefix):
            return url[len(prefix) :] or ":memory:"
    return url


def connect(path: str, synchronous: str = "NORMAL", readonly: bool = False) -> sqlite3.Connection:
    # Statements are cached by their text: list queries name their type as a literal
    # (partial declared indexes), so each type has its own.
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=30, cached_statements=512
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA cache_size=-65536")
    conn.execute("PRAGMA temp_store=MEMORY")
    # Unicode case folding for iexact/icontains (SQLite's lower() folds ASCII only).
    conn.create_function("rb_fold", 1, _fold, deterministic=True)
    if readonly:
        conn.execute("PRAGMA query_only=ON")
    return conn


def in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """`fn(conn)` in one BEGIN IMMEDIATE ... COMMIT (ROLLBACK if it raises)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return result


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the packaged migrations not yet applied; returns the schema version."""

    def apply(conn: sqlite3.Connection) -> int:
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        current = apply_migrations(conn, "sqlite", bool(has_meta), _apply)
        conn.execute("INSERT OR IGNORE INTO meta (k, v) VALUES ('epoch', '0')")
        return current

    return in_transaction(conn, apply)


def _apply(conn: Any, sql: str) -> None:
    for statement in _statements(sql):
        conn.execute(statement)


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _statements(sql: str) -> list[str]:
    # complete_statement knows that a trigger body's `;` does not end the CREATE TRIGGER.
    found, buffer = [], ""
    for line in sql.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            found.append(buffer.strip().rstrip(";"))
            buffer = ""
    return [s for s in found if s] + ([buffer.strip()] if buffer.strip() else [])


class SqliteStore:
    """Store over one SQLite file (see the module docstring for the threading model)."""

    dialect = "sqlite"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = sqlite_path(settings.database_url)
        self._writer: Writer | None = None
        self._readers: Readers | None = None
        self._epoch_conn: sqlite3.Connection | None = None
        self._checkpointer: Checkpointer | None = None

    def migrate(self) -> int:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path, self.settings.sqlite_synchronous)
        try:
            return migrate(conn)
        finally:
            conn.close()

    async def open(self) -> None:
        if self._writer is not None:
            return
        self.migrate()
        synchronous = self.settings.sqlite_synchronous
        # The writer's, committer's and checkpointer's threads (sqlite_sched.py).
        sched = thread_policy(self.settings.sqlite_threads)
        normal = self.settings.sqlite_threads == "normal"
        if normal and sys.getswitchinterval() > GIL_SWITCH_INTERVAL:
            sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        writer_conn = connect(self.path, synchronous)
        upgraded = in_transaction(writer_conn, upgrade_indexes)
        if upgraded:
            log.warning("declared indexes of %d type(s) rebuilt", upgraded)
        # Planner statistics, sampled (at most ~1,000 rows per index: ~50 ms at 1M records).
        # Without them SQLite walked the created_at index for a filter on a declared index's
        # path: 1.4 s instead of 0.6 ms at 1M records (docs/performance.md).
        analyze(writer_conn)
        # Checkpoints run on their own thread (sqlite_checkpoint.py); the writer's automatic
        # one is only a backstop.
        writer_conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        self._writer = Writer(
            writer_conn,
            on_loop=writes_on_loop(self.settings.sqlite_writer),
            group_max=self.settings.group_commit_max,
            analyze_seconds=self.settings.sqlite_analyze_seconds,
            on_thread_start=sched,
        )
        self._writer.start()
        writer = self._writer
        self._checkpointer = Checkpointer(
            lambda: connect(self.path, synchronous), writer.groups, on_thread_start=sched
        )
        self._checkpointer.start()
        self._readers = Readers(
            reader_count(self.settings.sqlite_readers),
            lambda: connect(self.path, readonly=True),
        )
        self._readers.start()
        self._epoch_conn = connect(self.path, readonly=True)

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self._readers is not None:
            self._readers.stop()
            self._readers = None
        if self._epoch_conn is not None:
            self._epoch_conn.close()
            self._epoch_conn = None

    def info(self) -> dict[str, Any]:
        return {"backend": "sqlite", "path": self.path}

    async def epoch(self) -> int:
        # A one-row primary-key read on a dedicated read-only connection: microseconds, and
        # WAL readers never wait for the writer, so running it on the loop is safe.
        assert self._epoch_conn is not None
        row = self._epoch_conn.execute("SELECT v FROM meta WHERE k = 'epoch'").fetchone()
        return int(row[0]) if row else 0

    async def read(self, fn: Callable[[Any], T]) -> T:
        assert self._readers is not None, "store not open"
        return await self._readers.run(fn)

    def write(self, fn: Callable[[Any], T], *, slow: bool = False) -> Awaitable[T]:
        """Run `fn` in a write transaction; `slow`: it may take long (e.g. builds an index),
        so it runs on the writer thread rather than the event loop. Awaitable as the Store
        protocol's coroutine is: the writer's future itself, with no coroutine around it."""
        assert self._writer is not None, "store not open"
        return self._writer.write(fn, slow=slow)
