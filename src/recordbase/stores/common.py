"""Helpers shared by the SQL stores: row <-> value mapping and migrations."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from importlib import resources
from typing import Any

import orjson

from recordbase.core.clock import utc_text
from recordbase.core.records import ApiKey, Project, Record, Scope
from recordbase.core.types import Discriminator, KeySpec, Naming, RecordType, TypeDefinition

RECORD_COLUMNS = (
    "id, name, external_id, owner, data, description, attachments, version, "
    "created_at, updated_at, created_by, updated_by"
)
KEY_COLUMNS = (
    "k.id, k.project_id, p.name, k.prefix, k.scopes, k.rate, k.burst, k.created_at, "
    "k.expires_at, k.revoked_at, k.last_used_at, k.name, p.rate, p.burst"
)
PROJECT_COLUMNS = "id, name, created_at, rate, burst"
TYPE_COLUMNS = "id, project_id, definition, version, created_at, updated_at, extra"


def ts(value: datetime | None) -> str | None:
    """A sortable UTC text timestamp with a fixed width (microseconds, Z)."""
    return None if value is None else utc_text(value)


def parse_ts(value: Any) -> Any:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def record_from_row(type_key: str, row: Any) -> Record:
    data = row[4]
    attachments = row[6]
    return Record(
        id=row[0],
        type=type_key,
        name=row[1],
        external_id=row[2],
        owner=row[3],
        data=orjson.loads(data) if isinstance(data, (str, bytes)) else data,
        description=row[5],
        attachments=(
            orjson.loads(attachments) if isinstance(attachments, (str, bytes)) else attachments
        ),
        version=row[7],
        created_at=parse_ts(row[8]),
        updated_at=parse_ts(row[9]),
        created_by=row[10],
        updated_by=row[11],
    )


def key_from_row(row: Any) -> ApiKey:
    return ApiKey(
        id=row[0],
        project_id=row[1],
        project_name=row[2],
        prefix=row[3],
        scopes=tuple(Scope.parse(s) for s in orjson.loads(row[4])),
        rate=row[5],
        burst=row[6],
        created_at=parse_ts(row[7]),
        expires_at=parse_ts(row[8]),
        revoked_at=parse_ts(row[9]),
        last_used_at=parse_ts(row[10]),
        name=row[11],
        project_rate=row[12],
        project_burst=row[13],
    )


def project_from_row(row: Any) -> Project:
    return Project(id=row[0], name=row[1], created_at=parse_ts(row[2]), rate=row[3], burst=row[4])


def definition_to_json(d: TypeDefinition) -> str:
    return orjson.dumps(
        {
            "key": d.key,
            "name": d.name,
            "description": d.description,
            "schema": d.schema,
            "naming": d.naming.as_dict() if d.naming else None,
            "unique_keys": [k.as_dict() for k in d.unique_keys],
            "indexes": [k.as_dict() for k in d.indexes],
            **d.shaping_dict(),
            "search": d.search,
        }
    ).decode()


def type_from_row(row: Any) -> RecordType:
    raw = orjson.loads(row[2]) if isinstance(row[2], (str, bytes)) else row[2]
    naming = raw.get("naming")
    extra = row[6]
    definition = TypeDefinition(
        key=raw["key"],
        name=raw["name"],
        description=raw["description"],
        schema=raw["schema"],
        naming=Naming(**naming) if naming else None,
        unique_keys=tuple(KeySpec(k["name"], tuple(k["fields"])) for k in raw["unique_keys"]),
        indexes=tuple(KeySpec(k["name"], tuple(k["fields"])) for k in raw["indexes"]),
        **_shaping_from_json(raw),
        search=bool(raw.get("search", False)),
    )
    return RecordType(
        id=row[0],
        project_id=row[1],
        definition=definition,
        version=row[3],
        created_at=parse_ts(row[4]),
        updated_at=parse_ts(row[5]),
        extra=orjson.loads(extra) if isinstance(extra, (str, bytes)) else (extra or {}),
    )


def _shaping_from_json(raw: dict[str, Any]) -> dict[str, Any]:
    """The shaping members of a stored definition (absent in rows written before they existed)."""
    disc = raw.get("discriminator")
    return {
        "aliases": raw.get("aliases") or {},
        "computed": raw.get("computed") or {},
        "read_only": tuple(raw.get("read_only") or ()),
        "discriminator": Discriminator(
            disc["field"],
            {v: {a: tuple(p) for a, p in c.items()} for v, c in disc["cases"].items()},
        )
        if disc
        else None,
        "constants": raw.get("constants") or {},
    }


def migrations(dialect: str) -> list[tuple[int, str]]:
    """(version, sql) pairs of the packaged migrations for a dialect, in order."""
    folder = resources.files("recordbase.stores") / "migrations" / dialect
    found = []
    for item in folder.iterdir():
        if item.name.endswith(".sql"):
            found.append((int(item.name.split("_", 1)[0]), item.read_text()))
    return sorted(found)


def apply_migrations(
    conn: Any, dialect: str, has_meta: bool, apply: Callable[[Any, str], None]
) -> int:
    """Runs `apply(conn, sql)` for each packaged migration not applied yet, in order.

    Each applied migration is recorded as `meta` row `migration:NNNN`, so one that arrives
    with a lower number than one already applied (parallel branches) still runs. Databases from
    before these rows count every version up to their `schema_version` as applied. Returns the
    highest version; the caller holds the transaction (and, on PostgreSQL, the lock that keeps a
    second migrator out).
    """
    applied: set[int] = set()
    if has_meta:
        rows = conn.execute("SELECT k FROM meta WHERE k LIKE 'migration:%'").fetchall()
        applied = {int(str(r[0]).split(":", 1)[1]) for r in rows}
        if not applied:
            row = conn.execute("SELECT v FROM meta WHERE k = 'schema_version'").fetchone()
            applied = set(range(1, int(row[0]) + 1)) if row else set()
    mark = "?" if dialect == "sqlite" else "%s"
    upsert = (
        f"INSERT INTO meta (k, v) VALUES ({mark}, {mark}) "
        "ON CONFLICT (k) DO UPDATE SET v = excluded.v"
    )
    known = migrations(dialect)
    for version, sql in known:
        if version not in applied:
            apply(conn, sql)
            applied.add(version)
    for version in applied:
        conn.execute(upsert, (f"migration:{version:04d}", "applied"))
    current = max(applied, default=0)
    conn.execute(upsert, ("schema_version", str(current)))
    return current
