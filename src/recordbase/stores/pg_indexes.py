"""Declared indexes of a record type as real PostgreSQL expression indexes.

Each declared index (`indexes: [{"name", "fields"}]`) becomes
`CREATE INDEX rbi_<type id>_<digest> ON records (type_id, <expr>, ...)`, where each <expr> is
exactly the SQL the query compiler writes for that path, so the planner can match them. The
leading `type_id` column (rather than a partial `WHERE type_id = '…'`) keeps the index usable
by prepared statements whose type id is a parameter. Indexes are created in the type's own
transaction: no index is left behind by a rolled-back type change.
"""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
from psycopg import sql

from recordbase.core.types import RecordType
from recordbase.stores.sql import POSTGRES, SYSTEM_COLUMNS


def _prefix(rtype: RecordType) -> str:
    return "rbi_" + "".join(ch for ch in rtype.id.lower() if ch.isalnum())[:32] + "_"


def _expression(field: str) -> str:
    path = tuple(field.split("."))
    if path[0] == "data":
        return POSTGRES.json_path(path)
    return SYSTEM_COLUMNS[path[0]]


def wanted(rtype: RecordType) -> dict[str, str]:
    """Index name -> CREATE INDEX statement for every declared index of the type."""
    prefix = _prefix(rtype)
    out: dict[str, str] = {}
    for spec in rtype.definition.indexes:
        exprs = [_expression(f) for f in spec.fields]
        digest = hashlib.blake2b("|".join(exprs).encode(), digest_size=5).hexdigest()
        name = prefix + digest
        out[name] = f"CREATE INDEX IF NOT EXISTS {name} ON records (type_id, {', '.join(exprs)})"
    return out


def existing(conn: psycopg.Connection[Any], rtype: RecordType) -> set[str]:
    rows = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = 'records' AND indexname LIKE %s",
        (_prefix(rtype) + "%",),
    )
    return {str(r[0]) for r in rows}


def sync(conn: psycopg.Connection[Any], rtype: RecordType) -> None:
    """Create the declared indexes that are missing and drop those no longer declared."""
    want = wanted(rtype)
    have = existing(conn, rtype)
    for name in sorted(have - set(want)):
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
    for name in sorted(set(want) - have):
        conn.execute(want[name].encode())


def drop_all(conn: psycopg.Connection[Any], rtype: RecordType) -> None:
    for name in sorted(existing(conn, rtype)):
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
