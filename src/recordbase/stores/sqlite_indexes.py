"""Declared indexes of record types as real SQLite expression indexes.

A type's `indexes` (one path or several) become `CREATE INDEX ... ON records (type_id,
<expression>..., id) WHERE type_id = <number>` (the type's `record_types.no`), where each
expression is exactly the text the query compiler reads the path with
(`Compiler.expression`), so the planner matches filters and sorts on it; the trailing `id`
serves the sort's tie-break. The index is partial, as on PostgreSQL (pg_indexes.py): over
the whole table, every write of every type computed and inserted every other type's entries
(each one a `json_extract` of the record and an index entry, for nothing). List queries name
the type's number as a literal (`SqliteTx._type_is`), which is what lets SQLite's planner
use a partial index. Index names carry the type id and a digest of the expressions and the
predicate, so changing an index's fields (or a field's kind) replaces it; indexes made
before they were partial (`(type_id, <expression>..., id)` over the whole table, no WHERE),
and those migration 0009 dropped with the old table, are made when the store opens
(`upgrade_indexes`). Runs inside the writer's transaction: SQLite DDL is transactional.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from recordbase.core.types import RecordType
from recordbase.stores.common import TYPE_COLUMNS, type_from_row
from recordbase.stores.sql import SQLITE, declared_indexes, index_name, index_prefix

log = logging.getLogger("recordbase")

ANALYSIS_LIMIT = 1000  # rows sampled per index: bounded cost on big tables


def type_number(conn: sqlite3.Connection, type_id: str) -> int:
    """A type's number (`record_types.no`), what records and key rows hold; 0 (no type's
    number) when there is no such type."""
    row = conn.execute("SELECT no FROM record_types WHERE id = ?", (type_id,)).fetchone()
    return 0 if row is None else int(row[0])


def wanted_indexes(conn: sqlite3.Connection, rtype: RecordType) -> dict[str, str]:
    """index name -> CREATE INDEX statement, for every declared index of `rtype`."""
    wanted: dict[str, str] = {}
    where = f"type_id = {type_number(conn, rtype.id)}"
    for declared, expressions in declared_indexes(rtype, SQLITE):
        # The predicate is in the name's digest: a whole-table index of an earlier version
        # has another name, so a sync replaces it.
        index = index_name(rtype.id, declared, [*expressions, where])
        # A leading type_id although the predicate fixes it: with it, SQLite's planner (with
        # no statistics yet, as on a new type) weighs the index as matching two terms and
        # prefers it to records_owner or records_created matching one.
        columns = ", ".join(["type_id", *expressions, "id"])
        wanted[index] = f'CREATE INDEX IF NOT EXISTS "{index}" ON records ({columns}) WHERE {where}'
    return wanted


def upgrade_indexes(conn: sqlite3.Connection) -> int:
    """Make the declared indexes an earlier version left behind; returns how many types were
    synced. Once per database, then one query each time the store opens:

    - migration 0009 rebuilt `records` (type numbers), which dropped every declared index,
      and left meta `rebuild_declared_indexes`: every type's are made again;
    - indexes made over the whole table (before they were partial) are replaced.
    """
    rebuild = conn.execute("SELECT 1 FROM meta WHERE k = 'rebuild_declared_indexes'").fetchone()
    old = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'records' "
        "AND substr(name, 1, 4) = 'rbx_' AND sql NOT LIKE '% WHERE %'"
    ).fetchall()
    if not old and not rebuild:
        return 0
    names = {str(r[0]) for r in old}
    synced = 0
    for row in conn.execute(f"SELECT {TYPE_COLUMNS} FROM record_types").fetchall():
        rtype = type_from_row(row)
        prefix = "rbx_" + index_prefix(rtype.id)
        if (rebuild and rtype.definition.indexes) or any(n.startswith(prefix) for n in names):
            if not synced:
                log.warning(
                    "building the declared indexes of an earlier schema (once; seconds per "
                    "index on millions of records)"
                )
            sync_indexes(conn, rtype)
            synced += 1
    conn.execute("DELETE FROM meta WHERE k = 'rebuild_declared_indexes'")
    return synced


def existing_indexes(conn: sqlite3.Connection, type_id: str) -> list[str]:
    prefix = "rbx_" + index_prefix(type_id)
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND substr(name, 1, ?) = ?",
        (len(prefix), prefix),
    )
    return [str(r[0]) for r in rows]


def sync_indexes(conn: sqlite3.Connection, rtype: RecordType) -> None:
    """Create the declared indexes that are missing and drop the ones no longer declared."""
    wanted = wanted_indexes(conn, rtype)
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
        analyze(conn, "records")


def analyze(conn: sqlite3.Connection, target: str = "") -> None:
    """A sampled ANALYZE (`ANALYSIS_LIMIT` rows per index), with the records indexes'
    rows-per-type estimate set right afterwards.

    Every index on `records` leads with `type_id`, and a sample of ~1,000 entries of one
    index sees a single type, so SQLite records ~1,000 rows per type however many there are.
    With 2,400,000 records of a few types the planner then took a customer's page (a
    declared index, 100 matches) for cheaper by walking the type's `records_created` than by
    the index plus a sort: 1 page/s instead of 1,000, after any restart (docs/performance.md).
    The estimate of the indexes that lead with `type_id` becomes at least the average rows
    per type (total rows / types), then the connection reloads the statistics.
    """
    conn.execute(f"PRAGMA analysis_limit = {ANALYSIS_LIMIT}")
    conn.execute(f"ANALYZE {target}".strip())
    types = conn.execute("SELECT count(*) FROM record_types").fetchone()[0] or 1
    rows = conn.execute(
        "SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'records' AND idx IS NOT NULL"
    ).fetchall()
    partial = {
        str(name): bool(flag)
        for name, flag in conn.execute("SELECT name, partial FROM pragma_index_list('records')")
    }
    changed = False
    for index, stat in rows:
        first = conn.execute("SELECT name FROM pragma_index_info(?)", (index,)).fetchone()
        if first is None or first[0] != "type_id":
            continue
        parts = str(stat).split(" ")
        if len(parts) < 2 or not (parts[0].isdigit() and parts[1].isdigit()):
            continue
        # A declared index is partial, one type's rows: they all share its type_id.
        per_type = int(parts[0]) if partial.get(index) else max(1, int(parts[0]) // types)
        if int(parts[1]) >= per_type:
            continue
        parts[1] = str(per_type)
        conn.execute(
            "UPDATE sqlite_stat1 SET stat = ? WHERE tbl = 'records' AND idx = ?",
            (" ".join(parts), index),
        )
        changed = True
    if changed:
        conn.execute("ANALYZE sqlite_schema")  # this connection plans with the new numbers


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
