"""ReadTx / WriteTx over one PostgreSQL connection (see core/store.py; mirrors stores/sqlite.py).

Every method runs inside the one transaction the store opened for the call. Two things differ
from SQLite because many workers write at once:

- Unique constraints are checked with `INSERT ... ON CONFLICT DO NOTHING RETURNING`, so a row
  a concurrent writer got first comes back missing (never an aborted transaction) and turns into
  `UniqueClash` with the key's name. The store then retries the whole call once the winner has
  committed, so an upsert that lost an insert race becomes an update, and a create becomes a
  clean 409.
- Inside a write, records are read `FOR UPDATE`: the row is locked and re-read at its newest
  committed version, so read-modify-write (PATCH, If-Match, upsert) never loses an update.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from recordbase.core.query import Filter, Query
from recordbase.core.records import ApiKey, Project, Record
from recordbase.core.store import KeyRow, UniqueClash
from recordbase.core.types import RecordType
from recordbase.stores import pg_indexes
from recordbase.stores.common import (
    KEY_COLUMNS,
    RECORD_COLUMNS,
    TYPE_COLUMNS,
    definition_to_json,
    key_from_row,
    project_from_row,
    record_from_row,
    type_from_row,
)
from recordbase.stores.jobs_sql import JobsSql
from recordbase.stores.sql import POSTGRES, Compiler, pg_tsquery

_CHUNK = 1000  # rows per multi-row statement: 13 parameters each stays far below 65535
_INSERT_RECORD = (
    "INSERT INTO records (type_id, id, name, external_id, owner, data, description, "
    "attachments, version, created_at, updated_at, created_by, updated_by) VALUES "
)
_RECORD_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"


class Raced(Exception):
    """A concurrent transaction got in first; the store retries the whole call."""


class PgTx(JobsSql):
    placeholder = "%s"
    # Concurrent workers each claim a different job instead of queueing on one row lock.
    skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, conn: psycopg.Connection[Any], writing: bool) -> None:
        self.conn = conn
        self.writing = writing
        self.bumped = False  # the call changed keys or types: tell the other workers
        self.raced = False  # a constraint fired that the service's own checks had passed

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self.conn.execute(sql, args).fetchone()

    # meta, projects and keys --------------------------------------------------------------

    def get_meta(self, name: str) -> str | None:
        row = self._one("SELECT v FROM meta WHERE k = %s", (name,))
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (k, v) VALUES (%s, %s) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            (name, value),
        )

    def bump_epoch(self) -> None:
        self.conn.execute("UPDATE meta SET v = (v::bigint + 1)::text WHERE k = 'epoch'")
        # Delivered to every listening worker when (and only if) this transaction commits.
        self.conn.execute("NOTIFY recordbase_epoch")
        self.bumped = True

    def project_by_name(self, name: str) -> Project | None:
        row = self._one("SELECT id, name, created_at FROM projects WHERE name = %s", (name,))
        return None if row is None else project_from_row(row)

    def list_projects(self) -> list[Project]:
        rows = self.conn.execute("SELECT id, name, created_at FROM projects ORDER BY name")
        return [project_from_row(r) for r in rows]

    def insert_project(self, project: Project) -> None:
        row = self._one(
            "INSERT INTO projects (id, name, created_at) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING id",
            (project.id, project.name, project.created_at),
        )
        if row is None:
            self.raced = True
            raise Raced("project")

    def _key_where(self, where: str, arg: Any) -> ApiKey | None:
        row = self._one(
            f"SELECT {KEY_COLUMNS} FROM api_keys k JOIN projects p ON p.id = k.project_id "
            f"WHERE {where} = %s",
            (arg,),
        )
        return None if row is None else key_from_row(row)

    def key_by_hash(self, digest: str) -> ApiKey | None:
        return self._key_where("k.hash", digest)

    def get_key(self, key_id: str) -> ApiKey | None:
        return self._key_where("k.id", key_id)

    def list_keys(self, project_id: str | None) -> list[ApiKey]:
        sql = f"SELECT {KEY_COLUMNS} FROM api_keys k JOIN projects p ON p.id = k.project_id"
        args: tuple[Any, ...] = ()
        if project_id is not None:
            sql += " WHERE k.project_id = %s"
            args = (project_id,)
        rows = self.conn.execute(sql + " ORDER BY k.created_at, k.id", args)
        return [key_from_row(r) for r in rows]

    def insert_key(self, key: ApiKey, digest: str) -> None:
        self.conn.execute(
            "INSERT INTO api_keys (id, project_id, prefix, hash, name, scopes, rate, burst, "
            "created_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                key.id,
                key.project_id,
                key.prefix,
                digest,
                key.name,
                orjson.dumps([str(s) for s in key.scopes]).decode(),
                key.rate,
                key.burst,
                key.created_at,
                key.expires_at,
            ),
        )

    def revoke_key(self, key_id: str, at: datetime) -> None:
        self.conn.execute(
            "UPDATE api_keys SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
            (at, key_id),
        )

    def touch_keys(self, touched: Sequence[tuple[str, datetime]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(
                "UPDATE api_keys SET last_used_at = %s WHERE id = %s",
                [(at, key_id) for key_id, at in touched],
            )

    # types ---------------------------------------------------------------------------------

    def get_type(self, project_id: str, key: str) -> RecordType | None:
        row = self._one(
            f"SELECT {TYPE_COLUMNS} FROM record_types WHERE project_id = %s AND key = %s",
            (project_id, key),
        )
        return None if row is None else type_from_row(row)

    def next_number(self, rtype: RecordType) -> int:
        row = self._one("SELECT next_number FROM record_types WHERE id = %s", (rtype.id,))
        return int(row[0]) if row else 1

    def type_version(self, type_id: str) -> int | None:
        row = self._one("SELECT version FROM record_types WHERE id = %s", (type_id,))
        return None if row is None else int(row[0])

    def list_types(self, project_id: str) -> list[RecordType]:
        rows = self.conn.execute(
            f"SELECT {TYPE_COLUMNS} FROM record_types WHERE project_id = %s ORDER BY key",
            (project_id,),
        )
        return [type_from_row(r) for r in rows]

    def insert_type(self, rtype: RecordType, next_number: int) -> None:
        row = self._one(
            "INSERT INTO record_types (id, project_id, key, definition, version, next_number, "
            "extra, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING RETURNING id",
            (
                rtype.id,
                rtype.project_id,
                rtype.key,
                definition_to_json(rtype.definition),
                rtype.version,
                next_number,
                orjson.dumps(rtype.extra).decode(),
                rtype.created_at,
                rtype.updated_at,
            ),
        )
        if row is None:  # another worker created the same type key first
            self.raced = True
            raise Raced("type")

    def update_type(self, rtype: RecordType, next_number: int | None) -> None:
        self.conn.execute(
            "UPDATE record_types SET definition = %s, version = %s, extra = %s, "
            "updated_at = %s, next_number = COALESCE(%s, next_number) WHERE id = %s",
            (
                definition_to_json(rtype.definition),
                rtype.version,
                orjson.dumps(rtype.extra).decode(),
                rtype.updated_at,
                next_number,
                rtype.id,
            ),
        )

    def delete_type(self, rtype: RecordType) -> int:
        deleted = self.conn.execute("DELETE FROM records WHERE type_id = %s", (rtype.id,)).rowcount
        self.conn.execute("DELETE FROM record_keys WHERE type_id = %s", (rtype.id,))
        self.conn.execute("DELETE FROM record_types WHERE id = %s", (rtype.id,))
        pg_indexes.drop_all(self.conn, rtype.id)
        return int(deleted)

    def sync_indexes(self, rtype: RecordType) -> None:
        pg_indexes.sync(self.conn, rtype)

    def explain(self, rtype: RecordType, query: Query) -> str:
        """PostgreSQL's plan for a list query (for tests and operators)."""
        sql, params = self._select(rtype, query, count=False)
        rows = self.conn.execute("EXPLAIN " + sql, params).fetchall()
        return "\n".join(str(r[0]) for r in rows)

    def allocate_numbers(self, rtype: RecordType, count: int) -> int:
        # The row lock this UPDATE takes serializes numbering across workers until commit; a
        # rollback gives the numbers back, so names have neither gaps nor duplicates.
        row = self._one(
            "UPDATE record_types SET next_number = next_number + %s WHERE id = %s "
            "RETURNING next_number",
            (count, rtype.id),
        )
        return int(row[0]) - count

    # records -------------------------------------------------------------------------------

    def get_records(self, rtype: RecordType, ids: Sequence[str]) -> list[Record]:
        return self.find_records(rtype, "id", ids)

    def find_records(self, rtype: RecordType, column: str, values: Sequence[str]) -> list[Record]:
        assert column in ("id", "external_id", "name")
        if not values:
            return []
        lock = " ORDER BY id FOR UPDATE" if self.writing else ""
        rows = self.conn.execute(
            f"SELECT {RECORD_COLUMNS} FROM records WHERE type_id = %s AND {column} = ANY(%s)"
            + lock,
            (rtype.id, list(values)),
        )
        return [record_from_row(rtype.key, r) for r in rows]

    def find_keys(self, rtype: RecordType, key_name: str, values: Sequence[str]) -> dict[str, str]:
        if not values:
            return {}
        rows = self.conn.execute(
            "SELECT value, record_id FROM record_keys WHERE type_id = %s AND key_name = %s "
            "AND value = ANY(%s)",
            (rtype.id, key_name, list(values)),
        )
        return {str(v): str(r) for v, r in rows}

    def _select(self, rtype: RecordType, query: Query, count: bool) -> tuple[str, list[Any]]:
        c = Compiler(POSTGRES)
        where = ["type_id = " + c.bind(rtype.id)]
        if query.filter is not None:
            where.append(c.compile(query.filter))
        match = pg_tsquery(query.text) if query.text else None
        if match is not None:
            where.append(POSTGRES.text_match(c, match))
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

    def list_records(self, rtype: RecordType, query: Query) -> list[Record]:
        sql, params = self._select(rtype, query, count=False)
        return [record_from_row(rtype.key, r) for r in self.conn.execute(sql, params)]

    def count_records(self, rtype: RecordType, filter: Filter | None, text: str | None) -> int:
        sql, params = self._select(rtype, Query(filter=filter, text=text), count=True)
        return int(self._one(sql, params)[0])

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
        for start in range(0, len(records), _CHUNK):
            chunk = records[start : start + _CHUNK]
            params = [p for r in chunk for p in _record_params(rtype.id, r)]
            rows = self.conn.execute(
                _INSERT_RECORD
                + ", ".join([_RECORD_ROW] * len(chunk))
                + " ON CONFLICT DO NOTHING RETURNING id",
                params,
            ).fetchall()
            if len(rows) != len(chunk):
                self._record_clash(rtype, chunk, {r[0] for r in rows})
        self._insert_keys(rtype, keys)

    def _record_clash(self, rtype: RecordType, chunk: Sequence[Record], done: set[str]) -> None:
        lost = [r for r in chunk if r.id not in done]
        taken = self.conn.execute(
            "SELECT 1 FROM records WHERE type_id = %s AND id = ANY(%s) LIMIT 1",
            (rtype.id, [r.id for r in lost]),
        ).fetchone()
        self.raced = True
        raise UniqueClash("__id" if taken else "__external_id")

    def _insert_keys(self, rtype: RecordType, keys: Sequence[KeyRow], race: bool = True) -> None:
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            params = [p for k in chunk for p in (rtype.id, *k)]
            rows = self.conn.execute(
                "INSERT INTO record_keys (type_id, record_id, key_name, value) VALUES "
                + ", ".join(["(%s, %s, %s, %s)"] * len(chunk))
                + " ON CONFLICT DO NOTHING RETURNING key_name, value",
                params,
            ).fetchall()
            if len(rows) != len(chunk):
                lost = _first_lost(chunk, {(str(n), str(v)) for n, v in rows})
                self.raced = self.raced or race
                raise UniqueClash(lost[1], lost[2])

    def update_records(
        self, rtype: RecordType, records: Sequence[Record], keys: Sequence[KeyRow]
    ) -> None:
        ids = [r.id for r in records]
        self.conn.execute(
            "DELETE FROM record_keys WHERE type_id = %s AND record_id = ANY(%s)", (rtype.id, ids)
        )
        try:
            # A savepoint, so that an external_id clash leaves the transaction usable.
            with self.conn.transaction(), self.conn.cursor() as cur:
                cur.executemany(
                    "UPDATE records SET name = %s, external_id = %s, owner = %s, data = %s, "
                    "description = %s, attachments = %s, version = %s, updated_at = %s, "
                    "updated_by = %s WHERE type_id = %s AND id = %s",
                    [_update_params(rtype.id, r) for r in records],
                )
        except psycopg.errors.UniqueViolation as exc:
            self.raced = True
            raise UniqueClash("__external_id") from exc
        self._insert_keys(rtype, keys)

    def replace_key_rows(self, rtype: RecordType, key_name: str, rows: Sequence[KeyRow]) -> None:
        self.conn.execute(
            "DELETE FROM record_keys WHERE type_id = %s AND key_name = %s", (rtype.id, key_name)
        )
        try:
            self._insert_keys(rtype, rows, race=False)
        except UniqueClash as exc:
            raise UniqueClash(key_name) from exc

    def delete_records(self, rtype: RecordType, ids: Sequence[str]) -> None:
        self.conn.execute(
            "DELETE FROM records WHERE type_id = %s AND id = ANY(%s)", (rtype.id, list(ids))
        )
        self.conn.execute(
            "DELETE FROM record_keys WHERE type_id = %s AND record_id = ANY(%s)",
            (rtype.id, list(ids)),
        )


def _first_lost(chunk: Sequence[KeyRow], done: set[tuple[str, str]]) -> KeyRow:
    """The first key row not inserted: taken by another record, or twice in the chunk."""
    seen: set[tuple[str, str]] = set()
    for row in chunk:
        pair = (row[1], row[2])
        if pair not in done or pair in seen:
            return row
        seen.add(pair)
    return chunk[0]


def _record_params(type_id: str, r: Record) -> tuple[Any, ...]:
    return (
        type_id,
        r.id,
        r.name,
        r.external_id,
        r.owner,
        Jsonb(r.data),
        r.description,
        Jsonb(r.attachments),
        r.version,
        r.created_at,
        r.updated_at,
        r.created_by,
        r.updated_by,
    )


def _update_params(type_id: str, r: Record) -> tuple[Any, ...]:
    return (
        r.name,
        r.external_id,
        r.owner,
        Jsonb(r.data),
        r.description,
        Jsonb(r.attachments),
        r.version,
        r.updated_at,
        r.updated_by,
        type_id,
        r.id,
    )
