"""The embedded SQLite store: WAL, one group-committing writer thread, pooled readers.

Writes queue up for one writer thread. It takes every write waiting (up to
`group_commit_max`), runs each in its own SAVEPOINT inside one transaction, commits once, and
only then answers each caller: many requests share one fsync, a failing request rolls back
alone, and no caller hears "done" before its commit. Reads run on a few reader threads, each
with its own connection (WAL lets them read while the writer writes). The event loop never
blocks on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from recordbase.config import Settings
from recordbase.core.query import Filter, Query
from recordbase.core.records import ApiKey, Project, Record
from recordbase.core.store import KeyRow, UniqueClash
from recordbase.core.types import RecordType
from recordbase.stores.common import (
    KEY_COLUMNS,
    RECORD_COLUMNS,
    TYPE_COLUMNS,
    definition_to_json,
    key_from_row,
    migrations,
    project_from_row,
    record_from_row,
    ts,
    type_from_row,
)
from recordbase.stores.jobs_sql import JobsSql
from recordbase.stores.sql import SQLITE, Compiler, fts_query
from recordbase.stores.sqlite_indexes import drop_indexes, explain, sync_indexes

T = TypeVar("T")
_STOP = object()


def sqlite_path(url: str) -> str:
    for prefix in ("sqlite:///", "sqlite://", "sqlite:"):
        if url.startswith(prefix):
            return url[len(prefix) :] or ":memory:"
    return url


def connect(path: str, synchronous: str = "NORMAL", readonly: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
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


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the packaged migrations not yet applied; returns the schema version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
        ).fetchone()
        current = 0
        if has_meta:
            row = conn.execute("SELECT v FROM meta WHERE k='schema_version'").fetchone()
            current = int(row[0]) if row else 0
        for version, sql in migrations("sqlite"):
            if version > current:
                for statement in _statements(sql):
                    conn.execute(statement)
                current = version
        conn.execute(
            "INSERT INTO meta (k, v) VALUES ('schema_version', ?) "
            "ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            (str(current),),
        )
        conn.execute("INSERT OR IGNORE INTO meta (k, v) VALUES ('epoch', '0')")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return current


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


class SqliteTx(JobsSql):
    """ReadTx and WriteTx over one SQLite connection (see core/store.py; jobs: jobs_sql.py)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # meta, projects and keys --------------------------------------------------------------

    def get_meta(self, name: str) -> str | None:
        row = self.conn.execute("SELECT v FROM meta WHERE k = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            (name, value),
        )

    def bump_epoch(self) -> None:
        self.conn.execute("UPDATE meta SET v = CAST(v AS INTEGER) + 1 WHERE k = 'epoch'")

    def project_by_name(self, name: str) -> Project | None:
        row = self.conn.execute(
            "SELECT id, name, created_at FROM projects WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else project_from_row(row)

    def list_projects(self) -> list[Project]:
        rows = self.conn.execute("SELECT id, name, created_at FROM projects ORDER BY name")
        return [project_from_row(r) for r in rows]

    def insert_project(self, project: Project) -> None:
        self.conn.execute(
            "INSERT INTO projects (id, name, created_at) VALUES (?, ?, ?)",
            (project.id, project.name, ts(project.created_at)),
        )

    def key_by_hash(self, digest: str) -> ApiKey | None:
        row = self.conn.execute(
            f"SELECT {KEY_COLUMNS} FROM api_keys k JOIN projects p ON p.id = k.project_id "
            "WHERE k.hash = ?",
            (digest,),
        ).fetchone()
        return None if row is None else key_from_row(row)

    def get_key(self, key_id: str) -> ApiKey | None:
        row = self.conn.execute(
            f"SELECT {KEY_COLUMNS} FROM api_keys k JOIN projects p ON p.id = k.project_id "
            "WHERE k.id = ?",
            (key_id,),
        ).fetchone()
        return None if row is None else key_from_row(row)

    def list_keys(self, project_id: str | None) -> list[ApiKey]:
        sql = f"SELECT {KEY_COLUMNS} FROM api_keys k JOIN projects p ON p.id = k.project_id"
        args: tuple[Any, ...] = ()
        if project_id is not None:
            sql += " WHERE k.project_id = ?"
            args = (project_id,)
        return [key_from_row(r) for r in self.conn.execute(sql + " ORDER BY k.created_at", args)]

    def insert_key(self, key: ApiKey, digest: str) -> None:
        self.conn.execute(
            "INSERT INTO api_keys (id, project_id, prefix, hash, name, scopes, rate, burst, "
            "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key.id,
                key.project_id,
                key.prefix,
                digest,
                key.name,
                orjson.dumps([str(s) for s in key.scopes]).decode(),
                key.rate,
                key.burst,
                ts(key.created_at),
                ts(key.expires_at),
            ),
        )

    def revoke_key(self, key_id: str, at: datetime) -> None:
        self.conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (ts(at), key_id),
        )

    def touch_keys(self, touched: Sequence[tuple[str, datetime]]) -> None:
        self.conn.executemany(
            "UPDATE api_keys SET last_used_at = ? WHERE id = ?",
            [(ts(at), key_id) for key_id, at in touched],
        )

    # types ---------------------------------------------------------------------------------

    def get_type(self, project_id: str, key: str) -> RecordType | None:
        row = self.conn.execute(
            f"SELECT {TYPE_COLUMNS} FROM record_types WHERE project_id = ? AND key = ?",
            (project_id, key),
        ).fetchone()
        return None if row is None else type_from_row(row)

    def next_number(self, rtype: RecordType) -> int:
        row = self.conn.execute(
            "SELECT next_number FROM record_types WHERE id = ?", (rtype.id,)
        ).fetchone()
        return int(row[0]) if row else 1

    def type_version(self, type_id: str) -> int | None:
        row = self.conn.execute(
            "SELECT version FROM record_types WHERE id = ?", (type_id,)
        ).fetchone()
        return None if row is None else int(row[0])

    def list_types(self, project_id: str) -> list[RecordType]:
        rows = self.conn.execute(
            f"SELECT {TYPE_COLUMNS} FROM record_types WHERE project_id = ? ORDER BY key",
            (project_id,),
        )
        return [type_from_row(r) for r in rows]

    def insert_type(self, rtype: RecordType, next_number: int) -> None:
        self.conn.execute(
            "INSERT INTO record_types (id, project_id, key, definition, version, next_number, "
            "extra, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rtype.id,
                rtype.project_id,
                rtype.key,
                definition_to_json(rtype.definition),
                rtype.version,
                next_number,
                orjson.dumps(rtype.extra).decode(),
                ts(rtype.created_at),
                ts(rtype.updated_at),
            ),
        )

    def update_type(self, rtype: RecordType, next_number: int | None) -> None:
        self.conn.execute(
            "UPDATE record_types SET definition = ?, version = ?, extra = ?, updated_at = ?, "
            "next_number = COALESCE(?, next_number) WHERE id = ?",
            (
                definition_to_json(rtype.definition),
                rtype.version,
                orjson.dumps(rtype.extra).decode(),
                ts(rtype.updated_at),
                next_number,
                rtype.id,
            ),
        )

    def delete_type(self, rtype: RecordType) -> int:
        drop_indexes(self.conn, rtype.id)
        deleted = self.conn.execute("DELETE FROM records WHERE type_id = ?", (rtype.id,)).rowcount
        self.conn.execute("DELETE FROM record_keys WHERE type_id = ?", (rtype.id,))
        self.conn.execute("DELETE FROM record_types WHERE id = ?", (rtype.id,))
        return int(deleted)

    def allocate_numbers(self, rtype: RecordType, count: int) -> int:
        row = self.conn.execute(
            "UPDATE record_types SET next_number = next_number + ? WHERE id = ? "
            "RETURNING next_number",
            (count, rtype.id),
        ).fetchone()
        return int(row[0]) - count

    # records -------------------------------------------------------------------------------

    def get_records(self, rtype: RecordType, ids: Sequence[str]) -> list[Record]:
        return self.find_records(rtype, "id", ids)

    def find_records(self, rtype: RecordType, column: str, values: Sequence[str]) -> list[Record]:
        assert column in ("id", "external_id", "name")
        found: list[Record] = []
        for start in range(0, len(values), 500):
            chunk = list(values[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT {RECORD_COLUMNS} FROM records WHERE type_id = ? AND {column} IN ({marks})",
                (rtype.id, *chunk),
            )
            found.extend(record_from_row(rtype.key, r) for r in rows)
        return found

    def find_keys(self, rtype: RecordType, key_name: str, values: Sequence[str]) -> dict[str, str]:
        result: dict[str, str] = {}
        for start in range(0, len(values), 500):
            chunk = list(values[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            rows = self.conn.execute(
                "SELECT value, record_id FROM record_keys WHERE type_id = ? AND key_name = ? "
                f"AND value IN ({marks})",
                (rtype.id, key_name, *chunk),
            )
            result.update({str(v): str(r) for v, r in rows})
        return result

    def _select(self, rtype: RecordType, query: Query, count: bool) -> tuple[str, list[Any]]:
        c = Compiler(SQLITE)
        where = ["type_id = " + c.bind(rtype.id)]
        if query.filter is not None:
            where.append(c.compile(query.filter))
        match = fts_query(query.text) if query.text else None
        if match is not None:
            where.append(SQLITE.text_match(c, match))
        if count:
            return "SELECT count(*) FROM records WHERE " + " AND ".join(where), c.params
        if query.after is not None:
            where.append(c.keyset(query.sort, query.after))
        sql = (
            f"SELECT {RECORD_COLUMNS} FROM records WHERE {' AND '.join(where)} "
            f"ORDER BY {c.order_by(query.sort)} LIMIT {int(query.limit)}"
        )
        if query.offset:
            sql += f" OFFSET {int(query.offset)}"
        return sql, c.params

    def sync_indexes(self, rtype: RecordType) -> None:
        sync_indexes(self.conn, rtype)

    def explain(self, rtype: RecordType, query: Query) -> str:
        """The query plan of a list query (for tests and operators)."""
        sql, params = self._select(rtype, query, count=False)
        return explain(self.conn, sql, params)

    def list_records(self, rtype: RecordType, query: Query) -> list[Record]:
        sql, params = self._select(rtype, query, count=False)
        return [record_from_row(rtype.key, r) for r in self.conn.execute(sql, params)]

    def count_records(self, rtype: RecordType, filter: Filter | None, text: str | None) -> int:
        sql, params = self._select(rtype, Query(filter=filter, text=text), count=True)
        return int(self.conn.execute(sql, params).fetchone()[0])

    def iter_records(self, rtype: RecordType) -> Iterator[Record]:
        rows = self.conn.execute(
            f"SELECT {RECORD_COLUMNS} FROM records WHERE type_id = ? ORDER BY seq", (rtype.id,)
        )
        for row in rows:
            yield record_from_row(rtype.key, row)

    def insert_records(
        self, rtype: RecordType, records: Sequence[Record], keys: Sequence[KeyRow]
    ) -> None:
        try:
            self.conn.executemany(
                "INSERT INTO records (type_id, id, name, external_id, owner, data, description, "
                "attachments, version, created_at, updated_at, created_by, updated_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [_record_params(rtype.id, r) for r in records],
            )
            self._insert_keys(rtype, keys)
        except sqlite3.IntegrityError as exc:
            raise _clash(exc) from exc

    def _insert_keys(self, rtype: RecordType, keys: Sequence[KeyRow]) -> None:
        if keys:
            self.conn.executemany(
                "INSERT INTO record_keys (type_id, record_id, key_name, value) VALUES (?, ?, ?, ?)",
                [(rtype.id, *k) for k in keys],
            )

    def update_records(
        self, rtype: RecordType, records: Sequence[Record], keys: Sequence[KeyRow]
    ) -> None:
        try:
            self.conn.executemany(
                "DELETE FROM record_keys WHERE type_id = ? AND record_id = ?",
                [(rtype.id, r.id) for r in records],
            )
            self.conn.executemany(
                "UPDATE records SET name = ?, external_id = ?, owner = ?, data = ?, "
                "description = ?, attachments = ?, version = ?, updated_at = ?, updated_by = ? "
                "WHERE type_id = ? AND id = ?",
                [
                    (
                        r.name,
                        r.external_id,
                        r.owner,
                        orjson.dumps(r.data).decode(),
                        r.description,
                        orjson.dumps(r.attachments).decode(),
                        r.version,
                        ts(r.updated_at),
                        r.updated_by,
                        rtype.id,
                        r.id,
                    )
                    for r in records
                ],
            )
            self._insert_keys(rtype, keys)
        except sqlite3.IntegrityError as exc:
            raise _clash(exc) from exc

    def replace_key_rows(self, rtype: RecordType, key_name: str, rows: Sequence[KeyRow]) -> None:
        self.conn.execute(
            "DELETE FROM record_keys WHERE type_id = ? AND key_name = ?", (rtype.id, key_name)
        )
        try:
            self._insert_keys(rtype, rows)
        except sqlite3.IntegrityError as exc:
            raise UniqueClash(key_name) from exc

    def delete_records(self, rtype: RecordType, ids: Sequence[str]) -> None:
        self.conn.executemany(
            "DELETE FROM records WHERE type_id = ? AND id = ?", [(rtype.id, i) for i in ids]
        )
        self.conn.executemany(
            "DELETE FROM record_keys WHERE type_id = ? AND record_id = ?",
            [(rtype.id, i) for i in ids],
        )


def _record_params(type_id: str, r: Record) -> tuple[Any, ...]:
    return (
        type_id,
        r.id,
        r.name,
        r.external_id,
        r.owner,
        orjson.dumps(r.data).decode(),
        r.description,
        orjson.dumps(r.attachments).decode(),
        r.version,
        ts(r.created_at),
        ts(r.updated_at),
        r.created_by,
        r.updated_by,
    )


def _clash(exc: sqlite3.IntegrityError) -> UniqueClash:
    text = str(exc)
    if "records.type_id, records.id" in text:
        return UniqueClash("__id")
    if "records.external_id" in text:
        return UniqueClash("__external_id")
    return UniqueClash("__key")


class SqliteStore:
    """Store over one SQLite file (see the module docstring for the threading model)."""

    dialect = "sqlite"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.path = sqlite_path(settings.database_url)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._epoch_conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

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
        writer_conn = connect(self.path, self.settings.sqlite_synchronous)
        self._writer = threading.Thread(
            target=self._write_loop, args=(writer_conn,), name="recordbase-writer", daemon=True
        )
        self._writer.start()
        self._readers = ThreadPoolExecutor(
            max_workers=max(1, self.settings.sqlite_readers), thread_name_prefix="recordbase-read"
        )
        self._epoch_conn = connect(self.path, readonly=True)

    async def close(self) -> None:
        if self._writer is not None:
            self._queue.put(_STOP)
            await asyncio.get_running_loop().run_in_executor(None, self._writer.join)
            self._writer = None
        if self._readers is not None:
            self._readers.shutdown(wait=True)
            self._readers = None
        with self._lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
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
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn)

    def _reader_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, readonly=True)
            self._local.conn = conn
            with self._lock:
                self._reader_conns.append(conn)
        return conn

    def _run_read(self, fn: Callable[[Any], T]) -> T:
        conn = self._reader_conn()
        conn.execute("BEGIN")
        try:
            return fn(SqliteTx(conn))
        finally:
            conn.execute("COMMIT")

    async def write(self, fn: Callable[[Any], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, future, loop))
        return await future

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        tx = SqliteTx(conn)
        limit = max(1, self.settings.group_commit_max)
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            batch = [item]
            stop = False
            while len(batch) < limit:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop = True
                    break
                batch.append(more)
            self._run_group(conn, tx, batch)
            if stop:
                break
        conn.close()

    def _run_group(self, conn: sqlite3.Connection, tx: SqliteTx, batch: list[Any]) -> None:
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, future, _loop in batch:
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
            outcomes = [(future, False, exc) for _fn, future, _loop in batch]
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for (_fn, _future, loop), outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(loop, []).append(outcome)
        for loop, items in by_loop.items():
            # A closed loop's callers are gone: nobody is left to answer.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, items)


def _resolve(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in items:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
