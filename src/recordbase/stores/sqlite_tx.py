"""ReadTx / WriteTx over one SQLite connection: the SQLite side of tx_sql.py's hooks.

Records and key rows name their type by its number (`record_types.no`, migration 0009), which
`_type_key` finds from the type's id. Timestamps and JSON are bound as text. One writer
thread means no write races, so constraint errors come only from the data itself; `_clash`
names the constraint that fired from SQLite's message. Lists of values go in chunks below
SQLite's bound-parameter limit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from itertools import chain
from typing import Any

import orjson

from recordbase.core.clock import utc_text
from recordbase.core.query import Query
from recordbase.core.records import Record
from recordbase.core.store import JSON_ROW_SEP, JsonRows, KeyRow, UniqueClash
from recordbase.core.types import RecordType
from recordbase.stores import sqlite_search
from recordbase.stores.common import RECORD_COLUMNS, record_from_row, ts
from recordbase.stores.sql import SQLITE, fts_query
from recordbase.stores.sqlite_held import HeldInserts, HoldingConnection
from recordbase.stores.sqlite_indexes import drop_indexes, explain, sync_indexes, type_number
from recordbase.stores.tx_sql import INSERT_KEY, INSERT_RECORD, KEY_ROW, RECORD_ROW, SqlTx

_CHUNK = 500  # values per IN (...): below SQLite's bound-parameter limit
# Rows per multi-row INSERT: 64 x 13 values stays below the smallest bound-parameter limit
# any SQLite build has had (999).
_MAX_ROWS = 64
_VALUES_SQL: dict[tuple[str, int], str] = {}
# A type's number, its version and whether it has text-search rows (SqliteTx._type_state).
_TYPE_STATE = (
    "SELECT no, version, EXISTS (SELECT 1 FROM search_types WHERE type_id = ?1) "
    "FROM record_types WHERE id = ?1"
)
_NEW_SQL: dict[tuple[int, int], str] = {}
# A write inserting this many new records or more sends them at once, not held with the
# group's others (sqlite_held.py): its own statements are full already, and held rows bind
# their time and author per row (100-record batches ran ~5% slower held).
_HOLD_BELOW = 16
_NUMBERS_KEPT = 4096  # type numbers a reader's transaction keeps (then it starts over)


def _runs(total: int) -> Iterator[tuple[int, int]]:
    """(start, size) of the multi-row statements for `total` rows: 64, 32, ..., 1 rows each."""
    at = 0
    while at < total:
        n = _MAX_ROWS
        while n > total - at:
            n >>= 1
        yield at, n
        at += n


def _new_statement(mask: int, n: int) -> str:
    """The INSERT of `n` new records for SqliteTx._insert_created: ?1 type number, ?2 time,
    ?3 author; per row the id, then name / external id / owner (bits 1, 2, 4 of `mask`), the
    data, then description / attachments (bits 8, 16); an unset optional column is its
    literal. With bit 32 (held rows of several writes, sqlite_held.py) each row ends with its
    own time and author instead of ?2 and ?3."""
    sql = _NEW_SQL.get((mask, n))
    if sql is None:
        sql = _NEW_SQL[(mask, n)] = _build_new_statement(mask, n)
    return sql


def _build_new_statement(mask: int, n: int) -> str:
    at = 2 if mask & 32 else 4
    rows = []
    for _ in range(n):
        cells = [f"?{at}"]
        at += 1
        for bit in (1, 2, 4):
            if mask & bit:
                cells.append(f"?{at}")
                at += 1
            else:
                cells.append("NULL")
        cells.append(f"?{at}")
        at += 1
        for bit, empty in ((8, "NULL"), (16, "'[]'")):
            if mask & bit:
                cells.append(f"?{at}")
                at += 1
            else:
                cells.append(empty)
        if mask & 32:
            cells.append(f"1, ?{at}, ?{at}, ?{at + 1}, ?{at + 1}")
            at += 2
        else:
            cells.append("1, ?2, ?2, ?3, ?3")
        rows.append(f"(?1, {', '.join(cells)})")
    return INSERT_RECORD + ", ".join(rows)


def _instant(column: str) -> str:
    # Stored as utc_text (microseconds, Z); the API writes a whole second without the
    # fraction, as orjson does for a datetime.
    return (
        f"CASE WHEN substr({column}, 21, 6) = '000000' "
        f"THEN substr({column}, 1, 19) || 'Z' ELSE {column} END"
    )


def _data_text(r: Record) -> str:
    """The JSON text stored for a record's data: the one its write made, when it made one."""
    return r.data_json if r.data_json is not None else orjson.dumps(r.data).decode()


def _attachments_text(r: Record) -> str:
    return orjson.dumps(r.attachments).decode() if r.attachments else "[]"


def _text_or_null(column: str) -> str:
    # json_quote(NULL) is 'null' too, but as a function call per row: ~4,000 instructions of
    # a 100-record page for each of the four mostly-empty columns (callgrind).
    return f"CASE WHEN {column} IS NULL THEN 'null' ELSE json_quote({column}) END"


# One record's output JSON, built by SQLite itself: the members of Record.as_dict in its
# order, with the bytes orjson writes (json_quote escapes strings exactly as orjson does, and
# `data` and `attachments` are stored as orjson's compact text, copied as they are; every
# column printed bare is NOT NULL). The first parameter is the type key's JSON text.
# tests/test_list_json.py holds the two to each other, byte for byte.
RECORD_JSON = (
    'printf(\'{"id":%s,"type":%s,"name":%s,"external_id":%s,"owner":%s,'
    '"data":%s,"description":%s,"attachments":%s,"version":%d,'
    '"created_at":"%s","updated_at":"%s","created_by":%s,"updated_by":%s}\', '
    f"json_quote(id), ?, {_text_or_null('name')}, {_text_or_null('external_id')}, "
    f"{_text_or_null('owner')}, data, {_text_or_null('description')}, attachments, version, "
    f"{_instant('created_at')}, {_instant('updated_at')}, json_quote(created_by), "
    "json_quote(updated_by))"
)


class SqliteTx(SqlTx):
    """ReadTx and WriteTx over one SQLite connection (see core/store.py and tx_sql.py)."""

    dialect = SQLITE

    def __init__(self, conn: sqlite3.Connection, *, remember_types: bool = False) -> None:
        self.conn: Any = conn  # the connection, or a HoldingConnection over it (hold_inserts)
        self._raw = conn
        self._held: HeldInserts | None = None
        # The writer's transaction remembers each type's number, version and search flag
        # from its first look (one statement for all three): the writes of a group check the
        # same type again and again, two statements each (~4 us apiece on a single create).
        # Anything here that changes a type forgets, and the writer forgets at every BEGIN
        # and rollback (sqlite_writer.py); no other connection can change a type while this
        # one holds the write lock. Readers' transactions don't remember (each read is its
        # own) except type numbers: a committed type keeps its number, and a number is never
        # given to another type (AUTOINCREMENT), so a deleted type's stays harmlessly.
        self._remember = remember_types
        self._types_seen: dict[str, tuple[int, int | None, bool]] = {}
        self._numbers: dict[str, int] = {}

    def forget(self) -> None:
        """Drop what this transaction remembered of types (a new transaction, a rollback),
        and any rows held back (hold_inserts) without sending them."""
        if self._types_seen:
            self._types_seen.clear()
        if self._held is not None:
            self._held = None
            self.conn = self._raw

    def hold_inserts(self) -> None:
        """From now on new records' rows wait and go out together (sqlite_held.py), sent
        before any other statement and at `send_held`."""
        self._held = HeldInserts(self._raw, _new_statement, _runs)
        self.conn = HoldingConnection(self._raw, self._held)

    def send_held(self) -> None:
        """INSERT the rows held back and stop holding (before the writer's COMMIT)."""
        held = self._held
        if held is not None:
            self._held = None
            self.conn = self._raw
            held.send()

    def type_version(self, type_id: str) -> int | None:
        if not self._remember:
            return super().type_version(type_id)
        return self._type_state(type_id)[1]

    def _type_state(self, type_id: str) -> tuple[int, int | None, bool]:
        """(number, version, searched) of a type; number 0 and version None: no such type."""
        seen = self._types_seen.get(type_id)
        if seen is None:
            row = self.conn.execute(_TYPE_STATE, (type_id,)).fetchone()
            seen = (0, None, False) if row is None else (int(row[0]), int(row[1]), bool(row[2]))
            self._types_seen[type_id] = seen
        return seen

    def _searched(self, type_id: str) -> bool:
        if not self._remember:
            return sqlite_search.searched(self.conn, type_id)
        return self._type_state(type_id)[2]

    def _type_key(self, type_id: str) -> int:
        """The type's number (0, which no type has, when there is no such type)."""
        if self._remember:
            return self._type_state(type_id)[0]
        number = self._numbers.get(type_id)
        if number is None:
            number = type_number(self.conn, type_id)
            if number:  # not remembered when missing: the type may be committed later
                if len(self._numbers) >= _NUMBERS_KEPT:
                    self._numbers.clear()
                self._numbers[type_id] = number
        return number

    def _type_is(self, type_id: str) -> str:
        return f"type_id = {self._type_key(type_id)}"

    def insert_type(self, rtype: RecordType, next_number: int) -> None:
        self.forget()
        super().insert_type(rtype, next_number)

    def update_type(self, rtype: RecordType, next_number: int | None) -> None:
        self.forget()
        super().update_type(rtype, next_number)

    def _bind_ts(self, value: datetime | None) -> Any:
        return ts(value)

    def _bind_json(self, value: Any) -> Any:
        return orjson.dumps(value).decode()

    def _record_values(self, r: Record) -> tuple[Any, ...]:
        data, attachments = _data_text(r), _attachments_text(r)
        return (r.name, r.external_id, r.owner, data, r.description, attachments, r.version)

    def _insert_rows(self, type_key: int, records: Sequence[Record]) -> list[tuple[Any, ...]]:
        """The RECORD_ROW values of each record, for records that do not share what
        `_insert_created` needs (their own timestamps, say).

        Records that share one timestamp object have its text made once; the data's JSON text
        is the one the service made for its size check, when it did.
        """
        rows: list[tuple[Any, ...]] = []
        at: datetime | None = None
        text = ""
        for r in records:
            created = r.created_at
            if created is not at:
                at, text = created, utc_text(created)
            rows.append(
                (
                    type_key,
                    r.id,
                    *self._record_values(r),
                    text,
                    text if r.updated_at is created else utc_text(r.updated_at),
                    r.created_by,
                    r.updated_by,
                )
            )
        return rows

    def list_records_json(self, rtype: RecordType, query: Query) -> JsonRows:
        sql, params = self._select(rtype, query, count=False, columns=RECORD_JSON + " AS j")
        key = orjson.dumps(rtype.key).decode()
        # The whole page in one row: Python's sqlite3 lets go of the GIL around every step, so
        # a page read row by row hands the GIL to the event loop and waits for it back once
        # per record (~75 futex calls per page of 100). The aggregate reads the subquery's
        # rows in its ORDER BY order (SQLite cannot flatten a LIMITed subquery into an
        # aggregate). As a BLOB it arrives as the UTF-8 bytes the answer is made of, with no
        # decoding to str and encoding back (JsonRows).
        text, count = self.conn.execute(
            f"SELECT CAST(group_concat(j, char({JSON_ROW_SEP[0]})) AS BLOB), count(*) FROM ({sql})",
            [key, *params],
        ).fetchone()
        return JsonRows(text or b"", count)

    def _text_query(self, text: str) -> str | None:
        return fts_query(text)

    def _in(self, values: Sequence[str]) -> Iterator[tuple[str, tuple[Any, ...]]]:
        for start in range(0, len(values), _CHUNK):
            chunk = tuple(values[start : start + _CHUNK])
            yield f"IN ({', '.join('?' * len(chunk))})", chunk

    def bump_epoch(self) -> None:
        self.conn.execute("UPDATE meta SET v = CAST(v AS INTEGER) + 1 WHERE k = 'epoch'")

    def delete_type(self, rtype: RecordType) -> int:
        drop_indexes(self.conn, rtype.id)
        sqlite_search.drop(self.conn, rtype.id)
        deleted = self._delete_type_rows(rtype.id)
        self.forget()
        self._numbers.pop(rtype.id, None)
        return deleted

    def sync_indexes(self, rtype: RecordType) -> None:
        self.forget()
        sync_indexes(self.conn, rtype)
        sqlite_search.sync(self.conn, rtype)

    def explain(self, rtype: RecordType, query: Query) -> str:
        """The query plan of a list query (for tests and operators)."""
        sql, params = self._select(rtype, query, count=False)
        return explain(self.conn, sql, params)

    def iter_records(self, rtype: RecordType) -> Iterator[Record]:
        rows = self.conn.execute(
            f"SELECT {RECORD_COLUMNS} FROM records WHERE type_id = ? ORDER BY seq",
            (self._type_key(rtype.id),),
        )
        for row in rows:
            yield record_from_row(rtype.key, row)

    def insert_records(
        self, rtype: RecordType, records: Sequence[Record], keys: Sequence[KeyRow]
    ) -> None:
        if self._remember:  # the type's number and whether it is searched, in one look-up
            key, _version, searched = self._type_state(rtype.id)
        else:
            key, searched = self._type_key(rtype.id), self._searched(rtype.id)
        try:
            if not self._insert_created(key, records):
                self._insert_values(INSERT_RECORD, RECORD_ROW, self._insert_rows(key, records))
        except sqlite3.IntegrityError as exc:
            raise _clash(exc) from exc
        if searched:
            sqlite_search.add(self.conn, rtype.id, [r.id for r in records])
        if keys:
            self._insert_keys(rtype, keys)

    def _insert_created(self, type_key: int, records: Sequence[Record]) -> bool:
        """INSERT records that were made together, binding what they share once per statement.

        New records of one write share their type, timestamp, author and version 1, and most
        leave name, external id, owner, description and attachments empty. Binding each of
        those per row (13 values) was ~17% of a 100-record batch's writer time
        (docs/performance.md): here a statement binds the shared values once (`?1`-`?3`) and
        per row only the id, the data and the optional columns some record of the batch sets;
        the rest are literals. False (nothing done) when the records share less than that
        (an import with its own timestamps, say): the general statement takes them.
        """
        first = records[0]
        at, by = first.created_at, first.created_by
        mask = 0
        for r in records:
            if (
                r.created_at is not at
                or r.updated_at is not at
                or r.created_by != by
                or r.updated_by != by
                or r.version != 1
            ):
                return False
            if r.name is not None:
                mask |= 1
            if r.external_id is not None:
                mask |= 2
            if r.owner is not None:
                mask |= 4
            if r.description is not None:
                mask |= 8
            if r.attachments:
                mask |= 16
        rows: list[list[Any]] = []
        for r in records:
            row: list[Any] = [r.id]
            if mask & 1:
                row.append(r.name)
            if mask & 2:
                row.append(r.external_id)
            if mask & 4:
                row.append(r.owner)
            row.append(_data_text(r))
            if mask & 8:
                row.append(r.description)
            if mask & 16:
                row.append(_attachments_text(r))
            rows.append(row)
        if self._held is not None and len(rows) < _HOLD_BELOW:  # sent with others' later
            at_text = utc_text(at)
            for row in rows:
                row += (at_text, by)
            self._held.add(type_key, mask | 32, rows)
            return True
        shared = [type_key, utc_text(at), by]
        for start, n in _runs(len(rows)):
            params = shared + list(chain.from_iterable(rows[start : start + n]))
            self.conn.execute(_new_statement(mask, n), params)
        return True

    def _insert_values(self, head: str, mark: str, rows: Sequence[Sequence[Any]]) -> None:
        """INSERT `rows` (in order) with multi-row VALUES statements of 64, 32, ..., 1 rows.

        One statement opens the table's and each index's cursors once for all its rows, where
        executemany runs a one-row statement per row: ~25% less SQLite time per record in a
        100-record batch (docs/performance.md, "Batch path, round 4"). Power-of-two sizes
        keep the distinct statements few, so each is prepared once and stays cached.
        """
        if len(rows) == 1:  # a single create
            self.conn.execute(head + mark, rows[0])
            return
        for start, n in _runs(len(rows)):
            sql = _VALUES_SQL.get((head, n))
            if sql is None:
                sql = _VALUES_SQL[(head, n)] = head + ", ".join([mark] * n)
            self.conn.execute(sql, list(chain.from_iterable(rows[start : start + n])))

    def update_records(
        self,
        rtype: RecordType,
        records: Sequence[Record],
        keys: Sequence[KeyRow],
        before: Mapping[str, Record] | None = None,
    ) -> None:
        super().update_records(rtype, records, keys, before)
        if self._searched(rtype.id):
            ids = [r.id for r in records]
            sqlite_search.remove(self.conn, rtype.id, ids)
            sqlite_search.add(self.conn, rtype.id, ids)

    def delete_records(self, rtype: RecordType, ids: Sequence[str]) -> None:
        if self._searched(rtype.id):
            sqlite_search.remove(self.conn, rtype.id, ids)
        super().delete_records(rtype, ids)

    def _insert_keys(self, rtype: RecordType, keys: Sequence[KeyRow], race: bool = True) -> None:
        if keys:
            try:
                key = self._type_key(rtype.id)
                self._insert_values(INSERT_KEY, KEY_ROW, [(key, *k) for k in keys])
            except sqlite3.IntegrityError as exc:
                raise _clash(exc) from exc

    def _update_rows(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            self.conn.executemany(sql, rows)
        except sqlite3.IntegrityError as exc:
            raise _clash(exc) from exc


def _clash(exc: sqlite3.IntegrityError) -> UniqueClash:
    text = str(exc)
    if "records.type_id, records.id" in text:
        return UniqueClash("__id")
    if "records.external_id" in text:
        return UniqueClash("__external_id")
    return UniqueClash("__key")
