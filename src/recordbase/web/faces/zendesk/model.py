"""Zendesk custom objects and fields <-> recordbase record types (pure translation, no I/O).

A custom object is a record type: `key` is the type key, `title` its name. Each custom field
becomes one property of the type's JSON Schema (`field_schema`), and the name field's
autonumbering / uniqueness becomes the type's `naming`. What JSON Schema cannot hold (field ids,
titles, positions, options, `active`, the object's plural title...) is kept in the type's
persisted `extra` under "zendesk" (`ZendeskMeta`). Problems are FieldErrors whose paths name
the Zendesk attribute (`/key`, `/custom_field_options/0/value`).
"""

from __future__ import annotations

import re
from copy import deepcopy
from typing import Any, Final

from recordbase.core.types import Naming
from recordbase.errors import FieldError, ValidationFailed

FIELD_TYPES: Final = (
    "text",
    "textarea",
    "checkbox",
    "date",
    "integer",
    "decimal",
    "regexp",
    "dropdown",
    "lookup",
    "multiselect",
)
# Text-like types the GET search (query=) looks into, as Zendesk's does.
TEXT_TYPES: Final = ("text", "textarea", "regexp")
FIELD_MEMBERS: Final = (
    "key",
    "type",
    "title",
    "description",
    "active",
    "position",
    "required",
    "custom_field_options",
    "regexp_for_validation",
    "tag",
    "relationship_target_type",
    "relationship_filter",
    "properties",
)
FIELD_ECHO: Final = (
    "id",
    "url",
    "created_at",
    "updated_at",
    "raw_title",
    "raw_description",
    "system",
)
NAME_PROPERTIES: Final = (
    "autoincrement_enabled",
    "autoincrement_prefix",
    "autoincrement_padding",
    "autoincrement_next_sequence",
    "is_unique",
)
STANDARD: Final = {
    "standard::name": ("name", "Name"),
    "standard::external_id": ("external_id", "External ID"),
}
FIELD_LIMIT: Final = 100
FIELD_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def invalid(errors: list[FieldError]) -> None:
    if errors:
        raise ValidationFailed(f"{errors[0].path.lstrip('/')}: {errors[0].message}", errors=errors)


class ZendeskMeta:
    """The Zendesk metadata of one object, read from and written back to `RecordType.extra`."""

    def __init__(self, extra: dict[str, Any]) -> None:
        raw = deepcopy(extra.get("zendesk") or {})
        self.object: dict[str, Any] = raw.get("object", {})
        self.fields: list[dict[str, Any]] = raw.get("fields", [])
        self.standard: dict[str, dict[str, Any]] = raw.get("standard", {})
        self.next_id: int = raw.get("next_id", 1)
        self.base = extra

    def extra(self) -> dict[str, Any]:
        meta = {
            "object": self.object,
            "fields": self.fields,
            "standard": self.standard,
            "next_id": self.next_id,
        }
        return {**self.base, "zendesk": meta}

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def field(self, key_or_id: str) -> dict[str, Any] | None:
        for f in self.fields:
            if f["key"] == key_or_id or str(f["id"]) == key_or_id:
                return f
        return None

    def standard_field(self, key_or_id: str, now: str) -> dict[str, Any] | None:
        """standard::name / standard::external_id (made on first use, with stable ids)."""
        self.ensure_standard(now)
        for key, f in self.standard.items():
            if key_or_id in (key, str(f["id"])):
                return f
        return None

    def ensure_standard(self, now: str) -> None:
        for position, (key, (_member, title)) in enumerate(STANDARD.items()):
            if key not in self.standard:
                self.standard[key] = {
                    "id": self.new_id(),
                    "key": key,
                    "type": "text",
                    "title": title,
                    "description": title,
                    "position": position,
                    "active": True,
                    "required": key == "standard::name",
                    "created_at": now,
                    "updated_at": now,
                }

    def schema(self) -> dict[str, Any]:
        props = {f["key"]: field_schema(f) for f in self.fields}
        return {"type": "object", "properties": props}

    def text_keys(self) -> list[str]:
        return [f["key"] for f in self.fields if f["type"] in TEXT_TYPES]


def field_schema(f: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of one field's value (null clears a value, so it is always allowed)."""
    kind = f["type"]
    if kind == "checkbox":
        return {"type": ["boolean", "null"]}
    if kind == "date":
        return {"type": ["string", "null"], "format": "date"}
    if kind == "integer":
        return {"type": ["integer", "null"]}
    if kind == "decimal":
        return {"type": ["number", "null"]}
    if kind == "lookup":
        return {"type": ["string", "integer", "null"]}
    values = [o["value"] for o in f.get("custom_field_options") or []]
    if kind == "dropdown":
        return {"type": ["string", "null"], "enum": [*values, None]}
    if kind == "multiselect":
        return {
            "type": ["array", "null"],
            "items": {"type": "string", "enum": values},
            "uniqueItems": True,
        }
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if kind == "regexp" and f.get("regexp_for_validation"):
        schema["pattern"] = ecma_pattern(f["regexp_for_validation"])
    return schema


def ecma_pattern(pattern: str) -> str:
    """Zendesk's patterns are Ruby regexps; JSON Schema's are ECMA 262 (\\A and \\z differ)."""
    return pattern.replace("\\A", "^").replace("\\z", "$").replace("\\Z", "$")


# fields: checking input --------------------------------------------------------------------


def check_field(body: dict[str, Any], meta: ZendeskMeta, *, creating: bool) -> list[FieldError]:
    """Problems of a field create (or update, where key and type are fixed)."""
    errors: list[FieldError] = []
    for member in body:
        if member not in FIELD_MEMBERS and member not in FIELD_ECHO:
            errors.append(
                FieldError(f"/{member}", "unknown_member", f"valid: {', '.join(FIELD_MEMBERS)}")
            )
    if creating:
        key = body.get("key")
        if not isinstance(key, str) or not FIELD_KEY_RE.match(key):
            errors.append(
                FieldError("/key", "invalid", "letters, digits and _, starting with a letter")
            )
        elif meta.field(key) is not None:
            errors.append(FieldError("/key", "duplicate", f"a field {key!r} already exists"))
        if body.get("type", "text") not in FIELD_TYPES:
            errors.append(FieldError("/type", "invalid", f"one of {', '.join(FIELD_TYPES)}"))
        if not isinstance(body.get("title"), str) or not body["title"].strip():
            errors.append(FieldError("/title", "required", "a title is required"))
    for member in ("title", "description", "tag", "relationship_target_type"):
        if member in body and body[member] is not None and not isinstance(body[member], str):
            errors.append(FieldError(f"/{member}", "type", "expected a string"))
    for member in ("active", "required"):
        if member in body and not isinstance(body[member], bool):
            errors.append(FieldError(f"/{member}", "type", "expected true or false"))
    if "position" in body and not _is_int(body["position"]):
        errors.append(FieldError("/position", "type", "expected an integer"))
    if "relationship_filter" in body and not isinstance(body["relationship_filter"], dict):
        errors.append(FieldError("/relationship_filter", "type", "expected an object"))
    return errors


def check_kind(f: dict[str, Any]) -> list[FieldError]:
    """Type-specific rules, on the field as it would be stored."""
    errors: list[FieldError] = []
    kind = f["type"]
    if kind in ("dropdown", "multiselect"):
        errors.extend(_check_options(f.get("custom_field_options")))
    if kind == "regexp":
        pattern = f.get("regexp_for_validation")
        if not isinstance(pattern, str) or not pattern:
            errors.append(FieldError("/regexp_for_validation", "required", "a pattern"))
        else:
            try:
                re.compile(ecma_pattern(pattern))
            except re.error as exc:
                errors.append(FieldError("/regexp_for_validation", "invalid", str(exc)))
    if kind == "lookup" and not isinstance(f.get("relationship_target_type"), str):
        errors.append(
            FieldError(
                "/relationship_target_type", "required", 'e.g. "zen:user", "zen:custom_object:car"'
            )
        )
    return errors


def _check_options(options: Any) -> list[FieldError]:
    if not isinstance(options, list) or not options:
        return [FieldError("/custom_field_options", "required", "a list of {name, value}")]
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, option in enumerate(options):
        where = f"/custom_field_options/{i}"
        if not isinstance(option, dict):
            errors.append(FieldError(where, "type", "expected {name, value}"))
            continue
        for member in ("name", "value"):
            if not isinstance(option.get(member), str) or not option[member].strip():
                errors.append(FieldError(f"{where}/{member}", "required", "a non-empty string"))
        if option.get("value") in seen:
            errors.append(FieldError(f"{where}/value", "duplicate", "values must differ"))
        seen.add(str(option.get("value")))
    return errors


def stored_options(options: list[dict[str, Any]], meta: ZendeskMeta) -> list[dict[str, Any]]:
    """Options as kept: each with an id (new ones get one), a position and its raw name."""
    out = []
    for position, option in enumerate(options):
        oid = option.get("id")
        out.append(
            {
                "id": oid if _is_int(oid) else meta.new_id(),
                "name": option["name"],
                "raw_name": option["name"],
                "value": option["value"],
                "position": position,
            }
        )
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# the name field's properties <-> naming ---------------------------------------------------


def name_properties(naming: Naming | None, next_number: int) -> dict[str, Any]:
    auto = naming is not None and naming.mode == "autonumber"
    return {
        "autoincrement_enabled": auto,
        "autoincrement_prefix": naming.prefix if naming and auto else "",
        "autoincrement_padding": naming.padding if naming and auto else 0,
        "autoincrement_next_sequence": next_number if auto else 1,
        "is_unique": naming is not None and naming.mode == "unique",
    }


def naming_from_properties(
    given: Any, current: Naming | None, next_number: int
) -> dict[str, Any] | None:
    """The core `naming` for new name-field properties (merged over the current ones)."""
    if not isinstance(given, dict):
        invalid([FieldError("/properties", "type", "expected an object")])
    errors = [
        FieldError(f"/properties/{k}", "unknown_member", f"valid: {', '.join(NAME_PROPERTIES)}")
        for k in given
        if k not in NAME_PROPERTIES
    ]
    props = {**name_properties(current, next_number), **given}
    for k in ("autoincrement_enabled", "is_unique"):
        if not isinstance(props[k], bool):
            errors.append(FieldError(f"/properties/{k}", "type", "expected true or false"))
    prefix, padding, nxt = (
        props["autoincrement_prefix"],
        props["autoincrement_padding"],
        props["autoincrement_next_sequence"],
    )
    if not isinstance(prefix, str) or len(prefix) > 30:
        errors.append(FieldError("/properties/autoincrement_prefix", "invalid", "<= 30 characters"))
    if not _is_int(padding) or not 0 <= padding <= 9:
        errors.append(FieldError("/properties/autoincrement_padding", "invalid", "0 to 9"))
    if not _is_int(nxt) or nxt < 1:
        errors.append(FieldError("/properties/autoincrement_next_sequence", "invalid", ">= 1"))
    if props["autoincrement_enabled"] is True and props["is_unique"] is True:
        errors.append(
            FieldError("/properties/is_unique", "invalid", "can't be used with autonumbering")
        )
    invalid(errors)
    if props["is_unique"]:
        return {"mode": "unique"}
    if not props["autoincrement_enabled"]:
        return None
    if current is not None and current.mode == "autonumber" and nxt == next_number:
        nxt = current.next  # the live counter was echoed back: not a change of the rule
        if (prefix, padding) == (current.prefix, current.padding):
            return current.as_dict()
    return {"mode": "autonumber", "prefix": prefix, "padding": padding, "next": nxt}
