"""Declared indexes of a record type as real PostgreSQL expression indexes.

Each declared index becomes `CREATE INDEX rbx_... ON records (type_id, <expr>..., id)`, where
each <expr> is exactly what the query compiler reads the path with (`Compiler.expression`,
by the field's kind: jsonb for numbers and strings, `rb_instant(...)` for date-times), so the
planner matches filters and sorts on it; the trailing `id` serves the sort's tie-break. The
leading `type_id` column (rather than a partial `WHERE type_id = '…'`) keeps the index usable
by prepared statements whose type id is a parameter. Names come from `sql.index_name` (as on
SQLite), shortened to a digest when longer than PostgreSQL's 63-byte identifiers. Runs in the
type change's own transaction: a rolled-back change leaves no index behind.

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
from recordbase.stores.sql import POSTGRES, declared_indexes, index_name, index_prefix

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
    literal = "'" + rtype.id.replace("'", "''") + "'"
    return (
        f'CREATE INDEX IF NOT EXISTS "{search_name(rtype.id)}" ON records '
        f"USING gin (rb_search_vector(name, data)) WHERE type_id = {literal}"
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
    for declared, expressions in declared_indexes(rtype, POSTGRES):
        name = _name(rtype, declared, expressions)
        # NULLS FIRST as the compiler sorts (nulls smallest); read backwards for descending.
        columns = ", ".join(["type_id", *(f"{e} NULLS FIRST" for e in [*expressions, "id"])])
        out[name] = f'CREATE INDEX IF NOT EXISTS "{name}" ON records ({columns})'
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
    sync_search(conn, rtype)


def drop_all(conn: psycopg.Connection[Any], type_id: str) -> None:
    for name in sorted({*existing(conn, type_id), search_name(type_id)}):
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
