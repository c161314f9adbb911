"""Shared by the create_* apps: the same work as recordbase's create, minus its framework layer.

Each app builds `RecordService(open_store(settings), settings)` (settings from RECORDBASE_*),
starts/closes it in the framework's lifespan, authenticates the bearer key with
`service.authenticate`, parses the body with orjson, turns it into RecordInput with the core's
`parse_record_input`, calls `service.create_records` and answers 201 with the stored record as
JSON ({"records": [...]}, the same bytes recordbase sends). Not done here, unlike recordbase:
request ids, faces, rate limiting, idempotency keys, body size/depth/content-type checks,
problem+json rendering (errors are a bare {"code", "detail"}).
"""

from __future__ import annotations

from typing import Any

import orjson

from recordbase.config import Settings
from recordbase.core.records import RecordInput, parse_record_input
from recordbase.core.service import RecordService
from recordbase.errors import FieldError, RecordbaseError, ValidationFailed
from recordbase.stores import open_store

JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def build_service() -> RecordService:
    settings = Settings.from_env()
    return RecordService(open_store(settings), settings)


def bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def items_from(raw: bytes) -> list[RecordInput]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValidationFailed(f"invalid JSON: {exc}") from exc
    if not isinstance(body, dict) or ("record" in body) == ("records" in body):
        raise ValidationFailed('Send either {"records": [...]} or {"record": {...}}.')
    items = [body["record"]] if "record" in body else body["records"]
    if not isinstance(items, list):
        raise ValidationFailed("records must be a list.")
    errors: list[FieldError] = []
    parsed = [parse_record_input(item, f"/records/{i}", errors) for i, item in enumerate(items)]
    if errors:
        raise ValidationFailed(f"{len(errors)} problem(s) in the records.", errors=errors)
    return parsed


async def create(service: RecordService, authorization: str | None, type_key: str, raw: bytes):
    """(status, JSON bytes) for one create request."""
    try:
        principal = await service.authenticate(bearer(authorization))
        records = await service.create_records(principal, type_key, items_from(raw))
    except RecordbaseError as exc:
        return exc.status, orjson.dumps({"code": exc.code, "detail": exc.detail})
    out: dict[str, Any] = {"records": [r.as_dict() for r in records]}
    return 201, orjson.dumps(out, option=JSON_OPTIONS)
