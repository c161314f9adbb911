"""`recordbase copy`: move a whole deployment between databases (SQLite <-> PostgreSQL).

Copies projects, API keys (their hashes, so every secret keeps working), record types (with
their autonumber counters), records, unique-key rows and the cursor secret, table by table in
the source's primary-key order, in chunks. Each chunk is inserted with ON CONFLICT DO NOTHING
and, in the same target transaction, the position reached is saved in the target's `meta`
(`copy:<table>`), so an interrupted copy resumes where it stopped. At the end the row counts of
every table are compared; a mismatch is an error. Values are converted between the two
storage forms (SQLite: JSON and timestamps as text, and records and key rows name their type by
its number; PostgreSQL: jsonb and timestamptz, type ids).
Jobs and stored Idempotency-Key responses are not copied (they are short-lived).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

import orjson

from recordbase.config import Settings
from recordbase.stores.common import ts


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    order: tuple[str, ...]  # the source's resume order (a unique key)
    json: frozenset[str] = frozenset()
    numbered: bool = False  # type_id holds the type's number on SQLite


TABLES = (
    Table("projects", ("id", "name", "created_at", "rate", "burst"), ("id",)),
    Table(
        "api_keys",
        (
            "id",
            "project_id",
            "prefix",
            "hash",
            "name",
            "scopes",
            "rate",
            "burst",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
        ),
        ("id",),
    ),
    Table(
        "record_types",
        (
            "id",
            "project_id",
            "key",
            "definition",
            "version",
            "next_number",
            "extra",
            "created_at",
            "updated_at",
        ),
        ("id",),
    ),
    Table(
        "records",
        (
            "type_id",
            "id",
            "name",
            "external_id",
            "owner",
            "data",
            "description",
            "attachments",
            "version",
            "created_at",
            "updated_at",
            "created_by",
            "updated_by",
        ),
        ("seq",),
        json=frozenset({"data", "attachments"}),
        numbered=True,
    ),
    Table(
        "record_keys",
        ("type_id", "key_name", "value", "record_id"),
        ("type_id", "key_name", "value"),
        numbered=True,
    ),
)
COPIED_META = ("cursor_secret",)


class Side:
    """One database, at the level of plain rows."""

    def __init__(self, url: str) -> None:
        from recordbase.stores import open_store

        self.url = url
        store: Any = open_store(Settings(database_url=url))
        store.migrate()
        self.dialect: str = store.dialect
        self.mark = "%s" if self.dialect == "postgres" else "?"
        self.conn: Any
        if self.dialect == "postgres":
            import psycopg

            self.conn = psycopg.connect(url, autocommit=True)
            self.conn.execute("SET timezone = 'UTC'")
        else:
            from recordbase.stores.sqlite import connect, sqlite_path

            self.conn = connect(sqlite_path(url))

    def count(self, table: str) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def _numbered(self, t: Table) -> bool:
        return t.numbered and self.dialect == "sqlite"

    def rows(self, t: Table, after: list[Any] | None, chunk: int) -> Iterator[list[Any]]:
        """Chunks of rows: the copied columns (type ids, whatever the side stores), then the
        columns of the order as stored (where the next chunk starts)."""
        copied = [
            f"(SELECT id FROM record_types WHERE no = {t.name}.type_id)"
            if c == "type_id" and self._numbered(t)
            else c
            for c in t.columns
        ]
        cols = ", ".join([*copied, *(f"{t.name}.{c}" for c in t.order)])
        order = ", ".join(t.order)
        while True:
            where, args = "", []
            if after is not None:
                where = f" WHERE ({order}) > ({', '.join([self.mark] * len(after))})"
                args = list(after)
            got = self.conn.execute(
                f"SELECT {cols} FROM {t.name}{where} ORDER BY {order} LIMIT {int(chunk)}", args
            ).fetchall()
            if not got:
                return
            yield [list(r) for r in got]
            after = _position(t, list(got[-1]))

    def write(self, t: Table, rows: list[list[Any]], position: list[Any]) -> None:
        cols = ", ".join(t.columns)
        number = f"(SELECT no FROM record_types WHERE id = {self.mark})"
        marks = (
            "("
            + ", ".join(
                number if c == "type_id" and self._numbered(t) else self.mark for c in t.columns
            )
            + ")"
        )
        values = [self._value(t, c, v) for r in rows for c, v in zip(t.columns, r, strict=False)]
        sql = f"INSERT INTO {t.name} ({cols}) VALUES " + ", ".join([marks] * len(rows))
        sql += " ON CONFLICT DO NOTHING"
        saved = orjson.dumps([_plain(v) for v in position], default=str).decode()
        meta = (
            f"INSERT INTO meta (k, v) VALUES ({self.mark}, {self.mark}) "
            "ON CONFLICT (k) DO UPDATE SET v = excluded.v"
        )
        self._begin()
        try:
            self.conn.execute(sql, values)
            self.conn.execute(meta, ("copy:" + t.name, saved))
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _begin(self) -> None:
        self.conn.execute("BEGIN" if self.dialect == "postgres" else "BEGIN IMMEDIATE")

    def _value(self, t: Table, column: str, value: Any) -> Any:
        if isinstance(value, datetime):
            return ts(value) if self.dialect == "sqlite" else value
        if column in t.json and not isinstance(value, (str, bytes)):
            return orjson.dumps(value).decode()
        return value

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute(f"SELECT v FROM meta WHERE k = {self.mark}", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute(
            f"INSERT INTO meta (k, v) VALUES ({self.mark}, {self.mark}) "
            "ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            (key, value),
        )

    def close(self) -> None:
        self.conn.close()


def _plain(value: Any) -> Any:
    return ts(value) if isinstance(value, datetime) else value


class CountMismatch(Exception):
    """The target does not hold as many rows as the source after the copy."""


class Interrupted(Exception):
    """The copy stopped early (tests use `stop_after` to simulate a crash)."""


def copy_deployment(
    source_url: str,
    target_url: str,
    *,
    chunk: int = 1000,
    progress: TextIO | None = sys.stderr,
    stop_after: int | None = None,
) -> dict[str, int]:
    """Copy everything; returns rows per table. `stop_after` chunks simulates an interruption."""
    source, target = Side(source_url), Side(target_url)
    done_chunks = 0
    try:
        for t in TABLES:
            total = source.count(t.name)
            saved = target.get_meta("copy:" + t.name)
            after = orjson.loads(saved) if saved else None
            moved = target.count(t.name) if after else 0
            bar = _Bar(t.name, total, progress)
            bar.show(moved)
            for rows in source.rows(t, after, chunk):
                if stop_after is not None and done_chunks >= stop_after:
                    raise Interrupted(f"stopped after {done_chunks} chunk(s)")
                position = _position(t, rows[-1])
                target.write(t, [r[: len(t.columns)] for r in rows], position)
                moved += len(rows)
                done_chunks += 1
                bar.show(moved)
            bar.end()
        for key in COPIED_META:
            value = source.get_meta(key)
            if value is not None:
                target.set_meta(key, value)
        _after_copy(target)
        return _verify(source, target)
    finally:
        source.close()
        target.close()


def _position(t: Table, row: list[Any]) -> list[Any]:
    """Where the next chunk starts: the order columns `Side.rows` puts after the copied ones."""
    return row[len(t.columns) :]


def _after_copy(target: Side) -> None:
    """Backend work that copying rows does not do: declared and search indexes per type."""
    from recordbase.stores.common import TYPE_COLUMNS, type_from_row

    types = [
        type_from_row(r) for r in target.conn.execute(f"SELECT {TYPE_COLUMNS} FROM record_types")
    ]
    if target.dialect != "postgres":
        from recordbase.stores.sqlite_tx import SqliteTx

        target.conn.execute("BEGIN IMMEDIATE")
        for rtype in types:  # SQLite FTS rows of the types with search, declared indexes
            SqliteTx(target.conn).sync_indexes(rtype)
        target.conn.execute("COMMIT")
        return
    from recordbase.stores import pg_indexes

    for rtype in types:
        pg_indexes.sync(target.conn, rtype)
    target.conn.execute("NOTIFY recordbase_epoch")


def _verify(source: Side, target: Side) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in TABLES:
        have, want = target.count(t.name), source.count(t.name)
        if have != want:
            raise CountMismatch(f"{t.name}: {want} rows in the source, {have} in the target")
        counts[t.name] = have
    return counts


class _Bar:
    """A one-line text progress bar on stderr (redrawn with \\r)."""

    def __init__(self, label: str, total: int, out: TextIO | None) -> None:
        self.label, self.total, self.out = label, total, out

    def show(self, done: int) -> None:
        if self.out is None:
            return
        width = 30
        filled = width if not self.total else min(width, width * done // self.total)
        bar = "#" * filled + "." * (width - filled)
        self.out.write(f"\r{self.label:13} [{bar}] {done}/{self.total}")
        self.out.flush()

    def end(self) -> None:
        if self.out is not None:
            self.out.write("\n")
