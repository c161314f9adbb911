"""Zendesk face: custom objects, fields (translated to JSON Schema), the name field, limits."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api
from tests.zendesk_helpers import CO, create, make_car, make_field, make_object, set_name


def native_schema(api: Api, key: str) -> dict[str, Any]:
    response = api.get(f"/v1/types/{key}")
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()["schema"]
    return schema


def test_object_lifecycle(api: Api) -> None:
    made = make_object(api, "apartment", description="Flats")
    assert made["key"] == "apartment" and made["title_pluralized"] == "Apartments"
    assert made["url"].endswith("/api/v2/custom_objects/apartment")
    listed = api.get(CO).json()["custom_objects"]
    assert [o["key"] for o in listed] == ["apartment"]
    changed = api.patch(
        f"{CO}/apartment", json={"custom_object": {"title": "Flat", "include_in_list_view": False}}
    )
    assert changed.status_code == 200
    shown = api.get(f"{CO}/apartment").json()["custom_object"]
    assert shown["title"] == "Flat" and shown["include_in_list_view"] is False
    assert shown["title_pluralized"] == "Apartments" and shown["description"] == "Flats"
    # An empty PATCH (python-zendesk sends no body) answers the object unchanged.
    assert api.patch(f"{CO}/apartment").json()["custom_object"]["title"] == "Flat"
    assert api.delete(f"{CO}/apartment").status_code == 204
    missing = api.get(f"{CO}/apartment")
    assert missing.status_code == 404
    assert missing.json() == {"error": "RecordNotFound", "description": "Not found"}


def test_object_key_is_immutable_and_required_members(api: Api) -> None:
    make_object(api, "car")
    response = api.patch(f"{CO}/car", json={"custom_object": {"key": "boat"}})
    assert response.status_code == 422
    assert response.json()["error"] == "RecordInvalid"
    assert "key" in response.json()["details"]
    bad = api.post(CO, json={"custom_object": {"key": "boat", "title": "Boat"}})
    assert bad.status_code == 422
    assert set(bad.json()["details"]) == {"title_pluralized"}
    unknown = api.post(
        CO, json={"custom_object": {"key": "b", "title": "B", "title_pluralized": "Bs", "x": 1}}
    )
    assert unknown.status_code == 422 and "x" in unknown.json()["details"]
    clash = api.post(
        CO, json={"custom_object": {"key": "car", "title": "C", "title_pluralized": "Cs"}}
    )
    assert clash.status_code == 422
    assert clash.json()["details"]["base"][0]["error"] == "DuplicateValue"


FIELD_CASES = [
    ("text", {}, {"type": ["string", "null"]}),
    ("textarea", {}, {"type": ["string", "null"]}),
    ("checkbox", {}, {"type": ["boolean", "null"]}),
    ("date", {}, {"type": ["string", "null"], "format": "date"}),
    ("integer", {}, {"type": ["integer", "null"]}),
    ("decimal", {}, {"type": ["number", "null"]}),
    (
        "regexp",
        {"regexp_for_validation": "\\A[0-9]+\\z"},
        {"type": ["string", "null"], "pattern": "^[0-9]+$"},
    ),
    (
        "dropdown",
        {"custom_field_options": [{"name": "A", "value": "a"}]},
        {"type": ["string", "null"], "enum": ["a", None]},
    ),
    (
        "lookup",
        {"relationship_target_type": "zen:user"},
        {"type": ["string", "integer", "null"]},
    ),
    (
        "multiselect",
        {"custom_field_options": [{"name": "A", "value": "a"}, {"name": "B", "value": "b"}]},
        {
            "type": ["array", "null"],
            "items": {"type": "string", "enum": ["a", "b"]},
            "uniqueItems": True,
        },
    ),
]


@pytest.mark.parametrize(("kind", "extra", "schema"), FIELD_CASES)
def test_each_field_type_becomes_json_schema(
    api: Api, kind: str, extra: dict[str, Any], schema: dict[str, Any]
) -> None:
    make_object(api, "thing")
    field = make_field(api, "thing", "f1", kind, **extra)
    assert field["type"] == kind and isinstance(field["id"], int)
    assert native_schema(api, "thing")["properties"]["f1"] == schema


def test_field_values_are_checked_by_the_schema(api: Api) -> None:
    make_object(api, "thing")
    make_field(api, "thing", "when", "date")
    make_field(api, "thing", "code", "regexp", regexp_for_validation="\\A[0-9]+\\z")
    make_field(
        api, "thing", "tags", "multiselect", custom_field_options=[{"name": "A", "value": "a"}]
    )
    ok = create(
        api,
        "thing",
        name="n",
        custom_object_fields={"when": "2024-02-29", "code": "12", "tags": ["a"]},
    )
    assert ok["custom_object_fields"] == {"when": "2024-02-29", "code": "12", "tags": ["a"]}
    bad = api.post(
        f"{CO}/thing/records",
        json={
            "custom_object_record": {
                "name": "n",
                "custom_object_fields": {"when": "soon", "code": "x1", "tags": ["z"]},
            }
        },
    )
    assert bad.status_code == 422
    assert set(bad.json()["details"]) == {
        "custom_object_fields.when",
        "custom_object_fields.code",
        "custom_object_fields.tags.0",
    }


def test_field_problems_are_422_with_details(api: Api) -> None:
    make_object(api, "thing")
    cases = [
        ({"key": "f", "type": "colour", "title": "F"}, "type"),
        ({"key": "f", "type": "dropdown", "title": "F"}, "custom_field_options"),
        ({"key": "f", "type": "regexp", "title": "F"}, "regexp_for_validation"),
        ({"key": "9", "title": "F"}, "key"),
        ({"key": "f"}, "title"),
        ({"key": "f", "title": "F", "colour": 1}, "colour"),
    ]
    for body, member in cases:
        response = api.post(f"{CO}/thing/fields", json={"custom_object_field": body})
        assert response.status_code == 422, body
        assert member in response.json()["details"], response.json()
    make_field(api, "thing", "f")
    again = api.post(f"{CO}/thing/fields", json={"custom_object_field": {"key": "f", "title": "F"}})
    assert (
        again.status_code == 422 and again.json()["details"]["key"][0]["error"] == "DuplicateValue"
    )


def test_fields_list_show_update_reorder_delete(api: Api) -> None:
    make_car(api)
    plain = api.get(f"{CO}/car/fields").json()["custom_object_fields"]
    assert [f["key"] for f in plain] == ["make", "model", "year", "color"]
    full = api.get(f"{CO}/car/fields?include_standard_fields=true&page[size]=100")
    keys = [f["key"] for f in full.json()["custom_object_fields"]]
    assert keys[:2] == ["standard::name", "standard::external_id"]
    make = plain[0]
    by_id = api.get(f"{CO}/car/fields/{make['id']}").json()["custom_object_field"]
    assert by_id["key"] == "make"
    changed = api.patch(f"{CO}/car/fields/make", json={"custom_object_field": {"title": "Brand"}})
    assert changed.json()["custom_object_field"]["title"] == "Brand"
    fixed = api.patch(f"{CO}/car/fields/make", json={"custom_object_field": {"type": "integer"}})
    assert fixed.status_code == 422 and "type" in fixed.json()["details"]
    ids = [str(f["id"]) for f in reversed(plain)]
    reordered = api.put(f"{CO}/car/fields/reorder", json={"custom_object_field_ids": ids})
    assert reordered.status_code == 200
    after = api.get(f"{CO}/car/fields").json()["custom_object_fields"]
    assert [f["key"] for f in after] == ["color", "year", "model", "make"]
    assert (
        api.put(f"{CO}/car/fields/reorder", json={"custom_object_field_ids": ["999"]}).status_code
        == 422
    )
    assert api.delete(f"{CO}/car/fields/model").status_code == 204
    assert "model" not in native_schema(api, "car")["properties"]
    assert api.get(f"{CO}/car/fields/model").status_code == 404
    std = api.delete(f"{CO}/car/fields/standard::name")
    assert std.status_code == 422
    assert api.get(f"{CO}/car/limits/field_limit").json() == {"count": 3, "limit": 100}


def test_dropdown_options_update(api: Api) -> None:
    make_car(api)
    options = [{"id": None, "name": "Green", "value": "green"}]
    response = api.patch(
        f"{CO}/car/fields/color", json={"custom_object_field": {"custom_field_options": options}}
    )
    assert response.status_code == 200, response.text
    got = response.json()["custom_object_field"]["custom_field_options"]
    assert [o["value"] for o in got] == ["green"] and isinstance(got[0]["id"], int)
    assert native_schema(api, "car")["properties"]["color"]["enum"] == ["green", None]


def test_autonumbered_names(api: Api) -> None:
    make_car(api)
    field = set_name(
        api,
        "car",
        autoincrement_enabled=True,
        autoincrement_prefix="Order # ",
        autoincrement_padding=5,
        autoincrement_next_sequence=7,
    )
    assert field["properties"]["autoincrement_next_sequence"] == 7
    first = create(api, custom_object_fields={"make": "Tesla"})
    second = create(api)
    assert [first["name"], second["name"]] == ["Order # 00007", "Order # 00008"]
    refused = api.post(f"{CO}/car/records", json={"custom_object_record": {"name": "mine"}})
    assert refused.status_code == 422 and "name" in refused.json()["details"]
    shown = api.get(f"{CO}/car/fields/standard::name").json()["custom_object_field"]
    assert shown["properties"]["autoincrement_next_sequence"] == 9
    # The properties are frozen once records exist; echoing them back unchanged is fine.
    same = api.patch(
        f"{CO}/car/fields/standard::name",
        json={"custom_object_field": {"properties": shown["properties"], "title": "Order"}},
    )
    assert same.status_code == 200, same.text
    frozen = api.patch(
        f"{CO}/car/fields/standard::name",
        json={"custom_object_field": {"properties": {"autoincrement_prefix": "X"}}},
    )
    assert frozen.status_code == 422 and frozen.json()["error"] == "RecordInvalid"


def test_unique_names(api: Api) -> None:
    make_car(api)
    both = api.patch(
        f"{CO}/car/fields/standard::name",
        json={
            "custom_object_field": {
                "properties": {"autoincrement_enabled": True, "is_unique": True}
            }
        },
    )
    assert both.status_code == 422 and "properties.is_unique" in both.json()["details"]
    set_name(api, "car", is_unique=True)
    create(api, name="Herbie")
    again = api.post(f"{CO}/car/records", json={"custom_object_record": {"name": "Herbie"}})
    assert again.status_code == 422
    assert again.json()["details"]["name"][0]["error"] == "DuplicateValue"


def test_limits(api: Api) -> None:
    make_car(api)
    make_object(api, "boat")
    create(api, name="a")
    create(api, name="b")
    assert api.get(f"{CO}/limits/object_limit").json() == {"count": 2, "limit": 50}
    assert api.get(f"{CO}/limits/record_limit").json() == {"count": 2, "limit": 1_000_000}
