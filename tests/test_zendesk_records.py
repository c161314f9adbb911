"""Zendesk face: records (CRUD, upsert, lists and cursors, search, count), auth and errors."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.conftest import Api
from tests.zendesk_helpers import CO, basic, create, make_car, set_name


def test_record_crud_and_merge(api: Api) -> None:
    make_car(api)
    made = create(
        api, name="My car", external_id="x1", custom_object_fields={"make": "Tesla", "year": 2020}
    )
    assert made["custom_object_fields"] == {
        "make": "Tesla",
        "model": None,
        "year": 2020,
        "color": None,
    }
    assert made["custom_object_key"] == "car" and isinstance(made["id"], str)
    rid = made["id"]
    url = f"{CO}/car/records/{rid}"
    assert api.get(url).json()["custom_object_record"] == made
    patched = api.patch(
        url, json={"custom_object_record": {"custom_object_fields": {"model": "Y"}}}
    )
    fields = patched.json()["custom_object_record"]["custom_object_fields"]
    assert fields == {"make": "Tesla", "model": "Y", "year": 2020, "color": None}
    cleared = api.patch(
        url, json={"custom_object_record": {"custom_object_fields": {"year": None}}}
    )
    assert cleared.json()["custom_object_record"]["custom_object_fields"]["year"] is None
    unchanged = api.patch(url)
    assert unchanged.status_code == 200
    assert unchanged.json()["custom_object_record"]["custom_object_fields"]["model"] == "Y"
    assert api.delete(url).status_code == 204
    gone = api.get(url)
    assert gone.status_code == 404 and gone.json()["error"] == "RecordNotFound"


def test_create_rules(api: Api) -> None:
    make_car(api)
    nameless = api.post(
        f"{CO}/car/records", json={"custom_object_record": {"custom_object_fields": {}}}
    )
    assert nameless.status_code == 422
    assert nameless.json()["details"]["name"][0]["error"] == "BlankValue"
    wrong = api.post(
        f"{CO}/car/records",
        json={
            "custom_object_record": {
                "name": "a",
                "custom_object_fields": {"year": "old", "wheels": 4},
            }
        },
    )
    assert wrong.status_code == 422
    assert set(wrong.json()["details"]) == {"custom_object_fields.wheels"}
    typed = api.post(
        f"{CO}/car/records",
        json={
            "custom_object_record": {
                "name": "a",
                "custom_object_fields": {"year": "old", "color": "pink"},
            }
        },
    )
    assert typed.status_code == 422
    assert set(typed.json()["details"]) == {
        "custom_object_fields.year",
        "custom_object_fields.color",
    }
    # mercury-orm's body: id and external_id null, the name repeated inside the fields.
    mercury = api.post(
        f"{CO}/car/records?locale=en",
        json={
            "custom_object_record": {
                "custom_object_fields": {"name": "rec-1", "make": "VW"},
                "id": None,
                "external_id": None,
                "name": "rec-1",
            }
        },
    )
    assert mercury.status_code == 201, mercury.text
    assert mercury.json()["custom_object_record"]["name"] == "rec-1"


def test_required_fields(api: Api) -> None:
    make_car(api)
    api.patch(f"{CO}/car/fields/make", json={"custom_object_field": {"required": True}})
    response = api.post(f"{CO}/car/records", json={"custom_object_record": {"name": "a"}})
    assert response.status_code == 422 and "custom_object_fields.make" in response.json()["details"]


def _ids(response: Any) -> list[str]:
    return [r["id"] for r in response.json()["custom_object_records"]]


def test_list_filters_sort_and_cursors(api: Api) -> None:
    make_car(api)
    made = [create(api, name=f"c{i}", external_id=f"e{i}")["id"] for i in range(5)]
    assert _ids(api.get(f"{CO}/car/records")) == made
    assert _ids(api.get(f"{CO}/car/records?sort=-id")) == made[::-1]
    picked = api.get(f"{CO}/car/records", params={"filter[ids]": f"{made[3]},{made[1]}"})
    assert sorted(_ids(picked)) == sorted([made[1], made[3]])
    by_ext = api.get(f"{CO}/car/records", params={"filter[external_ids]": "e0,e4"})
    assert _ids(by_ext) == [made[0], made[4]]
    first = api.get(f"{CO}/car/records?page%5Bsize%5D=2").json()
    assert first["meta"]["has_more"] is True and first["meta"]["before_cursor"] is None
    assert first["links"]["prev"] is None
    assert parse_qs(urlsplit(first["links"]["next"]).query)["page[after]"] == [
        first["meta"]["after_cursor"]
    ]
    second = api.get(
        f"{CO}/car/records", params={"page[size]": 2, "page[after]": first["meta"]["after_cursor"]}
    ).json()
    assert [r["id"] for r in second["custom_object_records"]] == made[2:4]
    third = api.get(
        f"{CO}/car/records", params={"page[size]": 2, "page[after]": second["meta"]["after_cursor"]}
    ).json()
    assert [r["id"] for r in third["custom_object_records"]] == made[4:]
    assert third["meta"] == {
        "has_more": False,
        "after_cursor": None,
        "before_cursor": third["meta"]["before_cursor"],
    }
    assert third["links"]["next"] is None
    back = api.get(
        f"{CO}/car/records",
        params={"page[size]": 2, "page[before]": third["meta"]["before_cursor"]},
    ).json()
    assert [r["id"] for r in back["custom_object_records"]] == made[2:4]
    start = api.get(
        f"{CO}/car/records", params={"page[size]": 2, "page[before]": back["meta"]["before_cursor"]}
    ).json()
    assert [r["id"] for r in start["custom_object_records"]] == made[:2]
    assert start["meta"]["has_more"] is False and start["meta"]["before_cursor"] is None


def test_list_parameter_errors(api: Api) -> None:
    make_car(api)
    for params, status in (
        ({"page[size]": 101}, 400),
        ({"sort": "name"}, 400),
        ({"page[after]": "a.bogus"}, 400),
        ({"page[after]": "x", "page[before]": "y"}, 400),
        ({"colour": "red"}, 400),
    ):
        response = api.get(f"{CO}/car/records", params=params)
        assert response.status_code == status, params
        assert set(response.json()) == {"error", "description"}
    assert api.get(f"{CO}/car/records?sort=").status_code == 200


def test_upsert_and_delete_by_external_id_or_name(api: Api) -> None:
    make_car(api)
    url = f"{CO}/car/records"
    made = api.patch(
        url + "?external_id=X9",
        json={"custom_object_record": {"name": "Olds", "custom_object_fields": {"make": "Olds"}}},
    )
    assert made.status_code == 200, made.text
    record = made.json()["custom_object_record"]
    assert record["external_id"] == "X9"
    again = api.patch(
        url + "?external_id=X9",
        json={"custom_object_record": {"custom_object_fields": {"model": "C"}}},
    )
    assert again.json()["custom_object_record"]["id"] == record["id"]
    assert again.json()["custom_object_record"]["custom_object_fields"]["make"] == "Olds"
    nameless = api.patch(url + "?external_id=X10", json={"custom_object_record": {}})
    assert nameless.status_code == 422
    both = api.patch(url + "?external_id=X9&name=Olds", json={"custom_object_record": {}})
    assert both.status_code == 400 and both.json()["error"] == "InvalidParameter"
    by_name = api.patch(url + "?name=Olds", json={"custom_object_record": {}})
    assert by_name.status_code == 400  # the name field is not unique
    assert api.delete(url + "?external_id=X9&name=").status_code == 204
    assert api.delete(url + "?external_id=X9").status_code == 404
    assert api.delete(url).status_code == 400


def test_upsert_by_unique_name(api: Api) -> None:
    make_car(api)
    set_name(api, "car", is_unique=True)
    url = f"{CO}/car/records"
    made = api.patch(
        url + "?name=Herbie&external_id=",
        json={"custom_object_record": {"custom_object_fields": {"make": "VW"}}},
    )
    assert made.status_code == 200, made.text
    updated = api.patch(
        url + "?name=Herbie",
        json={"custom_object_record": {"custom_object_fields": {"year": 1963}}},
    )
    fields = updated.json()["custom_object_record"]["custom_object_fields"]
    assert fields["make"] == "VW" and fields["year"] == 1963
    assert api.get(f"{CO}/car/records/count").json()["count"]["value"] == 1
    assert api.delete(url + "?name=Herbie").status_code == 204


def _search(api: Api, body: dict[str, Any], **params: Any) -> Any:
    return api.post(f"{CO}/car/records/search", json=body, params=params)


def test_filtered_search(api: Api) -> None:
    make_car(api)
    a = create(
        api,
        name="Tesla S",
        external_id="t1",
        custom_object_fields={"make": "Tesla", "year": 2018, "color": "red"},
    )
    b = create(api, name="Tesla Y", custom_object_fields={"make": "Tesla", "year": 2022})
    c = create(
        api, name="Civic", custom_object_fields={"make": "Honda", "year": 2020, "color": "blue"}
    )
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"custom_object_fields.make": {"$eq": "Tesla"}}, [a["id"], b["id"]]),
        (
            {
                "$and": [
                    {"custom_object_fields.make": {"$eq": "Tesla"}},
                    {"custom_object_fields.year": {"$gt": 2019}},
                ]
            },
            [b["id"]],
        ),
        (
            {
                "$or": [
                    {"custom_object_fields.color": {"$eq": "blue"}},
                    {"external_id": {"$eq": "t1"}},
                ]
            },
            [a["id"], c["id"]],
        ),
        ({"custom_object_fields.year": {"$gte": 2018, "$lt": 2021}}, [a["id"], c["id"]]),
        ({"custom_object_fields.make": {"$noteq": "Tesla"}}, [c["id"]]),
        ({"custom_object_fields.color": {"$exists": False}}, [b["id"]]),
        ({"custom_object_fields.color": {"$in": ["red", "blue"]}}, [a["id"], c["id"]]),
        ({"custom_object_fields.color": {"$not_in": ["red"]}}, [b["id"], c["id"]]),
        ({"name": {"$starts_with": "Tesla"}}, [a["id"], b["id"]]),
        ({"name": {"$contains": "vic"}}, [c["id"]]),
        ({"name": {"$not_contains": "Tesla"}}, [c["id"]]),
        (
            {
                "$and": [{"custom_object_fields.make": {"$eq": "Tesla"}}],
                "$or": [
                    {"custom_object_fields.year": {"$lt": 2019}},
                    {"custom_object_fields.color": {"$eq": "blue"}},
                ],
            },
            [a["id"]],
        ),
    ]
    for filter, expected in cases:
        response = _search(api, {"filter": filter}, sort="created_at")
        assert response.status_code == 200, (filter, response.text)
        assert _ids(response) == expected, filter
        assert response.json()["count"] == len(expected)
    for bad in (
        {"custom_object_fields.make": {"$like": "T"}},
        {"custom_object_fields.wheels": {"$eq": 4}},
        {"$xor": []},
        {"custom_object_fields.color": {"$in": "red"} and {"$exists": "yes"}},
    ):
        response = _search(api, {"filter": bad})
        assert response.status_code == 400, bad
        assert response.json()["error"] == "InvalidParameter"


def test_text_search_autocomplete_and_count(api: Api) -> None:
    make_car(api)
    a = create(api, name="Tesla S", custom_object_fields={"model": "S"})
    b = create(api, name="Model T", custom_object_fields={"make": "Ford"})
    found = api.get(f"{CO}/car/records/search", params={"query": "Tesla", "sort": "-updated_at"})
    assert found.status_code == 200 and _ids(found) == [a["id"]] and found.json()["count"] == 1
    assert api.get(f"{CO}/car/records/search?query=Ford&sort=").json()["count"] == 1
    assert _ids(api.get(f"{CO}/car/records/search", params={"sort": "-name"})) == [a["id"], b["id"]]
    auto = api.get(f"{CO}/car/records/autocomplete", params={"name": "mod"})
    assert _ids(auto) == [b["id"]]
    count = api.get(f"{CO}/car/records/count").json()
    assert count["count"]["value"] == 2 and count["count"]["refreshed_at"].endswith("Z")


def test_auth_schemes_and_user_ids(api: Api) -> None:
    make_car(api)
    made = api.post(
        f"{CO}/car/records",
        json={"custom_object_record": {"name": "a"}},
        headers=basic("agent@example.com", api.key),
    )
    assert made.status_code == 201, made.text
    assert made.json()["custom_object_record"]["created_by_user_id"] == "agent@example.com"
    assert made.headers["X-Rate-Limit"] and made.headers["X-Rate-Limit-Remaining"]
    password = basic("agent@example.com", api.key)["Authorization"]
    import base64

    plain = base64.b64encode(f"agent@example.com:{api.key}".encode()).decode()
    for headers in (
        {"Authorization": f"Basic {plain}"},
        {"Authorization": "Bearer nope"},
        {"Authorization": ""},
    ):
        denied = api.client.get(f"{CO}/car/records", headers=headers)
        assert denied.status_code == 401
        assert denied.json()["error"] == "Couldn't authenticate you"
    assert password.startswith("Basic ")


def test_scopes_and_rate_limits(api: Api) -> None:
    make_car(api)
    reader = api.new_key("records:read")
    denied = api.post(f"{CO}/car/records", key=reader, json={"custom_object_record": {"name": "a"}})
    assert denied.status_code == 403 and denied.json()["error"] == "Forbidden"
    slow = api.new_key("admin", rate=0.001, burst=1)
    assert api.get(f"{CO}/car/records", key=slow).status_code == 200
    limited = api.get(f"{CO}/car/records", key=slow)
    assert limited.status_code == 429
    assert limited.json()["error"] == "TooManyRequests"
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["X-Rate-Limit-Remaining"] == "0"


def test_unknown_routes_and_bodies(api: Api) -> None:
    make_car(api)
    assert api.get(f"{CO}/car/nothing").json()["error"] == "InvalidEndpoint"
    bad_json = api.post(
        f"{CO}/car/records", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 400 and bad_json.json()["error"] == "InvalidJSON"
    wrong = api.post(f"{CO}/car/records", json={"record": {}})
    assert wrong.status_code == 422


def test_deleted_field_values_are_hidden(api: Api) -> None:
    make_car(api)
    made = create(api, name="a", custom_object_fields={"make": "VW", "model": "Golf"})
    assert api.delete(f"{CO}/car/fields/model").status_code == 204
    shown = api.get(f"{CO}/car/records/{made['id']}").json()["custom_object_record"]
    assert shown["custom_object_fields"] == {"make": "VW", "year": None, "color": None}
