"""Zendesk custom object records <-> core records.

A record's `custom_object_fields` are the core record's `data`; `name` and `external_id` map
one to one; `created_by_user_id` / `updated_by_user_id` show the core's `created_by` /
`updated_by` (the Basic-auth email, or `key:<key id>` for a Bearer token). Input is checked
here for shape and for Zendesk's own rules (unknown fields, required fields, the name being
required unless autonumbered); the values themselves are checked by the type's JSON Schema in
the core.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request

from recordbase.core.records import UNSET, Record, RecordInput
from recordbase.core.types import RecordType
from recordbase.errors import FieldError
from recordbase.web.faces.zendesk.common import api_url
from recordbase.web.faces.zendesk.model import ZendeskMeta

RECORD_MEMBERS: Final = ("name", "external_id", "custom_object_fields")
# Read-only members a client may send back as it got them (mercury-orm sends `"id": null`).
RECORD_ECHO: Final = (
    "id",
    "url",
    "custom_object_key",
    "created_at",
    "updated_at",
    "created_by_user_id",
    "updated_by_user_id",
    "photo",
)
_MAX = 255


def render_record(request: Request, rtype: RecordType, record: Record) -> dict[str, Any]:
    declared = [f["key"] for f in ZendeskMeta(rtype.extra).fields]
    if "zendesk" in rtype.extra:  # made here: its fields are declared, deleted ones hidden
        fields = {key: record.data.get(key) for key in declared}
    else:  # a type made through another face: its data as it is
        fields = dict(record.data)
    return {
        "id": record.id,
        # Zendesk clients require a string name; a record made elsewhere may have none.
        "name": record.name or "",
        "external_id": record.external_id,
        "custom_object_key": rtype.key,
        "custom_object_fields": fields,
        "created_by_user_id": record.created_by or "",
        "updated_by_user_id": record.updated_by or "",
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "url": api_url(request, f"/api/v2/custom_objects/{rtype.key}/records/{record.id}"),
    }


def _text(value: Any, where: str, errors: list[FieldError]) -> str | None:
    """A name or external id: "" and null mean none."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > _MAX:
        errors.append(FieldError(where, "type", f"expected a string of at most {_MAX} characters"))
        return None
    return value


def parse_record(
    body: Any, rtype: RecordType, where: str, errors: list[FieldError], *, creating: bool
) -> RecordInput:
    """One `custom_object_record` as a RecordInput; problems go to `errors`."""
    item = RecordInput()
    if not isinstance(body, dict):
        errors.append(FieldError(where or "/", "type", "expected a record object"))
        return item
    for member in body:
        if member not in RECORD_MEMBERS and member not in RECORD_ECHO:
            errors.append(
                FieldError(
                    f"{where}/{member}", "unknown_member", f"valid: {', '.join(RECORD_MEMBERS)}"
                )
            )
    fields = body.get("custom_object_fields", UNSET)
    if "name" in body:
        item.name = _text(body["name"], f"{where}/name", errors)
    if "external_id" in body:
        item.external_id = _text(body["external_id"], f"{where}/external_id", errors)
    if fields is not UNSET:
        item.data = _fields(fields, rtype, item, f"{where}/custom_object_fields", errors)
    if creating:
        errors.extend(_creation_rules(item, rtype, where))
    return item


def _fields(
    fields: Any, rtype: RecordType, item: RecordInput, where: str, errors: list[FieldError]
) -> dict[str, Any]:
    if fields is None:
        return {}
    if not isinstance(fields, dict):
        errors.append(FieldError(where, "type", "expected an object of field values"))
        return {}
    meta = ZendeskMeta(rtype.extra)
    known = {f["key"] for f in meta.fields}
    data = dict(fields)
    # Clients put standard fields here too: Zendesk's own bulk example sends external_id
    # inside custom_object_fields, and mercury-orm repeats the name there.
    if "external_id" in data and "external_id" not in known:
        value = data.pop("external_id")
        if item.external_id is UNSET:
            item.external_id = _text(value, f"{where}/external_id", errors)
    if "name" in data and "name" not in known:
        data.pop("name")
    if "zendesk" in rtype.extra:  # an object made through this face: its fields are declared
        for key in data:
            if key not in known:
                errors.append(
                    FieldError(
                        f"{where}/{key}",
                        "unknown_member",
                        f"no field {key!r}; fields: {', '.join(sorted(known)) or 'none'}",
                    )
                )
    return data


def _creation_rules(item: RecordInput, rtype: RecordType, where: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if rtype.naming is None and item.name in (UNSET, None):
        errors.append(FieldError(f"{where}/name", "required", "Name can't be blank"))
    data = item.data if isinstance(item.data, dict) else {}
    for f in ZendeskMeta(rtype.extra).fields:
        if f.get("required") and f.get("active", True) and data.get(f["key"]) in (None, "", []):
            errors.append(
                FieldError(
                    f"{where}/custom_object_fields/{f['key']}",
                    "required",
                    f"{f['title']} is required",
                )
            )
    return errors
