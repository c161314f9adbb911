"""Declared indexes of a record type as real PostgreSQL expression indexes.

Each declared index becomes `CREATE INDEX rbx_... ON records (<expr>..., id) WHERE type_id =
'<id>'`, where each <expr> is exactly what the query compiler reads the path with
(`Compiler.expression`, by the field's kind: jsonb for numbers and strings, `rb_instant(...)`
for date-times), so the planner matches filters and sorts on it; the trailing `id` serves the
sort's tie-break. The index is partial so that only the type's own records pay for it: an
index over the whole table made every write of every type compute and insert every other
type's entries (one other type's index cost ~20% of the database's CPU per 100-row batch).
List queries name the type as a literal (`sql.type_is`), so prepared statements with
generic plans still match the predicate. Indexes made before they were partial
(`(type_id, <expr>..., id)` over the whole table) keep their names and stay correct and
usable; the type's next change replaces them (the predicate is in the name's digest). Names
come from `sql.index_name` (as on SQLite), shortened to a digest when longer than
PostgreSQL's 63-byte identifiers. Runs in the type change's own transaction: a rolled-back
change leaves no index behind.

A type with `"search": true` also gets a partial GIN index over `rb_search_vector(name,
data)` `WHERE type_id = '<id>'`, named `rbs_<md5 of the id>` (migration 0006 names those
of existing types the same way), so the types that never search pay nothing per write.
"""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
from psycopg import sql

from recordbase.core.types import RecordType
from recordbase.stores.sql import POSTGRES, declared_indexes, index_name, index_prefix, type_is

_MAX_NAME = 63


def _name(rtype: RecordType, declared: str, expressions: list[str]) -> str:
    name = index_name(rtype.id, declared, expressions)
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.blake2b(name.encode(), digest_size=6).hexdigest()
    return f"rbx_{index_prefix(rtype.id)}{digest}"[:_MAX_NAME]


def search_name(type_id: str) -> str:
    return "rbs_" + hashlib.md5(type_id.encode(), usedforsecurity=False).hexdigest()


def search_index(rtype: RecordType) -> str:
    return (
        f'CREATE INDEX IF NOT EXISTS "{search_name(rtype.id)}" ON records '
        f"USING gin (rb_search_vector(name, data)) WHERE {type_is(rtype.id)}"
    )


def sync_search(conn: psycopg.Connection[Any], rtype: RecordType) -> None:
    """Create or drop the type's search index so that it matches its `search` member."""
    if rtype.definition.search:
        conn.execute(search_index(rtype).encode())
    else:
        conn.execute(
            sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(search_name(rtype.id)))
        )


def wanted(rtype: RecordType) -> dict[str, str]:
    """Index name -> CREATE INDEX statement for every declared index of the type."""
    out: dict[str, str] = {}
    where = type_is(rtype.id)
    for declared, expressions in declared_indexes(rtype, POSTGRES):
        # The predicate is part of the name's digest: an index made before indexes were
        # partial has another name, so the type's next sync replaces it.
        name = _name(rtype, declared, [*expressions, where])
        # NULLS FIRST as the compiler sorts (nulls smallest); read backwards for descending.
        # No leading type_id: the predicate fixes it, and the planner drops a condition the
        # predicate implies from the index's search keys (a leading type_id would leave the
        # expressions as non-leading columns, useless for a search).
        columns = ", ".join(f"{e} NULLS FIRST" for e in [*expressions, "id"])
        out[name] = f'CREATE INDEX IF NOT EXISTS "{name}" ON records ({columns}) WHERE {where}'
    return out


def existing(conn: psycopg.Connection[Any], type_id: str) -> set[str]:
    prefix = "rbx_" + index_prefix(type_id)
    rows = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = 'records' AND left(indexname, %s) = %s",
        (len(prefix), prefix),
    )
    return {str(r[0]) for r in rows}


def sync(conn: psycopg.Connection[Any], rtype: RecordType) -> None:
    """Create the declared indexes that are missing and drop those no longer declared."""
    want = wanted(rtype)
    have = existing(conn, rtype.id)
    for name in sorted(have - set(want)):
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
    for name in sorted(set(want) - have):
        conn.execute(want[name].encode())
    sync_statistics(conn, rtype)
    sync_search(conn, rtype)


def sync_statistics(conn: psycopg.Connection[Any], rtype: RecordType) -> None:
    """Expression statistics for every declared index's expressions (PostgreSQL 14+).

    ANALYZE keeps no statistics on the expressions of these partial indexes, so the planner
    took 0.5% of rows for `<expr> = value` and, for a page sorted by created_at, walked
    `records_created` filtering row by row instead of reading the declared index: 740 ms
    against 1.1 ms for a customer's page over 1M records (docs/performance.md). A statistics
    object per expression, over the whole table, named by the expression's digest: types
    with the same expression share it; it is never dropped (it only costs ANALYZE time).
    """
    if conn.info.server_version < 140000:
        return
    for _declared, expressions in declared_indexes(rtype, POSTGRES):
        for expr in expressions:
            digest = hashlib.md5(expr.encode(), usedforsecurity=False).hexdigest()[:20]
            conn.execute(
                f'CREATE STATISTICS IF NOT EXISTS "rbt_{digest}" ON ({expr}) FROM records'.encode()
            )


def drop_all(conn: psycopg.Connection[Any], type_id: str) -> None:
    for name in sorted({*existing(conn, type_id), search_name(type_id)}):
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
