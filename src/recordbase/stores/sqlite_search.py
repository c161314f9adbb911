"""Full-text search rows (FTS5 `records_fts`, rowid = records.seq) of the types that opt in.

Only types listed in `search_types` have rows there; the store writes them itself, one
set-based statement per write, right after the records change (measured in docs/decisions.md:
per-row triggers cost even the types that never search, and cost searching types twice as
much). Every function runs inside the caller's transaction; `searched` asks the table, not a
cached definition, so a write always keeps what the database holds consistent.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from recordbase.core.types import RecordType

# The indexed text of a record: its name and every string value of its data.
BODY = (
    "coalesce(name, '') || ' ' || coalesce("
    "(SELECT group_concat(value, ' ') FROM json_tree(records.data) WHERE type = 'text'), '')"
)
_CHUNK = 500  # ids per IN (...): below SQLite's bound-parameter limit
# Records name their type by its number; these statements take the type's id.
_OF_TYPE = "type_id = (SELECT no FROM record_types WHERE id = ?)"


def searched(conn: sqlite3.Connection, type_id: str) -> bool:
    row = conn.execute("SELECT 1 FROM search_types WHERE type_id = ?", (type_id,)).fetchone()
    return row is not None


def _chunks(ids: Sequence[str]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    for start in range(0, len(ids), _CHUNK):
        chunk = tuple(ids[start : start + _CHUNK])
        yield ", ".join("?" * len(chunk)), chunk


def add(conn: sqlite3.Connection, type_id: str, ids: Sequence[str]) -> None:
    """Index the given records (just inserted, or re-indexed after `remove`)."""
    for marks, chunk in _chunks(ids):
        conn.execute(
            f"INSERT INTO records_fts (rowid, body) SELECT seq, {BODY} FROM records "
            f"WHERE {_OF_TYPE} AND id IN ({marks})",
            (type_id, *chunk),
        )


def remove(conn: sqlite3.Connection, type_id: str, ids: Sequence[str]) -> None:
    """Drop the rows of the given records (before they are deleted or re-indexed)."""
    for marks, chunk in _chunks(ids):
        conn.execute(
            "DELETE FROM records_fts WHERE rowid IN (SELECT seq FROM records "
            f"WHERE {_OF_TYPE} AND id IN ({marks}))",
            (type_id, *chunk),
        )


def sync(conn: sqlite3.Connection, rtype: RecordType) -> None:
    """Build or drop a type's rows so that they match its `search` member."""
    have = searched(conn, rtype.id)
    if rtype.definition.search and not have:
        conn.execute("INSERT INTO search_types (type_id) VALUES (?)", (rtype.id,))
        conn.execute(
            f"INSERT INTO records_fts (rowid, body) SELECT seq, {BODY} FROM records "
            f"WHERE {_OF_TYPE}",
            (rtype.id,),
        )
    elif have and not rtype.definition.search:
        drop(conn, rtype.id)


def drop(conn: sqlite3.Connection, type_id: str) -> None:
    """Drop all rows of a type (search turned off, or the type deleted)."""
    conn.execute(
        f"DELETE FROM records_fts WHERE rowid IN (SELECT seq FROM records WHERE {_OF_TYPE})",
        (type_id,),
    )
    conn.execute("DELETE FROM search_types WHERE type_id = ?", (type_id,))
