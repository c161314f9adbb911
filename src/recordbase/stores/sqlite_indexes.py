"""Declared indexes of record types as real SQLite expression indexes.

A type's `indexes` (one path or several) become `CREATE INDEX ... ON records (type_id,
<expression>..., id)`, where each expression is exactly the text the query compiler reads the
path with (`Compiler.expression`), so the planner matches filters and sorts on it; the trailing
`id` serves the sort's tie-break. Index names carry the type id and a digest of the
expressions, so changing an index's fields (or a field's kind) replaces it. Runs inside the
writer's transaction: SQLite DDL is transactional.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from recordbase.core.types import RecordType
from recordbase.stores.sql import SQLITE, declared_indexes, index_name, index_prefix

ANALYSIS_LIMIT = 1000  # rows sampled per index: bounded cost on big tables


def wanted_indexes(rtype: RecordType) -> dict[str, str]:
    """index name -> CREATE INDEX statement, for every declared index of `rtype`."""
    wanted: dict[str, str] = {}
    for declared, expressions in declared_indexes(rtype, SQLITE):
        index = index_name(rtype.id, declared, expressions)
        columns = ", ".join(["type_id", *expressions, "id"])
        wanted[index] = f'CREATE INDEX IF NOT EXISTS "{index}" ON records ({columns})'
    return wanted


def existing_indexes(conn: sqlite3.Connection, type_id: str) -> list[str]:
    prefix = "rbx_" + index_prefix(type_id)
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND substr(name, 1, ?) = ?",
        (len(prefix), prefix),
    )
    return [str(r[0]) for r in rows]


def sync_indexes(conn: sqlite3.Connection, rtype: RecordType) -> None:
    """Create the declared indexes that are missing and drop the ones no longer declared."""
    wanted = wanted_indexes(rtype)
    existing = existing_indexes(conn, rtype.id)
    for name in existing:
        if name not in wanted:
            conn.execute(f'DROP INDEX "{name}"')
    created = [statement for name, statement in wanted.items() if name not in existing]
    for statement in created:
        conn.execute(statement)
    if created:
        # Without statistics SQLite's planner prefers the created_at index (it saves the
        # sort) over a selective expression index; a sampled ANALYZE gives it the numbers.
        conn.execute(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
        conn.execute("ANALYZE records")


def drop_indexes(conn: sqlite3.Connection, type_id: str) -> None:
    for name in existing_indexes(conn, type_id):
        conn.execute(f'DROP INDEX "{name}"')


def explain(conn: sqlite3.Connection, sql: str, params: list[Any]) -> str:
    """SQLite's query plan for `sql`, one step a line.

    Asked on a fresh connection: EXPLAIN reads no table, so a long-lived connection would
    plan with the schema and statistics it loaded before another connection's new index.
    Real queries notice the schema change and re-plan by themselves.
    """
    from recordbase.stores.sqlite import connect  # that module imports this one

    path = conn.execute("PRAGMA database_list").fetchone()[2]
    fresh = connect(path, readonly=True) if path else conn
    try:
        rows = fresh.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
    finally:
        if fresh is not conn:
            fresh.close()
    return "\n".join(str(r[-1]) for r in rows)
