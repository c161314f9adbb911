"""Bench data: the same ~10-field rows for recordbase, the raw references and Datasette.

Loading is not measured, so it goes the fastest safe way: through recordbase's own service
and store in-process (validated batches of 1,000, several in flight so the writer
group-commits them), and with plain executemany into Datasette's SQLite file.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from typing import Any

STATUSES = ("open", "pending", "active", "closed", "won", "lost", "new", "hold", "spam", "done")
COUNTRIES = ("fr", "de", "us", "gb", "jp", "br", "in", "es", "it", "ca")
CUSTOMERS = 10_000

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "email": {"type": "string", "maxLength": 200},
        "full_name": {"type": "string", "maxLength": 200},
        "age": {"type": "integer", "minimum": 0, "maximum": 200},
        "status": {"type": "string", "enum": list(STATUSES)},
        "customer": {"type": "string"},
        "score": {"type": "number"},
        "active": {"type": "boolean"},
        "country": {"type": "string", "minLength": 2, "maxLength": 2},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
        "joined": {"type": "string"},
    },
    "required": ["email", "status", "customer"],
    "additionalProperties": False,
}
COLUMNS = tuple(SCHEMA["properties"])


def row(i: int) -> dict[str, Any]:
    """Row number i: status cycles through 10 values (10% each); customer through 10,000."""
    return {
        "email": f"user{i}@example.com",
        "full_name": f"User Number {i}",
        "age": 18 + i % 60,
        "status": STATUSES[i % len(STATUSES)],
        "customer": f"c-{(i * 7919) % CUSTOMERS}",
        "score": (i % 1000) / 10,
        "active": i % 3 == 0,
        "country": COUNTRIES[(i // 10) % len(COUNTRIES)],
        "tags": ["alpha", "beta"] if i % 2 else ["gamma"],
        "joined": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}",
    }


@dataclass
class Loaded:
    secret: str
    deep_cursor: str | None
    deep_after: tuple[str, str] | None
    items_type_id: str


TYPES = (
    # the 1M read set; customer is a declared index, status is not
    {
        "key": "items",
        "schema": SCHEMA,
        "indexes": [{"name": "by_customer", "fields": ["data.customer"]}],
    },
    {"key": "writes", "schema": SCHEMA},
    {"key": "upserts", "schema": SCHEMA},
)


def load_recordbase(database_url: str, count: int, deep: int) -> Loaded:
    """Create the bench project, key and types, then `count` records of type items."""
    return asyncio.run(_load(database_url, count, deep))


async def _load(database_url: str, count: int, deep: int) -> Loaded:
    from recordbase.config import Settings
    from recordbase.core.clock import utc_text
    from recordbase.core.query import DEFAULT_SORT, Query, stable_sort
    from recordbase.core.records import RecordInput
    from recordbase.core.service import RecordService
    from recordbase.stores import open_store

    settings = Settings(database_url=database_url)
    service = RecordService(open_store(settings), settings)
    await service.start()
    try:
        _key, secret = await service.create_key(
            "bench", ["admin"], rate=1e9, burst=10**9, name="bench"
        )
        p = await service.authenticate(secret)
        for definition in TYPES:
            await service.create_type(p, definition)
        batch, inflight = 1000, 8
        for start in range(0, count, batch * inflight):
            jobs = []
            for b in range(start, min(count, start + batch * inflight), batch):
                items = [RecordInput(data=row(i)) for i in range(b, min(count, b + batch))]
                jobs.append(service.create_records(p, "items", items))
            await asyncio.gather(*jobs)
        if database_url.startswith("postgres"):
            # Planner statistics after the bulk load, as autovacuum would take them (this
            # machine's PostgreSQL runs with autovacuum off: without them both recordbase and
            # the raw references got seq-scan plans, 2.5 q/s for a filtered page).
            import psycopg

            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute("ANALYZE")
        rtype = await service.type_for(p, "items")
        sort = stable_sort(DEFAULT_SORT)
        at = min(deep, max(0, count - 200))
        found = await service.store.read(
            lambda tx: tx.list_records(rtype, Query(sort=sort, limit=1, offset=at))
        )
        cursor = after = None
        if found:
            # The cursor the API hands out just after that record, made by the service itself;
            # the bench checks it with one request before measuring.
            after = (utc_text(found[0].created_at), found[0].id)
            cursor = await service.cursor_at(p, "items", Query(), found[0])
        return Loaded(secret, cursor, after, rtype.id)
    finally:
        await service.close()


def load_datasette(path: str, count: int) -> None:
    """Datasette's natural shape: one column per field, `items` (read set) and `rows` (writes)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    cols = ", ".join(f"{c} {'TEXT' if c == 'tags' else ''}".strip() for c in COLUMNS)
    for table in ("items", "rows"):
        conn.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, {cols})")
    marks = ", ".join("?" * len(COLUMNS))
    conn.execute("BEGIN")
    for start in range(0, count, 10_000):
        conn.executemany(
            f"INSERT INTO items ({', '.join(COLUMNS)}) VALUES ({marks})",
            [_flat(row(i)) for i in range(start, min(count, start + 10_000))],
        )
    conn.execute("COMMIT")
    conn.close()


def _flat(data: dict[str, Any]) -> tuple[Any, ...]:
    import json

    return tuple(json.dumps(v) if isinstance(v, list) else v for v in (data[c] for c in COLUMNS))
