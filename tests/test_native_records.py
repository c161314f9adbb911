"""/v1 records: create, read, patch, replace, delete, upsert, and their bad inputs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api

R = "/v1/types/contact/records"


@pytest.fixture
def contacts(api: Api) -> Api:
    api.make_type("contact", unique_keys=[{"name": "by_email", "fields": ["data.email"]}])
    return api


def create(api: Api, *records: dict[str, Any]) -> list[dict[str, Any]]:
    r = api.post(R, json={"records": list(records)})
    assert r.status_code == 201, r.text
    result: list[dict[str, Any]] = r.json()["records"]
    return result


def test_create_and_get(contacts: Api) -> None:
    (rec,) = create(
        contacts, {"data": {"email": "a@x", "age": 3}, "owner": "u1", "external_id": "e1"}
    )
    assert len(rec["id"]) == 26 and rec["version"] == 1 and rec["owner"] == "u1"
    assert rec["created_at"].endswith("Z")
    got = contacts.get(f"{R}/{rec['id']}")
    assert got.status_code == 200 and got.json() == rec
    assert got.headers["etag"] == '"1"'


def test_single_record_form(contacts: Api) -> None:
    r = contacts.post(R, json={"record": {"data": {"email": "a@x"}}})
    assert r.status_code == 201 and len(r.json()["records"]) == 1


def test_batch_is_all_or_nothing_with_paths(contacts: Api) -> None:
    r = contacts.post(
        R,
        json={
            "records": [
                {"data": {"email": "a@x"}},
                {"data": {"email": "b@x"}},
                {"data": {"email": "c@x"}},
                {"data": {"email": 5}},
            ]
        },
    )
    assert r.status_code == 400
    assert r.json()["errors"][0]["path"] == "/records/3/data/email"
    assert contacts.get(R).json()["records"] == []


def test_batch_cap_is_413(make_api: Any, settings: Any) -> None:
    api = make_api(settings.replace(max_batch=5))
    api.make_type("contact")
    r = api.post(R, json={"records": [{"data": {}}] * 6})
    assert r.status_code == 413 and r.json()["code"] == "batch_too_large"


def test_client_ids_and_duplicates(contacts: Api) -> None:
    create(contacts, {"id": "my-id-1", "data": {}})
    r = contacts.post(R, json={"record": {"id": "my-id-1", "data": {}}})
    assert r.status_code == 409 and r.json()["code"] == "duplicate_id"
    r = contacts.post(R, json={"records": [{"id": "x1", "data": {}}, {"id": "x1", "data": {}}]})
    assert r.status_code == 409
    r = contacts.post(R, json={"record": {"id": "bad id!", "data": {}}})
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "/records/0/id"


def test_unique_key_clash_names_key_and_record(contacts: Api) -> None:
    (first,) = create(contacts, {"data": {"email": "a@x"}})
    r = contacts.post(R, json={"record": {"data": {"email": "a@x"}}})
    assert r.status_code == 409
    body = r.json()
    assert body["key"] == "by_email" and body["conflicting_record"] == first["id"]
    r = contacts.post(R, json={"records": [{"data": {"email": "z@x"}}, {"data": {"email": "z@x"}}]})
    assert r.status_code == 409 and "/records/0" in r.json()["detail"]


def test_external_id_unique(contacts: Api) -> None:
    create(contacts, {"external_id": "e1", "data": {}})
    r = contacts.post(R, json={"record": {"external_id": "e1", "data": {}}})
    assert r.status_code == 409 and r.json()["key"] == "external_id"


def test_patch_is_merge_patch(contacts: Api) -> None:
    (rec,) = create(
        contacts,
        {"data": {"email": "a@x", "age": 3, "address": {"city": "Oslo"}}, "description": "d"},
    )
    r = contacts.patch(f"{R}/{rec['id']}", json={"data": {"age": None, "address": {"zip": "1"}}})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["data"] == {"email": "a@x", "address": {"city": "Oslo", "zip": "1"}}
    assert got["version"] == 2 and got["description"] == "d"


def test_put_replaces(contacts: Api) -> None:
    (rec,) = create(contacts, {"data": {"email": "a@x", "age": 3}, "description": "d"})
    r = contacts.put(f"{R}/{rec['id']}", json={"data": {"age": 4}})
    assert r.status_code == 200
    assert r.json()["data"] == {"age": 4} and r.json()["description"] is None


def test_if_match(contacts: Api) -> None:
    (rec,) = create(contacts, {"data": {"age": 1}})
    path = f"{R}/{rec['id']}"
    r = contacts.patch(path, json={"data": {"age": 2}}, headers={"If-Match": '"1"'})
    assert r.status_code == 200
    r = contacts.patch(path, json={"data": {"age": 3}}, headers={"If-Match": '"1"'})
    assert r.status_code == 412 and r.json()["current_version"] == 2
    r = contacts.delete(path, headers={"If-Match": '"1"'})
    assert r.status_code == 412
    r = contacts.patch(path, json={"data": {}}, headers={"If-Match": "abc"})
    assert r.status_code == 400
    assert contacts.delete(path, headers={"If-Match": '"2"'}).status_code == 204
    assert contacts.get(path).status_code == 404


def test_patch_validates_merged_data(contacts: Api) -> None:
    (rec,) = create(contacts, {"data": {"age": 1}})
    r = contacts.patch(f"{R}/{rec['id']}", json={"data": {"age": -1}})
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "/data/age"


def test_upsert_by_external_id(contacts: Api) -> None:
    (rec,) = create(contacts, {"external_id": "e1", "data": {"age": 1}})
    r = contacts.put(
        R + "?on=external_id",
        json={
            "records": [
                {"external_id": "e1", "data": {"age": 2}},
                {"external_id": "e2", "data": {"age": 5}},
            ]
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["updated"] == [rec["id"]] and len(body["created"]) == 1
    assert contacts.get(f"{R}/{rec['id']}").json()["data"] == {"age": 2}


def test_upsert_clash_errors_point_at_the_record_in_the_request(contacts: Api) -> None:
    create(contacts, {"external_id": "x", "data": {"email": "a@x"}})
    create(contacts, {"external_id": "y", "data": {"email": "b@x"}})
    # A new record first, then an update whose unique key another record holds: the path
    # is the update's place in the request (it was its place among the updates).
    r = contacts.put(
        R + "?on=external_id",
        json={
            "records": [
                {"external_id": "n", "data": {"email": "c@x"}},
                {"external_id": "y", "data": {"email": "a@x"}},
            ]
        },
    )
    assert r.status_code == 409, r.text
    assert r.json()["errors"][0]["path"] == "/records/1/data"
    assert contacts.get(R + "?external_id=n").json()["records"] == []  # nothing written


def test_an_update_that_takes_another_records_external_id_is_a_clash(api: Api) -> None:
    api.make_type("contact", naming={"mode": "unique"})
    create(api, {"name": "Ada", "external_id": "e-ada", "data": {}})
    create(api, {"name": "Alan", "external_id": "e-alan", "data": {}})
    r = api.put(
        R + "?on=name",
        json={
            "records": [
                {"name": "Grace", "data": {}},
                {"name": "Alan", "external_id": "e-ada", "data": {}},
            ]
        },
    )
    assert r.status_code == 409 and r.json()["errors"][0]["path"] == "/records/1/external_id"
    (alan,) = api.get(R + "?name=Alan").json()["records"]
    assert api.patch(f"{R}/{alan['id']}", json={"external_id": "e-ada"}).status_code == 409
    kept = api.patch(f"{R}/{alan['id']}", json={"external_id": "e-alan", "data": {"k": 1}})
    assert kept.status_code == 200, kept.text


@pytest.mark.backend("sqlite")  # the SQLite writer's statements
@pytest.mark.parametrize("stored", [True, False])
def test_an_upsert_on_external_id_looks_it_up_once(contacts: Api, stored: bool) -> None:
    """Matched (kept by the record) or not (the lookup just found it free): one lookup."""
    if stored:
        create(contacts, {"external_id": "e1", "data": {"email": "a@x"}})
    statements: list[str] = []
    conn = contacts.app.state.service.store._writer.conn
    conn.set_trace_callback(statements.append)
    try:
        r = contacts.put(
            R + "?on=external_id", json={"records": [{"external_id": "e1", "data": {}}]}
        )
    finally:
        conn.set_trace_callback(None)
    assert r.status_code == 200, r.text
    assert len(r.json()["updated" if stored else "created"]) == 1
    lookups = [s for s in statements if s.startswith("SELECT") and "external_id IN" in s]
    assert len(lookups) == 1, lookups


def test_upsert_by_unique_key_and_name(api: Api) -> None:
    api.make_type(
        "contact",
        naming={"mode": "unique"},
        unique_keys=[{"name": "by_email", "fields": ["data.email"]}],
    )
    create(api, {"name": "Ada", "data": {"email": "a@x", "age": 1}})
    r = api.put(
        R + "?on=by_email", json={"records": [{"name": "Ada", "data": {"email": "a@x", "age": 2}}]}
    )
    assert r.status_code == 200 and len(r.json()["updated"]) == 1
    r = api.put(R + "?on=name", json={"records": [{"name": "Ada", "data": {"age": 7}}]})
    assert r.status_code == 200 and len(r.json()["updated"]) == 1
    r = api.put(R + "?on=colour", json={"records": [{"name": "Ada", "data": {}}]})
    assert r.status_code == 400 and "by_email" in r.json()["detail"]
    r = api.put(R + "?on=external_id", json={"records": [{"data": {}}]})
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "/records/0/external_id"


def test_autonumber_names(api: Api) -> None:
    api.make_type("contact", naming={"mode": "autonumber", "prefix": "C-", "padding": 3, "next": 7})
    recs = create(api, {"data": {}}, {"data": {}})
    assert [r["name"] for r in recs] == ["C-007", "C-008"]
    r = api.post(R, json={"record": {"name": "mine", "data": {}}})
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "/records/0/name"
    assert api.get("/v1/types/contact").json()["naming"]["next"] == 9
    bad = api.post(R, json={"records": [{"data": {}}, {"data": {}, "colour": 1}]})
    assert bad.status_code == 400
    assert create(api, {"data": {}})[0]["name"] == "C-009"  # no gap after a refused batch


def test_unique_names(api: Api) -> None:
    api.make_type("contact", naming={"mode": "unique"})
    create(api, {"name": "Ada", "data": {}})
    r = api.post(R, json={"record": {"name": "Ada", "data": {}}})
    assert r.status_code == 409 and r.json()["key"] == "name"
    r = api.post(R, json={"record": {"data": {}}})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "required"


def test_list_pages_with_cursor(contacts: Api) -> None:
    created = create(contacts, *[{"data": {"age": i}} for i in range(7)])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        body = contacts.get(R, params=params).json()
        seen += [r["id"] for r in body["records"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [r["id"] for r in created]
    r = contacts.get(R, params={"cursor": "garbage"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_cursor"
    good = contacts.get(R, params={"limit": "3"}).json()["next_cursor"]
    r = contacts.get(R, params={"cursor": good, "sort": "-created_at"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_cursor"


def test_page_size_limits(contacts: Api) -> None:
    r = contacts.get(R, params={"limit": "1001"})
    assert r.status_code == 400 and r.json()["code"] == "page_too_large"
    r = contacts.get(R, params={"limit": "zero"})
    assert r.status_code == 400


def test_record_size_limit(make_api: Any, settings: Any) -> None:
    api = make_api(settings.replace(max_record_bytes=100))
    api.make_type("contact")
    r = api.post(R, json={"record": {"data": {"email": "x" * 200}}})
    assert r.status_code == 413 and r.json()["code"] == "record_too_large"


def test_bad_bodies(contacts: Api) -> None:
    h = {"Content-Type": "application/json"}
    r = contacts.post(R, content=b"{not json", headers=h)
    assert r.status_code == 400 and r.json()["code"] == "invalid_json"
    r = contacts.post(R, content=b"", headers=h)
    assert r.status_code == 400
    r = contacts.post(R, content=b'{"records": []}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    r = contacts.post(R, json={"records": [], "extra": 1})
    assert r.status_code == 400 and r.json()["code"] == "unknown_member"
    r = contacts.post(R, json={"records": "no"})
    assert r.status_code == 400
    r = contacts.post(R, json={"records": [{"data": [1]}]})
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "/records/0/data"
    r = contacts.post(R, json={"records": [{"name": 5, "data": {}}]})
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "/records/0/name"
    r = contacts.post(R, json=[1, 2])
    assert r.status_code == 400
    r = contacts.post(R, json={"records": []})
    assert r.status_code == 400


def test_nesting_and_body_limits(make_api: Any, settings: Any) -> None:
    api = make_api(settings.replace(max_depth=8, max_body_bytes=2000))
    api.make_type("contact")
    deep: Any = {}
    for _ in range(10):
        deep = {"a": deep}
    r = api.post(R, json={"record": {"data": deep}})
    assert r.status_code == 400 and r.json()["code"] == "nesting_too_deep"
    r = api.post(R, json={"record": {"data": {"email": "x" * 3000}}})
    assert r.status_code == 413 and r.json()["code"] == "body_too_large"


def test_unknown_params_and_routes(contacts: Api) -> None:
    r = contacts.get(R, params={"colour": "red"})
    assert r.status_code == 400 and r.json()["code"] == "unknown_parameter"
    assert "limit" in r.json()["detail"]
    assert contacts.get("/v1/nowhere").status_code == 404
    r = contacts.request("POST", f"{R}/abc")
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"


def test_missing_record_and_type(contacts: Api) -> None:
    r = contacts.get(f"{R}/nope")
    assert r.status_code == 404 and r.json()["code"] == "record_not_found"
    r = contacts.get("/v1/types/ghost/records")
    assert r.status_code == 404 and r.json()["code"] == "type_not_found"


def test_other_projects_data_is_404(contacts: Api) -> None:
    (rec,) = create(contacts, {"data": {}})
    other = contacts.new_key("admin", project="p2")
    assert contacts.get(f"{R}/{rec['id']}", key=other).status_code == 404
    assert contacts.delete(f"{R}/{rec['id']}", key=other).status_code == 404
    assert contacts.get(f"{R}/{rec['id']}").status_code == 200


def test_owner_stored(contacts: Api) -> None:
    (rec,) = create(contacts, {"data": {}, "owner": "user-7"})
    assert contacts.get(f"{R}/{rec['id']}").json()["owner"] == "user-7"


def test_missing_required_member_points_at_it(api: Api) -> None:
    api.make_type(
        "contact",
        schema={
            "type": "object",
            "required": ["email"],
            "properties": {"email": {"type": "string"}},
        },
    )
    r = api.post(R, json={"records": [{"data": {"email": "a@x"}}, {"data": {}}]})
    assert r.status_code == 400
    assert r.json()["errors"] == [
        {
            "path": "/records/1/data/email",
            "code": "required",
            "message": '"email" is a required property',
        }
    ]


@pytest.mark.backend("sqlite")  # the SQLite writer's statements
def test_an_update_sets_only_the_optional_columns_that_change(contacts: Api) -> None:
    """SQLite rewrites the index entries of every column an UPDATE names: an upsert of the
    data alone leaves name, external id and owner out of its SET list."""
    (made,) = create(contacts, {"external_id": "e1", "name": "Ann", "data": {"email": "a@x"}})
    statements: list[str] = []
    conn = contacts.app.state.service.store._writer.conn
    conn.set_trace_callback(statements.append)
    try:
        same = {"external_id": "e1", "name": "Ann", "data": {"email": "b@x"}}
        r = contacts.put(R + "?on=external_id", json={"records": [same]})
        assert r.status_code == 200, r.text
        renamed = contacts.patch(f"{R}/{made['id']}", json={"name": "Bea", "owner": "o1"})
        assert renamed.status_code == 200, renamed.text
    finally:
        conn.set_trace_callback(None)
    updates = [s for s in statements if s.startswith("UPDATE records")]
    assert len(updates) == 2, updates
    assert "name =" not in updates[0] and "owner =" not in updates[0], updates[0]
    assert "external_id =" not in updates[0] and "data =" in updates[0], updates[0]
    assert "name =" in updates[1] and "owner =" in updates[1], updates[1]
    assert "external_id =" not in updates[1], updates[1]
    shown = contacts.get(f"{R}/{made['id']}").json()
    assert (shown["name"], shown["owner"], shown["external_id"]) == ("Bea", "o1", "e1")
    assert shown["data"] == {"email": "b@x"}
