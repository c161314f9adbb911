"""Record, type, key and project SQL shared by the SQLite and PostgreSQL transactions.

`SqlTx` is the ReadTx / WriteTx of core/store.py written once over a DB-API connection
(`self.conn`), with `?` marks that `JobsSql._x` turns into the driver's style (jobs and
Idempotency-Key rows come from the `JobsSql` mixin). `SqliteTx` (sqlite_tx.py) and `PgTx`
(postgres_tx.py) supply only what really differs, as hooks:

- `_bind_ts` / `_bind_json`: how timestamps and record JSON are bound (SQLite stores text,
  PostgreSQL timestamptz and jsonb);
- `_in`: a `column IN values` test (SQLite: chunks of bound marks under its parameter limit;
  PostgreSQL: one `= ANY(array)`), and `_lock`, what a read of records inside a write appends
  (PostgreSQL locks the rows);
- `_insert_new`: inserting a project or type (PostgreSQL turns a row that a concurrent worker
  inserted first into a retry), `_update_rows` and `_insert_keys`, whose constraint errors
  become `core.store.UniqueClash` in each driver's own way;
- what has no common form at all: the epoch, record inserts, index sync, EXPLAIN, streaming.

Statements compiled by `sql.Compiler` already carry the dialect's marks and go to
`self.conn.execute` directly (PostgreSQL's jsonb `?` operator must not be rewritten).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from recordbase.core.query import Filter, Query
from recordbase.core.records import ApiKey, Project, Record
from recordbase.core.store import JsonRows, KeyRow, UniqueClash
from recordbase.core.types import RecordType
from recordbase.stores.common import (
    KEY_COLUMNS,
    PROJECT_COLUMNS,
    RECORD_COLUMNS,
    TYPE_COLUMNS,
    definition_to_json,
    key_from_row,
    project_from_row,
    record_from_row,
    type_from_row,
)
from recordbase.stores.jobs_sql import JobsSql
from recordbase.stores.sql import Compiler, Dialect, type_is

INSERT_RECORD = (
    "INSERT INTO records (type_id, id, name, external_id, owner, data, description, "
    "attachments, version, created_at, updated_at, created_by, updated_by) VALUES "
)
RECORD_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
INSERT_KEY = "INSERT INTO record_keys (type_id, record_id, key_name, value) VALUES "
KEY_ROW = "(?, ?, ?, ?)"
# The columns an update writes from `SqlTx._record_values`, in its order; the optional ones
# are written only when they change (see `update_records`).
VALUE_COLUMNS = ("name", "external_id", "owner", "data", "description", "attachments", "version")
_OPTIONAL = frozenset({"name", "external_id", "owner", "description", "attachments"})
_UPDATE_SQL: dict[tuple[int, ...], str] = {}


class SqlTx(JobsSql):
    """The SQL both transactions share; subclasses set `dialect` and the hooks below."""

    dialect: Dialect
    key_order = "k.created_at"  # how list_keys orders (PostgreSQL adds a tie-break)

    # hooks ---------------------------------------------------------------------------------

    def _bind_ts(self, value: datetime | None) -> Any:
        raise NotImplementedError

    def _bind_json(self, value: Any) -> Any:
        raise NotImplementedError

    def _text_query(self, text: str) -> str | None:
        """A search box's words in the dialect's full-text syntax (None: no words)."""
        raise NotImplementedError

    def _in(self, values: Sequence[str]) -> Iterator[tuple[str, tuple[Any, ...]]]:
        """(`IN ...` condition, its parameters) pairs that together cover `values`."""
        raise NotImplementedError

    def _lock(self) -> str:
        return ""

    def _type_key(self, type_id: str) -> Any:
        """What `records.type_id` and `record_keys.type_id` hold for a type: its id on
        PostgreSQL, its number on SQLite (sqlite_tx.py)."""
        return type_id

    def _type_is(self, type_id: str) -> str:
        """The type condition of a list query, as a literal (`sql.type_is`)."""
        return type_is(type_id)

    def _insert_new(self, sql: str, params: Sequence[Any], what: str) -> None:
        self._x(sql, params)

    def _update_rows(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def _insert_keys(self, rtype: RecordType, keys: Sequence[KeyRow], race: bool = True) -> None:
        raise NotImplementedError

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.placeholder != "?":
            sql = sql.replace("?", self.placeholder)
        cur = self.conn.cursor()
        try:
            cur.executemany(sql, rows)
        finally:
            cur.close()

    # meta, projects and keys --------------------------------------------------------------

    def get_meta(self, name: str) -> str | None:
        row = self._x("SELECT v FROM meta WHERE k = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        self._x(
            "INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            (name, value),
        )

    def project_by_name(self, name: str) -> Project | None:
        row = self._x(f"SELECT {PROJECT_COLUMNS} FROM projects WHERE name = ?", (name,))
        found = row.fetchone()
        return None if found is None else project_from_row(found)

    def list_projects(self) -> list[Project]:
        rows = self._x(f"SELECT {PROJECT_COLUMNS} FROM projects ORDER BY name")
        return [project_from_row(r) for r in rows]

    def insert_project(self, project: Project) -> None:
        self._insert_new(
            "INSERT INTO projects (id, name, created_at, rate, burst) VALUES (?, ?, ?, ?, ?)",
            (
                project.id,
                project.name,
                self._bind_ts(project.created_at),
                project.rate,
                project.burst,
            ),
            "project",
        )

    def set_project_limits(self, project_id: str, rate: float | None, burst: int | None) -> None:
        self._x("UPDATE projects SET rate = ?, burst = ? WHERE id = ?", (rate, burst, project_id))

    def _key_where(self, where: str, arg: Any) -> ApiKey | None:
        row = self._x(
            f"SELECT {KEY_COLUMNS} FROM api_keys k JOIN projects p ON p.id = k.project_id "
            f"WHERE {where} = ?",
            (arg,),
        ).fetchone()
        return None if row is None else key_from_row(row)

    def key_by_hash(self, digest: str) -> ApiKey | None:
        return self._key_where("k.hash", digest)

    def get_key(self, key_id: str) -> ApiKey | None:
        return self._key_where("k.id", key_id)

    def list_keys(self, project_id: str | None) -> list[ApiKey]:
        sql = f"SELECT {KEY_COLUMNS} FROM api_keys k JOIN projects p ON p.id = k.project_id"
        args: tuple[Any, ...] = ()
        if project_id is not None:
            sql += " WHERE k.project_id = ?"
            args = (project_id,)
        return [key_from_row(r) for r in self._x(f"{sql} ORDER BY {self.key_order}", args)]

    def insert_key(self, key: ApiKey, digest: str) -> None:
        self._x(
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
                self._bind_ts(key.created_at),
                self._bind_ts(key.expires_at),
            ),
        )

    def revoke_key(self, key_id: str, at: datetime) -> None:
        self._x(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (self._bind_ts(at), key_id),
        )

    def touch_keys(self, touched: Sequence[tuple[str, datetime]]) -> None:
        self._many(
            "UPDATE api_keys SET last_used_at = ? WHERE id = ?",
            [(self._bind_ts(at), key_id) for key_id, at in touched],
        )

    # types ---------------------------------------------------------------------------------

    def get_type(self, project_id: str, key: str) -> RecordType | None:
        row = self._x(
            f"SELECT {TYPE_COLUMNS} FROM record_types WHERE project_id = ? AND key = ?",
            (project_id, key),
        ).fetchone()
        return None if row is None else type_from_row(row)

    def next_number(self, rtype: RecordType) -> int:
        row = self._x("SELECT next_number FROM record_types WHERE id = ?", (rtype.id,)).fetchone()
        return int(row[0]) if row else 1

    def type_version(self, type_id: str) -> int | None:
        row = self._x("SELECT version FROM record_types WHERE id = ?", (type_id,)).fetchone()
        return None if row is None else int(row[0])

    def list_types(self, project_id: str) -> list[RecordType]:
        rows = self._x(
            f"SELECT {TYPE_COLUMNS} FROM record_types WHERE project_id = ? ORDER BY key",
            (project_id,),
        )
        return [type_from_row(r) for r in rows]

    def insert_type(self, rtype: RecordType, next_number: int) -> None:
        self._insert_new(
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
                self._bind_ts(rtype.created_at),
                self._bind_ts(rtype.updated_at),
            ),
            "type",
        )

    def update_type(self, rtype: RecordType, next_number: int | None) -> None:
        self._x(
            "UPDATE record_types SET definition = ?, version = ?, extra = ?, updated_at = ?, "
            "next_number = COALESCE(?, next_number) WHERE id = ?",
            (
                definition_to_json(rtype.definition),
                rtype.version,
                orjson.dumps(rtype.extra).decode(),
                self._bind_ts(rtype.updated_at),
                next_number,
                rtype.id,
            ),
        )

    def _delete_type_rows(self, type_id: str) -> int:
        """Deletes a type's records, key rows and the type itself; the number of records."""
        key = self._type_key(type_id)
        deleted = self._x("DELETE FROM records WHERE type_id = ?", (key,)).rowcount
        self._x("DELETE FROM record_keys WHERE type_id = ?", (key,))
        self._x("DELETE FROM record_types WHERE id = ?", (type_id,))
        return int(deleted)

    def allocate_numbers(self, rtype: RecordType, count: int) -> int:
        # On PostgreSQL the row lock this UPDATE takes serializes numbering across workers
        # until commit; a rollback gives the numbers back: names have no gaps, no duplicates.
        row = self._x(
            "UPDATE record_types SET next_number = next_number + ? WHERE id = ? "
            "RETURNING next_number",
            (count, rtype.id),
        ).fetchone()
        return int(row[0]) - count

    # records: reads ------------------------------------------------------------------------

    def get_records(self, rtype: RecordType, ids: Sequence[str]) -> list[Record]:
        return self.find_records(rtype, "id", ids)

    def find_records(self, rtype: RecordType, column: str, values: Sequence[str]) -> list[Record]:
        assert column in ("id", "external_id", "name")
        found: list[Record] = []
        key = self._type_key(rtype.id)
        for test, args in self._in(values):
            rows = self._x(
                f"SELECT {RECORD_COLUMNS} FROM records WHERE type_id = ? AND {column} {test}"
                + self._lock(),
                (key, *args),
            )
            found.extend(record_from_row(rtype.key, r) for r in rows)
        return found

    def find_keys(self, rtype: RecordType, key_name: str, values: Sequence[str]) -> dict[str, str]:
        result: dict[str, str] = {}
        key = self._type_key(rtype.id)
        for test, args in self._in(values):
            rows = self._x(
                "SELECT value, record_id FROM record_keys WHERE type_id = ? AND key_name = ? "
                f"AND value {test}",
                (key, key_name, *args),
            )
            result.update({str(v): str(r) for v, r in rows})
        return result

    def _select(
        self, rtype: RecordType, query: Query, count: bool, columns: str = RECORD_COLUMNS
    ) -> tuple[str, list[Any]]:
        c = Compiler(self.dialect)
        where = [self._type_is(rtype.id)]  # a literal: the partial declared indexes need it
        if query.filter is not None:
            where.append(c.compile(query.filter))
        match = self._text_query(query.text) if query.text else None
        if match is not None:
            where.append(self.dialect.text_match(c, match, rtype.id))
        if count:
            return "SELECT count(*) FROM records WHERE " + " AND ".join(where), c.params
        if query.after is not None:
            where.append(c.keyset(query.sort, query.after))
        sql = (
            f"SELECT {columns} FROM records WHERE {' AND '.join(where)} "
            f"ORDER BY {c.order_by(query.sort)} LIMIT {int(query.limit)}"
        )
        if query.offset:
            sql += f" OFFSET {int(query.offset)}"
        return sql, c.params

    def list_records(self, rtype: RecordType, query: Query) -> list[Record]:
        sql, params = self._select(rtype, query, count=False)
        return [record_from_row(rtype.key, r) for r in self.conn.execute(sql, params)]

    def list_records_json(self, rtype: RecordType, query: Query) -> JsonRows | None:
        return None  # SQLite prints them in SQL (sqlite_tx.py); PostgreSQL uses Records

    def count_records(self, rtype: RecordType, filter: Filter | None, text: str | None) -> int:
        sql, params = self._select(rtype, Query(filter=filter, text=text), count=True)
        return int(self.conn.execute(sql, params).fetchone()[0])

    # records: writes -----------------------------------------------------------------------

    def _record_values(self, r: Record) -> tuple[Any, ...]:
        """The columns an insert and an update both write, from name to version."""
        data, attachments = self._bind_json(r.data), self._bind_json(r.attachments)
        return (r.name, r.external_id, r.owner, data, r.description, attachments, r.version)

    def update_records(
        self,
        rtype: RecordType,
        records: Sequence[Record],
        keys: Sequence[KeyRow],
        before: Mapping[str, Record] | None = None,
    ) -> None:
        """Write changed records. With `before` (the stored versions, by id) an UPDATE sets
        name, external id, owner, description and attachments only where they changed: SQLite
        rewrites the entries of every index on a column the SET list names, changed or not
        (an upsert of the data alone: 113 -> 68 us per one-record transaction, measured in
        docs/performance.md, round 8). Records that change the same columns share a
        statement."""
        key = self._type_key(rtype.id)
        if rtype.keyed:  # a type without unique names or keys has no key rows
            for test, args in self._in([r.id for r in records]):
                self._x(
                    f"DELETE FROM record_keys WHERE type_id = ? AND record_id {test}", (key, *args)
                )
        groups: dict[tuple[int, ...], list[tuple[Any, ...]]] = {}
        for r in records:
            values = self._record_values(r)
            old = before.get(r.id) if before is not None else None
            kept = tuple(
                i
                for i, column in enumerate(VALUE_COLUMNS)
                if old is None
                or column not in _OPTIONAL
                or getattr(r, column) != getattr(old, column)
            )
            row = (*(values[i] for i in kept), self._bind_ts(r.updated_at), r.updated_by, key, r.id)
            groups.setdefault(kept, []).append(row)
        for kept, rows in groups.items():
            sql = _UPDATE_SQL.get(kept)
            if sql is None:
                sets = ", ".join(f"{VALUE_COLUMNS[i]} = ?" for i in kept)
                sql = _UPDATE_SQL[kept] = (
                    f"UPDATE records SET {sets}, updated_at = ?, updated_by = ? "
                    "WHERE type_id = ? AND id = ?"
                )
            self._update_rows(sql, rows)
        self._insert_keys(rtype, keys)

    def replace_key_rows(self, rtype: RecordType, key_name: str, rows: Sequence[KeyRow]) -> None:
        self._x(
            "DELETE FROM record_keys WHERE type_id = ? AND key_name = ?",
            (self._type_key(rtype.id), key_name),
        )
        try:
            # Not a race: the service rebuilds a changed unique key from the type's records,
            # so a clash means two of them share a value.
            self._insert_keys(rtype, rows, race=False)
        except UniqueClash as exc:
            raise UniqueClash(key_name) from exc

    def delete_records(self, rtype: RecordType, ids: Sequence[str]) -> None:
        key = self._type_key(rtype.id)
        for test, args in self._in(ids):
            self._x(f"DELETE FROM records WHERE type_id = ? AND id {test}", (key, *args))
            if rtype.keyed:
                self._x(
                    f"DELETE FROM record_keys WHERE type_id = ? AND record_id {test}", (key, *args)
                )
