"""Held inserts: the new records of a group's writes reach SQLite in one multi-row INSERT.

The writer runs a group of writes in one transaction (sqlite_writer.py). Under single
creates each write inserted its one record with its own statement: SQLite then opened the
table's and its six indexes' cursors once per record, and a one-row INSERT cost ~12 µs of
the core per record in a group of 32, against ~7 µs as part of one 32-row statement
(docs/performance.md, round 10). While a group's first pass runs, `SqliteTx` hands new
records' rows to `HeldInserts` instead, and its connection becomes a `HoldingConnection`:
any other statement sends the held rows first, so every read and write of the transaction
sees the rows in the order the writes made them. The writer sends what is left before its
COMMIT. A held row that fails (a clashing id) fails the statement that sends it, whichever
write that belongs to: the writer then rolls the group back and runs it again write by
write, each in its own savepoint and without holding, so the failure is the right write's.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from itertools import chain
from typing import Any

Statement = Callable[[int, int], str]  # (mask, rows) -> the INSERT of that many rows


class HeldInserts:
    """New records' rows, in order, waiting to be sent: (type number, column mask, row)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        statement: Statement,
        runs: Callable[[int], Iterator[tuple[int, int]]],
    ) -> None:
        self.conn = conn
        self.rows: list[tuple[int, int, list[Any]]] = []
        self._statement = statement
        self._runs = runs

    def add(self, type_key: int, mask: int, rows: Sequence[list[Any]]) -> None:
        self.rows += [(type_key, mask, row) for row in rows]

    def send(self) -> None:
        """INSERT every held row: consecutive rows of one type and mask share statements."""
        held, self.rows = self.rows, []
        i, end = 0, len(held)
        while i < end:
            type_key, mask, _row = held[i]
            j = i + 1
            while j < end and held[j][0] == type_key and held[j][1] == mask:
                j += 1
            rows = [h[2] for h in held[i:j]]
            for start, n in self._runs(len(rows)):
                params = [type_key, *chain.from_iterable(rows[start : start + n])]
                self.conn.execute(self._statement(mask, n), params)
            i = j


class HoldingConnection:
    """The writer's connection while rows are held: a statement sends them first."""

    __slots__ = ("_conn", "_held")

    def __init__(self, conn: sqlite3.Connection, held: HeldInserts) -> None:
        self._conn = conn
        self._held = held

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        if self._held.rows:
            self._held.send()
        return self._conn.execute(sql, params)

    def executemany(self, sql: str, params: Any) -> sqlite3.Cursor:
        if self._held.rows:
            self._held.send()
        return self._conn.executemany(sql, params)

    def cursor(self) -> sqlite3.Cursor:
        if self._held.rows:
            self._held.send()
        return self._conn.cursor()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)
