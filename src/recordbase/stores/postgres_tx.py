"""ReadTx / WriteTx over one PostgreSQL connection: the PostgreSQL side of tx_sql.py's hooks.

Every method runs inside the one transaction the store opened for the call. Timestamps and
JSON are bound as timestamptz and jsonb; lists of values go as one array (`= ANY(...)`). Two
things differ from SQLite because many workers write at once:

- A unique constraint that fires turns into `UniqueClash` with the key's name, and the store
  retries the whole call once the winner has committed, so an upsert that lost an insert race
  becomes an update, and a create becomes a clean 409. Key rows (names, declared unique keys)
  go in with `INSERT ... ON CONFLICT DO NOTHING RETURNING`, so the row a concurrent writer got
  first comes back missing and names the key. Records go in with a plain INSERT: the service
  has checked client ids, external ids and the batch itself (fresh ULIDs cannot clash), so
  only a concurrent writer can make it fail; the error (which aborts the transaction) names
  the index that fired.
- Inside a write, records are read `FOR UPDATE`: the row is locked and re-read at its newest
  committed version, so read-modify-write (PATCH, If-Match, upsert) never loses an update.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg import sql as pg_sql
from psycopg.types.json import Jsonb

from recordbase.core.query import Query
from recordbase.core.records import Record
from recordbase.core.store import KeyRow, UniqueClash
from recordbase.core.types import RecordType
from recordbase.stores import pg_indexes
from recordbase.stores.common import RECORD_COLUMNS, record_from_row
from recordbase.stores.sql import POSTGRES, pg_tsquery
from recordbase.stores.tx_sql import INSERT_KEY, INSERT_RECORD, SqlTx

# Rows go to PostgreSQL as one JSON array that jsonb_to_recordset unpacks: the statement text
# is the same for any number of rows, so psycopg caches its conversion and prepares it, and
# the client serializes a batch with one orjson call. A multi-row VALUES with 13 parameters a
# row cost ~40 µs a record on the client (psycopg parses statements over 4 KiB or 50
# parameters anew each time and adapts each parameter in Python); arrays through unnest() cost
# as much (psycopg's list dumpers), and the json (not jsonb) variant re-parses each `data` on
# the server. `data` and `attachments` come out of the parsed array as jsonb values, exactly
# what a jsonb parameter holds; timestamps go as RFC 3339 text with their offset.
_INSERT_RECORDS = (
    INSERT_RECORD.removesuffix("VALUES ")
    + "SELECT %s, r.* FROM jsonb_to_recordset(%s::jsonb) AS r(id text, name text, "
    "external_id text, owner text, data jsonb, description text, attachments jsonb, "
    "version integer, created_at timestamptz, updated_at timestamptz, created_by text, "
    "updated_by text)"
)
_INSERT_KEYS = (
    INSERT_KEY.removesuffix("VALUES ")
    + "SELECT %s, r.r, r.k, r.v FROM jsonb_to_recordset(%s::jsonb) AS r(r text, k text, v text) "
    "ON CONFLICT DO NOTHING RETURNING key_name, value"
)
# PgTx.type_version's first message: BEGIN as the store's call would have it, and the query.
_BEGIN = {
    True: b"BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE; ",
    False: b"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; ",
}
_TYPE_VERSION = b"SELECT version FROM record_types WHERE id = "
IDLE = pq.TransactionStatus.IDLE
# The unique index a concurrent insert lost on -> the key name UniqueClash reports.
_CLASHES = {"records_id": "__id", "records_external_id": "__external_id"}


class Raced(Exception):
    """A concurrent transaction got in first; the store retries the whole call."""


class PgTx(SqlTx):
    """ReadTx and WriteTx over one PostgreSQL connection (see core/store.py and tx_sql.py)."""

    dialect = POSTGRES
    placeholder = "%s"
    # Concurrent workers each claim a different job instead of queueing on one row lock.
    skip_locked = " FOR UPDATE SKIP LOCKED"
    key_order = "k.created_at, k.id"

    def __init__(self, conn: psycopg.Connection[Any], writing: bool) -> None:
        self.conn = conn
        self.writing = writing
        self.bumped = False  # the call changed keys or types: tell the other workers
        self.raced = False  # a constraint fired that the service's own checks had passed

    def _bind_ts(self, value: datetime | None) -> Any:
        return value

    def type_version(self, type_id: str) -> int | None:
        """Every record write starts with this check: when it is the call's first statement,
        BEGIN goes in the same message (one round trip instead of two; the store commits)."""
        conn = self.conn
        if conn.autocommit or conn.info.transaction_status != IDLE:
            return super().type_version(type_id)
        query = _BEGIN[self.writing] + _TYPE_VERSION + pg_sql.Literal(type_id).as_bytes(conn)
        with conn.lock:
            result = conn.pgconn.exec_(query)  # blocks in libpq without the GIL
        if result.status != pq.ExecStatus.TUPLES_OK:
            raise pg_errors.error_from_result(result, encoding=conn.info.encoding)
        return int(result.get_value(0, 0) or 0) if result.ntuples else None

    def _bind_json(self, value: Any) -> Any:
        return Jsonb(value)

    def _text_query(self, text: str) -> str | None:
        return pg_tsquery(text)

    def _in(self, values: Sequence[str]) -> Iterator[tuple[str, tuple[Any, ...]]]:
        if len(values) == 1:
            # One value as a plain equality. Planned with statistics from before a type had
            # records (the type estimated at one row), `external_id = ANY(array)` was only a
            # filter on the external-id index, which then read every entry of the type: 4 ms
            # per upsert at 10,000 records instead of 0.02 ms (test_postgres_statistics.py).
            yield "= ?", (values[0],)
        elif values:
            yield "= ANY(?)", (list(values),)

    def _lock(self) -> str:
        return " ORDER BY id FOR UPDATE" if self.writing else ""

    def _insert_new(self, sql: str, params: Sequence[Any], what: str) -> None:
        row = self._x(sql + " ON CONFLICT DO NOTHING RETURNING id", params).fetchone()
        if row is None:  # another worker created the same project or type key first
            self.raced = True
            raise Raced(what)

    def bump_epoch(self) -> None:
        self.conn.execute("UPDATE meta SET v = (v::bigint + 1)::text WHERE k = 'epoch'")
        # Delivered to every listening worker when (and only if) this transaction commits.
        self.conn.execute("NOTIFY recordbase_epoch")
        self.bumped = True

    def delete_type(self, rtype: RecordType) -> int:
        deleted = self._delete_type_rows(rtype.id)
        pg_indexes.drop_all(self.conn, rtype.id)
        return deleted

    def sync_indexes(self, rtype: RecordType) -> None:
        pg_indexes.sync(self.conn, rtype)

    def explain(self, rtype: RecordType, query: Query) -> str:
        """PostgreSQL's plan for a list query (for tests and operators)."""
        sql, params = self._select(rtype, query, count=False)
        rows = self.conn.execute("EXPLAIN " + sql, params).fetchall()
        return "\n".join(str(r[0]) for r in rows)

    def iter_records(self, rtype: RecordType) -> Iterator[Record]:
        # A named (server-side) cursor streams big types instead of loading them whole.
        with self.conn.cursor(name="iter_records") as cur:
            cur.execute(
                f"SELECT {RECORD_COLUMNS} FROM records WHERE type_id = %s ORDER BY seq",
                (rtype.id,),
            )
            for row in cur:
                yield record_from_row(rtype.key, row)

    def insert_records(
        self, rtype: RecordType, records: Sequence[Record], keys: Sequence[KeyRow]
    ) -> None:
        if records:
            try:
                self.conn.execute(_INSERT_RECORDS, (rtype.id, _records_json(records)))
            except pg_errors.UniqueViolation as exc:
                # Only a concurrent writer gets here: the service checked ids, external ids
                # and the batch itself. The transaction is aborted; the store retries the call.
                self.raced = True
                raise UniqueClash(_CLASHES.get(exc.diag.constraint_name or "", "__id")) from exc
        self._insert_keys(rtype, keys)

    def _insert_keys(self, rtype: RecordType, keys: Sequence[KeyRow], race: bool = True) -> None:
        if not keys:
            return
        payload = orjson.dumps([{"r": r, "k": k, "v": v} for r, k, v in keys]).decode()
        rows = self.conn.execute(_INSERT_KEYS, (rtype.id, payload)).fetchall()
        if len(rows) != len(keys):
            lost = _first_lost(keys, {(str(n), str(v)) for n, v in rows})
            self.raced = self.raced or race
            raise UniqueClash(lost[1], lost[2])

    def _update_rows(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if self.conn.info.transaction_status == IDLE:
            self.conn.execute("SELECT 1")  # begin: the block below must be a savepoint
        try:
            # A savepoint, so that an external_id clash leaves the transaction usable.
            with self.conn.transaction(), self.conn.cursor() as cur:
                cur.executemany(sql.replace("?", self.placeholder), rows)
        except psycopg.errors.UniqueViolation as exc:
            self.raced = True
            raise UniqueClash("__external_id") from exc


def _first_lost(chunk: Sequence[KeyRow], done: set[tuple[str, str]]) -> KeyRow:
    """The first key row not inserted: taken by another record, or twice in the chunk."""
    seen: set[tuple[str, str]] = set()
    for row in chunk:
        pair = (row[1], row[2])
        if pair not in done or pair in seen:
            return row
        seen.add(pair)
    return chunk[0]


def _records_json(records: Sequence[Record]) -> str:
    """The records as the JSON array _INSERT_RECORDS unpacks (the columns after type_id)."""
    return orjson.dumps(
        [
            {
                "id": r.id,
                "name": r.name,
                "external_id": r.external_id,
                "owner": r.owner,
                "data": r.data,
                "description": r.description,
                "attachments": r.attachments,
                "version": r.version,
                "created_at": r.created_at,
                "updated_at": r.updated_at,
                "created_by": r.created_by,
                "updated_by": r.updated_by,
            }
            for r in records
        ]
    ).decode()
