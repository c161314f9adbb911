"""Keywords AI request shapes <-> core values: log bodies, rendered logs, filters, sorting.

A log body becomes the `data` of a `request_log` record (the core resolves the vendor's old
field names through the type's aliases); keys the vendor's SDKs send but that mean nothing
here are dropped (IGNORED_KEYS); any other unknown key is a 400 listing the valid ones. A
stored record renders as the vendor's flat log object. List filters (`{"field": {"operator",
"value": [...]}}`, `metadata__<key>`) become the core filter tree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import orjson

from recordbase.core.clock import utc_text
from recordbase.core.query import And, Condition, Filter, SortKey
from recordbase.core.records import Record
from recordbase.errors import (
    FieldError,
    InvalidFilter,
    InvalidSort,
    UnknownMember,
    ValidationFailed,
)
from recordbase.web.faces.keywords.definition import DEFINITION, PROPERTIES

# Sent by the vendor's SDKs (keywordsai 1.0.4 always sends the first six) and ignored here.
IGNORED_KEYS: Final = (
    "encoding_format",
    "disable_fallback",
    "field_name",
    "delimiter",
    "disable_log",
    "request_breakdown",
    "keywordsai_api_controls",
    "keywordsai_params",
    "respan_params",
)
ALIASES: Final = tuple(a.split(".", 1)[1] for a in DEFINITION["aliases"])
LOG_KEYS: Final = (*PROPERTIES, *ALIASES)
# Log types whose logs also render prompt_messages / completion_message (the seed's type A-D).
MESSAGE_TYPES: Final = ("chat", "completion", "response", "embedding")
# Fields a PATCH may change; every other field of a stored log is immutable.
UPDATABLE: Final = ("metadata", "custom_identifier", "note", "positive_feedback")
USAGE_FIELDS: Final = ("prompt_tokens", "completion_tokens", "total_tokens")
SORTS: Final = (
    "id",
    "timestamp",
    "cost",
    "latency",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "time_to_first_token",
    "tokens_per_second",
    "status_code",
)
OPERATORS: Final = (
    "",
    "iexact",
    "lt",
    "lte",
    "gt",
    "gte",
    "contains",
    "icontains",
    "startswith",
    "endswith",
    "in",
    "isnull",
    "not",
)
_NOT_FILTERABLE: Final = ("input", "output", "tools", "tool_calls", "messages", "usage")
FILTER_FIELDS: Final = tuple(
    sorted({"id", "unique_id", *USAGE_FIELDS, *(p for p in PROPERTIES if p not in _NOT_FILTERABLE)})
)


def log_data(body: Any, where: str = "") -> dict[str, Any]:
    """The record data of one log body; raises 400 on a non-object or an unknown key."""
    if not isinstance(body, dict):
        raise ValidationFailed(
            "A log must be a JSON object.", errors=[FieldError(where or "/", "type", "an object")]
        )
    unknown = [k for k in body if k not in LOG_KEYS and k not in IGNORED_KEYS]
    if unknown:
        raise UnknownMember(
            f"Unknown log field(s) {', '.join(map(repr, unknown))}; valid: "
            f"{', '.join(LOG_KEYS)} (accepted and ignored: {', '.join(IGNORED_KEYS)}).",
            errors=[
                FieldError(f"{where}/{k}", "unknown_member", "not a log field") for k in unknown
            ],
        )
    data = {k: v for k, v in body.items() if k not in IGNORED_KEYS and v is not None}
    for name in ("timestamp", "start_time"):
        if name in data:
            data[name] = normalize_time(data[name], f"{where}/{name}")
    return data


def blocks(body: Any, where: str = "") -> bool:
    """`keywordsai_api_controls.block` of one log body (default true); a malformed one is 400."""
    controls = body.get("keywordsai_api_controls") if isinstance(body, dict) else None
    if controls is None:
        return True
    path = f"{where}/keywordsai_api_controls"
    if not isinstance(controls, dict):
        raise ValidationFailed(
            'keywordsai_api_controls must be an object, e.g. {"block": false}.',
            errors=[FieldError(path, "type", "an object")],
        )
    unknown = [k for k in controls if k != "block"]
    if unknown:
        raise UnknownMember(
            f"Unknown keywordsai_api_controls field(s) {', '.join(map(repr, unknown))}; "
            "valid: block.",
            errors=[FieldError(f"{path}/{k}", "unknown_member", "valid: block") for k in unknown],
            extra={"valid": ["block"]},
        )
    block = controls.get("block")
    if block is not None and not isinstance(block, bool):
        raise ValidationFailed(
            "keywordsai_api_controls.block must be true or false.",
            errors=[FieldError(f"{path}/block", "type", "true or false")],
        )
    return block is not False


def pending_log(unique_id: str, data: dict[str, Any], organization_id: str) -> dict[str, Any]:
    """A queued log (`block: false`) as answered before it is written: its id and `pending`."""
    out: dict[str, Any] = {
        "id": unique_id,
        "unique_id": unique_id,
        "organization_id": organization_id,
        "status": "pending",
        "timestamp": data.get("timestamp"),
    }
    if "customer_identifier" in data:
        out["customer_identifier"] = data["customer_identifier"]
    return out


def normalize_time(value: Any, where: str) -> str:
    """An ISO 8601 instant as fixed-width UTC text, so that text order is time order."""
    parsed = parse_time(value, where)
    return utc_text(parsed)


def parse_time(value: Any, where: str) -> datetime:
    if isinstance(value, str):
        text = value.strip()
        if "T" in text and " " in text:  # a "+00:00" offset whose "+" became a space in a URL
            text = text.replace(" ", "+")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = None
        if parsed is not None:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ValidationFailed(
        f"{where.lstrip('/')} must be an ISO 8601 date-time, e.g. 2025-01-01T00:00:00Z.",
        errors=[FieldError(where, "format", "an ISO 8601 date-time")],
    )


def render_log(record: Record, organization_id: str) -> dict[str, Any]:
    """A stored request log in the vendor's flat shape."""
    data = record.data
    raw_usage = data.get("usage")
    usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
    out: dict[str, Any] = {
        "id": record.id,
        "unique_id": record.id,
        "organization_id": organization_id,
        **data,
    }
    # The vendor answers input/output as text, with the structure of message-style log types
    # also under their older names (prompt_messages: a list, completion_message: an object).
    for name, legacy, kind in (
        ("input", "prompt_messages", list),
        ("output", "completion_message", dict),
    ):
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            out[name] = orjson.dumps(value).decode()
            if data.get("log_type") in MESSAGE_TYPES and isinstance(value, kind):
                out[legacy] = value
    for name in USAGE_FIELDS:
        out[name] = usage.get(name)
    out.setdefault("timestamp", utc_text(record.created_at))
    out["updated_at"] = record.updated_at
    return out


def field_path(name: str) -> tuple[str, ...]:
    if name in ("id", "unique_id"):
        return ("id",)
    if name in USAGE_FIELDS:
        return ("data", "usage", name)
    if name.startswith("metadata__") and len(name) > len("metadata__"):
        return ("data", "metadata", *name[len("metadata__") :].split("__"))
    if name in FILTER_FIELDS:
        return ("data", name)
    raise InvalidFilter(
        f"Unknown filter field {name!r}; valid: {', '.join(FILTER_FIELDS)} or metadata__<key>.",
        errors=[FieldError(f"/filters/{name}", "unknown_field", "not filterable")],
        extra={"valid": list(FILTER_FIELDS)},
    )


def parse_filters(raw: Any) -> list[Filter]:
    """The body's `filters` object as core conditions (ANDed by the caller)."""
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise InvalidFilter(
            'filters must be an object: {"<field>": {"operator": "", "value": [...]}}.',
            errors=[FieldError("/filters", "type", "an object")],
        )
    out: list[Filter] = []
    for name, spec in raw.items():
        where = f"/filters/{name}"
        path = field_path(name)
        if not isinstance(spec, dict) or set(spec) - {"operator", "value"} or "value" not in spec:
            raise InvalidFilter(
                f'Filter {name!r} must be {{"operator": "<op>", "value": [...]}}.',
                errors=[FieldError(where, "invalid", "operator and value")],
            )
        op = spec.get("operator", "")
        if op not in OPERATORS:
            raise InvalidFilter(
                f"Unknown operator {op!r} on {name!r}; valid: "
                f"{', '.join(repr(o) for o in OPERATORS)}.",
                errors=[FieldError(f"{where}/operator", "unknown_operator", "see the list")],
                extra={"valid": list(OPERATORS)},
            )
        out.append(_condition(name, path, op or "eq", spec["value"], where))
    return out


def _condition(name: str, path: tuple[str, ...], op: str, value: Any, where: str) -> Filter:
    values = value if isinstance(value, list) else [value]
    if op == "in":
        return Condition(path, "in", [_filter_value(name, v, where) for v in values])
    if len(values) != 1:
        raise InvalidFilter(
            f"Filter {name!r} with operator {op!r} takes one value, got {len(values)}.",
            errors=[FieldError(f"{where}/value", "invalid", "a list of one value")],
        )
    if op == "isnull":
        if not isinstance(values[0], bool):
            raise InvalidFilter(
                f"isnull on {name!r} takes true or false.",
                errors=[FieldError(f"{where}/value", "type", "[true] or [false]")],
            )
        return Condition(path, "isnull", values[0])
    return Condition(path, op, _filter_value(name, values[0], where))


def _filter_value(name: str, value: Any, where: str) -> Any:
    if name in ("timestamp", "start_time") and isinstance(value, str):
        return normalize_time(value, f"{where}/value")
    return value


def parse_sort(raw: str | None) -> tuple[SortKey, ...]:
    text = raw or "-id"
    name = text.lstrip("-")
    if name not in SORTS or text.count("-") > 1:
        raise InvalidSort(
            f"Cannot sort by {text!r}; valid: {', '.join(SORTS)} (prefix - for descending).",
            extra={"valid": list(SORTS)},
        )
    return (SortKey(field_path(name), text.startswith("-")),)


def conjoin_all(items: list[Filter]) -> Filter | None:
    if not items:
        return None
    return items[0] if len(items) == 1 else And(tuple(items))
