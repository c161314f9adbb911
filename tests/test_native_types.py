"""/v1/types: create, list, get, change, delete, and their bad inputs."""

from __future__ import annotations

from tests.conftest import CONTACT_SCHEMA, Api


def test_create_get_list_delete(api: Api) -> None:
    created = api.make_type("contact", name="Contact", description="people")
    assert created["version"] == 1 and created["key"] == "contact"
    got = api.get("/v1/types/contact").json()
    assert got["schema"] == CONTACT_SCHEMA and got["name"] == "Contact"
    assert [t["key"] for t in api.get("/v1/types").json()["types"]] == ["contact"]
    assert api.delete("/v1/types/contact").status_code == 204
    assert api.get("/v1/types/contact").status_code == 404


def test_duplicate_type_is_409(api: Api) -> None:
    api.make_type("contact")
    r = api.post("/v1/types", json={"key": "contact", "schema": {"type": "object"}})
    assert r.status_code == 409 and r.json()["code"] == "type_exists"


def test_invalid_schema_names_the_problem(api: Api) -> None:
    r = api.post(
        "/v1/types",
        json={"key": "bad", "schema": {"type": "object", "properties": {"a": {"type": "strng"}}}},
    )
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "invalid_schema" and body["errors"][0]["path"] == "/schema"
    r = api.post(
        "/v1/types",
        json={"key": "bad", "schema": {"type": "object", "properties": {"a": {"pattern": "("}}}},
    )
    assert r.status_code == 400 and "regex" in r.json()["detail"]


def test_bad_keys_and_members(api: Api) -> None:
    for key in ("Bad", "1abc", "a-b", "", "x" * 70):
        r = api.post("/v1/types", json={"key": key})
        assert r.status_code == 400, key
        assert r.json()["errors"][0]["path"] == "/key"
    r = api.post("/v1/types", json={"key": "ok", "colour": "red"})
    assert r.status_code == 400 and r.json()["code"] == "unknown_member"
    assert "schema" in r.json()["detail"]  # the valid choices are listed


def test_naming_rules_checked(api: Api) -> None:
    r = api.post("/v1/types", json={"key": "a", "naming": {"mode": "sequential"}})
    assert r.status_code == 400 and "autonumber" in r.json()["errors"][0]["message"]
    r = api.post("/v1/types", json={"key": "a", "naming": {"mode": "unique", "prefix": "X"}})
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "/naming/prefix"
    r = api.post("/v1/types", json={"key": "a", "naming": {"mode": "autonumber", "padding": 12}})
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "/naming/padding"
    r = api.post(
        "/v1/types", json={"key": "a", "naming": {"mode": "autonumber", "prefix": "x" * 31}}
    )
    assert r.status_code == 400


def test_schema_change_bumps_version(api: Api) -> None:
    api.make_type("contact")
    r = api.patch("/v1/types/contact", json={"description": "only text"})
    assert r.status_code == 200 and r.json()["version"] == 1
    schema = {**CONTACT_SCHEMA, "required": ["email"]}
    r = api.patch("/v1/types/contact", json={"schema": schema})
    assert r.status_code == 200 and r.json()["version"] == 2


def test_schema_change_refused_when_records_break(api: Api) -> None:
    api.make_type("contact")
    ids = [
        api.post("/v1/types/contact/records", json={"record": {"data": d}}).json()["records"][0][
            "id"
        ]
        for d in ({"email": "a@x"}, {"age": 3}, {"age": 4})
    ]
    schema = {**CONTACT_SCHEMA, "required": ["email"]}
    r = api.patch("/v1/types/contact", json={"schema": schema})
    assert r.status_code == 409
    body = r.json()
    assert body["code"] == "schema_conflict" and body["failing_count"] == 2
    assert set(body["failing_ids"]) == set(ids[1:])
    assert api.get("/v1/types/contact").json()["version"] == 1


def test_key_cannot_change(api: Api) -> None:
    api.make_type("contact")
    r = api.patch("/v1/types/contact", json={"key": "other"})
    assert r.status_code == 400


def test_naming_frozen_once_records_exist(api: Api) -> None:
    api.make_type("contact", naming={"mode": "unique"})
    r = api.patch("/v1/types/contact", json={"naming": {"mode": "autonumber"}})
    assert r.status_code == 200
    api.post("/v1/types/contact/records", json={"record": {"data": {}}})
    r = api.patch("/v1/types/contact", json={"naming": {"mode": "unique"}})
    assert r.status_code == 409 and r.json()["code"] == "naming_frozen"


def test_adding_unique_key_checks_existing_records(api: Api) -> None:
    api.make_type("contact")
    for _ in range(2):
        api.post("/v1/types/contact/records", json={"record": {"data": {"email": "same@x"}}})
    r = api.patch(
        "/v1/types/contact", json={"unique_keys": [{"name": "by_email", "fields": ["data.email"]}]}
    )
    assert r.status_code == 409 and r.json()["code"] == "unique_violation"


def test_types_scopes(api: Api) -> None:
    reader = api.new_key("types:read")
    assert api.get("/v1/types", key=reader).status_code == 200
    r = api.post("/v1/types", key=reader, json={"key": "x"})
    assert r.status_code == 403 and "types:write" in r.json()["detail"]


def test_types_are_per_project(api: Api) -> None:
    api.make_type("contact")
    other = api.new_key("admin", project="p2")
    assert api.get("/v1/types/contact", key=other).status_code == 404
    assert api.get("/v1/types", key=other).json()["types"] == []
