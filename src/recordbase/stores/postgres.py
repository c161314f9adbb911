"""The PostgreSQL store: a connection pool, one transaction per call, retries on races.

The service's transaction functions are synchronous, so each call runs on a pooled connection
in a worker thread (`psycopg_pool.ConnectionPool` + a thread pool of the same size): one
`BEGIN ... COMMIT` per call, reads in REPEATABLE READ READ ONLY (a page and its count see one
snapshot), writes in READ COMMITTED with row locks (see postgres_tx.py). The BEGIN goes with
the call's first statement (a record write's type-version check sends both in one message),
so a single create costs three round trips: BEGIN + check, INSERT, COMMIT. A write that lost a
race to another worker (a unique row that appeared after the service checked, a deadlock, a
serialization failure) is rolled back and run again from the start, a few times at most, so the
retry sees the winner's row and answers as if the requests had come one after the other.

Cache invalidation across workers (`epoch`): each store LISTENs on `recordbase_epoch` on one
dedicated connection in a background thread; a transaction that changes keys or types sends
NOTIFY, which PostgreSQL delivers at commit. `epoch()` is then an in-memory read (no
round trip per request). The worker that made the change bumps its own value before it answers,
so it never serves stale keys to its own next request; other workers learn within the
notification latency. If the listening connection drops, `epoch()` returns a new value on every
call (the caches reload every time: slower, never stale) until it is back.

Planner statistics (`analyze`): every records index leads with the type id, and a type made
after the last ANALYZE is estimated at one row. Autovacuum analyzes a table once a tenth of it
has changed, so in a large deployment a new type can grow to many thousands of records on that
estimate, and the planner then finds a record by external id through any index on the type id
with a filter, reading every record of the type (an upsert at 10,000 records: ~3 ms instead of
0.1). A background thread runs ANALYZE at most every `pg_analyze_seconds` while writes come in,
under an advisory lock and only when no worker analyzed the table within that time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson
import psycopg
from psycopg import errors as pg_errors
from psycopg.types.json import set_json_dumps, set_json_loads
from psycopg_pool import ConnectionPool

from recordbase.config import Settings
from recordbase.errors import Conflict, ValidationFailed
from recordbase.stores.common import apply_migrations
from recordbase.stores.postgres_tx import PgTx, Raced

T = TypeVar("T")
log = logging.getLogger("recordbase")

CHANNEL = "recordbase_epoch"
ATTEMPTS = 5  # a write retried this often after losing races, then the last error stands
_RETRYABLE = (Raced, pg_errors.DeadlockDetected, pg_errors.SerializationFailure)
_MIGRATION_LOCK = 7_262_736  # pg_advisory_xact_lock key: one migrator at a time
_ANALYZE_LOCK = 7_262_737  # pg_try_advisory_lock key: one worker analyzes at a time
# Whether some worker (or autovacuum) analyzed `records` within the last %s seconds.
_ANALYZED_LATELY = (
    "SELECT coalesce(greatest(last_analyze, last_autoanalyze) "
    "> now() - make_interval(secs => %s), false) "
    "FROM pg_stat_user_tables WHERE relid = to_regclass('records')"
)
_MODES = {  # writing -> (isolation level, read only); see the module docstring
    True: (psycopg.IsolationLevel.READ_COMMITTED, False),
    False: (psycopg.IsolationLevel.REPEATABLE_READ, True),
}


def _configure(conn: psycopg.Connection[Any]) -> None:
    set_json_dumps(orjson.dumps, conn)
    set_json_loads(orjson.loads, conn)


def _utc(url: str) -> str:
    """The URL with `-c timezone=UTC` added to its options: timestamps come back in UTC."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    params["options"] = (str(params.get("options") or "") + " -c timezone=UTC").strip()
    return psycopg.conninfo.make_conninfo("", **params)


def migrate(url: str) -> int:
    """Apply the packaged migrations not yet applied (under an advisory lock)."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        has_meta = conn.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
        current = apply_migrations(
            conn, "postgres", bool(has_meta and has_meta[0]), lambda c, sql: c.execute(sql.encode())
        )
        conn.execute("INSERT INTO meta (k, v) VALUES ('epoch', '0') ON CONFLICT DO NOTHING")
    return current


NUL_DETAIL = (
    "PostgreSQL cannot store the character U+0000 (NUL) in text or in JSON strings; "
    "remove it or encode it."
)


def _nul(exc: psycopg.DataError) -> bool:
    """A NUL character refused: by psycopg in a text parameter, or by the server in JSON."""
    if isinstance(exc, pg_errors.UntranslatableCharacter):
        return "\\u0000" in str(exc)
    return "NUL" in str(exc) and exc.sqlstate is None


def _retry(exc: Exception, tx: PgTx, writing: bool, attempt: int) -> bool:
    """Whether a failed call may have lost a race, so that running it again could succeed."""
    if isinstance(exc, _RETRYABLE) or (writing and tx.raced):
        return True
    # In READ COMMITTED each statement sees the newest commits, so the service's own clash
    # check can see a row that its earlier lookup missed (an upsert that should have become an
    # update). One more run sees that row from the start; a real clash just answers 409 again.
    return writing and attempt == 0 and isinstance(exc, Conflict)


class PostgresStore:
    """Store over one PostgreSQL database (see the module docstring)."""

    dialect = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.database_url
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._epoch = 0
        self._epoch_lock = threading.Lock()  # bumped from pool threads and the listener
        self._listening = False
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self._analyzer: threading.Thread | None = None
        self._writes = 0  # write calls so far (the analyzer's cue; a count, not exact)

    def migrate(self) -> int:
        return migrate(self.url)

    async def open(self) -> None:
        if self._pool is not None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.migrate)
        size = max(1, self.settings.pg_pool_max)
        self._pool = ConnectionPool(
            _utc(self.url),
            min_size=max(1, min(self.settings.pg_pool_min, size)),
            max_size=size,
            configure=_configure,
            open=False,
            name="recordbase",
        )
        await loop.run_in_executor(None, lambda: self._pool.open(wait=True))  # type: ignore[union-attr]
        self._threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix="recordbase-pg")
        ready = threading.Event()
        self._stop.clear()
        self._listener = threading.Thread(
            target=self._listen, args=(ready,), name="recordbase-listen", daemon=True
        )
        self._listener.start()
        await loop.run_in_executor(None, ready.wait, 10)
        if self.settings.pg_analyze_seconds > 0:
            self._analyzer = threading.Thread(
                target=self._analyze_loop, name="recordbase-analyze", daemon=True
            )
            self._analyzer.start()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._listener is not None:
            self._stop.set()
            await loop.run_in_executor(None, self._wake_listener)
            await loop.run_in_executor(None, self._listener.join)
            self._listener = None
        if self._analyzer is not None:
            self._stop.set()
            await loop.run_in_executor(None, self._analyzer.join)
            self._analyzer = None
        if self._threads is not None:
            self._threads.shutdown(wait=True)
            self._threads = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await loop.run_in_executor(None, pool.close)

    def info(self) -> dict[str, Any]:
        safe = psycopg.conninfo.conninfo_to_dict(self.url)
        safe.pop("password", None)
        return {"backend": "postgres", "database": safe.get("dbname"), "host": safe.get("host")}

    # epoch ---------------------------------------------------------------------------------

    async def epoch(self) -> int:
        if not self._listening:
            return self._bump()  # no notifications: never trust a cache (slow, but correct)
        return self._epoch

    def _bump(self) -> int:
        with self._epoch_lock:
            self._epoch += 1
            return self._epoch

    def _listen(self, ready: threading.Event) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening = True
                    self._bump()  # we may have missed notifications while away
                    ready.set()
                    for _note in conn.notifies():
                        if self._stop.is_set():
                            break
                        self._bump()
            except psycopg.Error as exc:
                self._listening = False
                log.warning("epoch listener lost its PostgreSQL connection: %s", exc)
                ready.set()
                self._stop.wait(1.0)
        self._listening = False

    def _wake_listener(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(f"NOTIFY {CHANNEL}, 'wake'")
        except psycopg.Error:
            pass  # the listener is down too; it sees _stop within a second

    # planner statistics ---------------------------------------------------------------------

    def _analyze_loop(self) -> None:
        seen = self._writes
        while not self._stop.wait(self.settings.pg_analyze_seconds):
            seen = self.analyze_if_written(seen)

    def analyze_if_written(self, seen: int) -> int:
        """One round of the analyzer: `analyze()` when writes came in here since the count
        `seen`; the count to pass next time."""
        now = self._writes
        if now == seen:
            return now  # nothing written here since the last look
        try:
            self.analyze()
        except psycopg.Error as exc:  # statistics can wait for the next round
            log.warning("ANALYZE of the records tables failed: %s", exc)
        return now

    def analyze(self, *, force: bool = False) -> bool:
        """ANALYZE the records tables unless another worker is at it or (unless `force`) did
        it within `pg_analyze_seconds`; True when this call ran it (see the module docstring).
        """
        window = max(1, self.settings.pg_analyze_seconds)
        with psycopg.connect(self.url, autocommit=True) as conn:
            locked = conn.execute("SELECT pg_try_advisory_lock(%s)", (_ANALYZE_LOCK,)).fetchone()
            if not (locked and locked[0]):
                return False
            try:
                lately = conn.execute(_ANALYZED_LATELY, (window,)).fetchone()
                if not force and lately is not None and lately[0]:
                    return False
                conn.execute("ANALYZE records, record_keys")
                return True
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_ANALYZE_LOCK,))

    # calls ---------------------------------------------------------------------------------

    async def read(self, fn: Callable[[Any], T]) -> T:
        assert self._threads is not None, "store not open"
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._run, fn, False)

    async def write(self, fn: Callable[[Any], T], *, slow: bool = False) -> T:
        assert self._threads is not None, "store not open"
        self._writes += 1
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._run, fn, True)

    def _run(self, fn: Callable[[Any], T], writing: bool) -> T:
        assert self._pool is not None, "store not open"
        for attempt in range(ATTEMPTS):
            with self._pool.connection() as conn:
                tx = PgTx(conn, writing)
                try:
                    result = self._once(conn, tx, fn, writing)
                except psycopg.DataError as exc:
                    if _nul(exc):
                        raise ValidationFailed(NUL_DETAIL) from exc
                    raise
                except Exception as exc:
                    if attempt + 1 < ATTEMPTS and _retry(exc, tx, writing, attempt):
                        log.debug("write lost a race (%s); retrying", type(exc).__name__)
                        continue
                    raise
            if tx.bumped:
                self._bump()
            return result
        raise AssertionError("unreachable")

    def _once(
        self, conn: psycopg.Connection[Any], tx: PgTx, fn: Callable[[Any], T], writing: bool
    ) -> T:
        level, read_only = _MODES[writing]
        if conn.isolation_level != level:  # setting it, even unchanged, rebuilds BEGIN
            conn.isolation_level = level
        if conn.read_only != read_only:
            conn.read_only = read_only
        # The transaction begins with the call's first statement: psycopg's implicit BEGIN, or
        # the BEGIN PgTx.type_version sends in the same message as its query (postgres_tx.py).
        try:
            result = fn(tx)
        except BaseException as exc:
            try:
                conn.rollback()
            except Exception as exc2:  # a broken connection: keep the first error
                log.warning("rollback failed after %s: %s", type(exc).__name__, exc2)
            raise
        conn.commit()
        return result
