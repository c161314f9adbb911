"""The query language through the real app: tables of (filter, expected records) in both
native dialects (query string and JSON form), and the 400s that name the valid choices."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api

R = "/v1/types/person/records"
SCHEMA = {
    "type": "object",
    "properties": {
        "age": {"type": ["integer", "null"]},
        "score": {"type": "number"},
        "email": {"type": "string"},
        "city": {"type": ["string", "null"]},
        "active": {"type": "boolean"},
        "born": {"type": "string", "format": "date-time"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "nums": {"type": "array", "items": {"type": "integer"}},
        "a": {
            "type": "object",
            "properties": {
                "b": {
                    "type": "object",
                    "properties": {
                        "c": {"type": "object", "properties": {"d": {"type": "string"}}}
                    },
                }
            },
        },
        "misc": {},
        "extra": {"type": "object"},
    },
}
RECORDS: list[dict[str, Any]] = [
    {
        "id": "r1",
        "name": "Ada",
        "owner": "a",
        "data": {
            "age": 36,
            "score": 9.5,
            "email": "ada@x.org",
            "city": "London",
            "active": True,
            "born": "1815-12-10T00:00:00Z",
            "tags": ["math", "poet"],
            "nums": [1, 2],
            "a": {"b": {"c": {"d": "deep"}}},
            "misc": 1,
        },
    },
    {
        "id": "r2",
        "name": "Émile",
        "owner": "b",
        "data": {
            "age": 18,
            "score": 7,
            "email": "EMILE@x.fr",
            "city": "Zürich",
            "active": False,
            # 1999-12-31T23:00Z: after "2000-..." as text, before 2000 as an instant.
            "born": "2000-01-01T01:00:00+02:00",
            "tags": ["naïve"],
            "misc": "10",
        },
    },
    {
        "id": "r3",
        "name": "Grace",
        "owner": "c",
        "data": {
            "age": 85,
            "score": 10.0,
            "city": "New York",
            "born": "1999-12-31T23:30:00Z",
            "tags": [],
            "misc": True,
            "extra": {"k": "v"},
        },
    },
    {"id": "r4", "data": {"age": None, "city": None, "misc": None}},
    {
        "id": "r5",
        "name": "日本",
        "data": {"email": "nihon@例え.jp", "age": 2, "misc": [10, "x"], "tags": ["10"]},
    },
    {"id": "r6", "data": {}},
]
ALL = ["r1", "r2", "r3", "r4", "r5", "r6"]


def cond(path: str, op: str, *values: Any) -> dict[str, Any]:
    return {path: {"operator": op, "value": list(values)}}


# (JSON filter, expected ids)
JSON_CASES: list[tuple[dict[str, Any], list[str]]] = [
    (cond("data.age", "eq", 18), ["r2"]),
    (cond("data.age", "", 18), ["r2"]),
    (cond("data.age", "gte", 18), ["r1", "r2", "r3"]),  # numerically: 2 < 18 < 36 < 85
    (cond("data.age", "lt", 18), ["r5"]),
    (cond("data.age", "in", 18, 85, 1000), ["r2", "r3"]),
    (cond("data.age", "in"), []),
    (cond("data.age", "isnull", True), ["r4", "r6"]),  # null and missing
    (cond("data.age", "isnull", False), ["r1", "r2", "r3", "r5"]),
    (cond("data.age", "not", 18), ["r1", "r3", "r4", "r5", "r6"]),
    (cond("data.score", "gt", 9), ["r1", "r3"]),
    (cond("data.score", "eq", 10), ["r3"]),  # 10.0 == 10
    (cond("data.born", "lt", "2000-01-01T00:00:00Z"), ["r1", "r2", "r3"]),
    (cond("data.born", "gt", "1999-12-31T23:15:00Z"), ["r3"]),
    (cond("data.born", "eq", "1999-12-31T23:00:00Z"), ["r2"]),
    (cond("data.born", "lte", "1999-12-31T23:30:00.000+00:00"), ["r1", "r2", "r3"]),
    (cond("data.city", "iexact", "ZÜRICH"), ["r2"]),
    (cond("data.city", "icontains", "YORK"), ["r3"]),
    (cond("data.city", "contains", "Lon"), ["r1"]),
    (cond("data.city", "contains", "lon"), []),
    (cond("data.city", "startswith", "Z"), ["r2"]),
    (cond("data.city", "endswith", "rich"), ["r2"]),
    (cond("data.city", "lt", "M"), ["r1"]),
    (cond("data.email", "endswith", "例え.jp"), ["r5"]),
    (cond("name", "startswith", "É"), ["r2"]),
    (cond("name", "icontains", "ÉMI"), ["r2"]),
    (cond("name", "eq", "日本"), ["r5"]),
    (cond("name", "isnull", True), ["r4", "r6"]),
    (cond("data.tags", "contains", "poet"), ["r1"]),
    (cond("data.tags", "contains", "naïve"), ["r2"]),
    (cond("data.tags", "contains", "10"), ["r5"]),
    (cond("data.nums", "contains", 2), ["r1"]),
    (cond("data.a.b.c.d", "eq", "deep"), ["r1"]),
    (cond("data.a.b.c.d", "isnull", True), ["r2", "r3", "r4", "r5", "r6"]),
    (cond("data.active", "eq", True), ["r1"]),
    (cond("data.active", "eq", False), ["r2"]),
    (cond("data.active", "not", True), ["r2", "r3", "r4", "r5", "r6"]),
    # An untyped field holding numbers, strings, booleans, arrays and nulls.
    (cond("data.misc", "eq", 1), ["r1"]),  # not true
    (cond("data.misc", "eq", True), ["r3"]),  # not 1
    (cond("data.misc", "eq", "10"), ["r2"]),  # not the number 10 in r5's array
    (cond("data.misc", "gt", 0), ["r1"]),  # numbers only
    (cond("data.misc", "contains", "x"), ["r5"]),  # array member
    (cond("data.misc", "contains", "1"), ["r2"]),  # substring of a string
    (cond("data.misc", "contains", 10), ["r5"]),
    (cond("data.misc", "in", 1, "10"), ["r1", "r2"]),
    (cond("data.misc", "isnull", True), ["r4", "r6"]),
    (cond("data.extra.k", "eq", "v"), ["r3"]),
    (cond("owner", "in", "a", "b"), ["r1", "r2"]),
    (cond("owner", "isnull", True), ["r4", "r5", "r6"]),
    (cond("id", "eq", "r3"), ["r3"]),
    (cond("version", "eq", 1), ALL),
    ({"data.age": 18}, ["r2"]),
    ({"data.age": {"operator": "gte", "value": 18}}, ["r1", "r2", "r3"]),
    (
        {"or": [cond("data.age", "lt", 18), cond("data.city", "eq", "London")]},
        ["r1", "r5"],
    ),
    ({"not": cond("data.age", "gte", 18)}, ["r4", "r5", "r6"]),
    ({"not": cond("data.city", "contains", "o")}, ["r2", "r4", "r5", "r6"]),
    (
        {"and": [cond("data.age", "gte", 18), {"not": cond("data.city", "eq", "London")}]},
        ["r2", "r3"],
    ),
    ({**cond("data.age", "gte", 18), **cond("owner", "not", "a")}, ["r2", "r3"]),
    ({"or": []}, []),
    ({}, ALL),
]

# (query string, expected ids): the same language as `path__op=value`.
PARAM_CASES: list[tuple[dict[str, str], list[str]]] = [
    ({"data.age__gte": "18"}, ["r1", "r2", "r3"]),
    ({"data.age": "18"}, ["r2"]),
    ({"data.age__in": "18,85"}, ["r2", "r3"]),
    ({"owner__in": "a,b"}, ["r1", "r2"]),
    ({"owner__in": '["a","c"]'}, ["r1", "r3"]),
    ({"data.age__gte": "18", "data.age__lt": "50"}, ["r1", "r2"]),
    ({"data.score__gt": "9.25"}, ["r1", "r3"]),
    ({"data.born__lt": "2000-01-01T00:00:00Z"}, ["r1", "r2", "r3"]),
    ({"data.born__gt": "1999-12-31T23:15:00+00:00"}, ["r3"]),
    ({"data.active": "true"}, ["r1"]),
    ({"data.age__isnull": "true"}, ["r4", "r6"]),
    ({"data.city__icontains": "zür"}, ["r2"]),
    ({"data.tags__contains": "poet"}, ["r1"]),
    ({"data.nums__contains": "2"}, ["r1"]),
    ({"data.a.b.c.d": "deep"}, ["r1"]),
    ({"data.misc": "1"}, ["r1"]),
    ({"data.misc": "true"}, ["r3"]),
    ({"data.extra.k": "v"}, ["r3"]),
    ({"name__endswith": "ile"}, ["r2"]),
]


@pytest.fixture
def people(api: Api) -> Api:
    api.make_type("person", schema=SCHEMA)
    r = api.post(R, json={"records": RECORDS})
    assert r.status_code == 201, r.text
    return api


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(r["id"] for r in response.json()["records"])


def test_filter_tables(people: Api) -> None:
    for flt, expected in JSON_CASES:
        got = ids(people.post(f"{R}/query", json={"filter": flt}))
        assert got == sorted(expected), flt
        count = people.post(f"{R}/query", json={"filter": flt, "count": True}).json()["count"]
        assert count == len(expected), flt
    for params, expected in PARAM_CASES:
        assert ids(people.get(R, params=params)) == sorted(expected), params
        assert people.get(f"{R}/count", params=params).json() == {"count": len(expected)}


def test_in_list_is_capped(people: Api) -> None:
    r = people.post(f"{R}/query", json={"filter": cond("data.age", "in", *range(1001))})
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_filter" and r.json()["errors"][0]["code"] == (
        "too_many_values"
    )
    ok = people.post(f"{R}/query", json={"filter": cond("data.age", "in", *range(1000))})
    assert ids(ok) == ["r1", "r2", "r3", "r5"]


@pytest.mark.parametrize(
    ("params", "code", "valid"),
    [
        ({"data.age__gtee": "1"}, "unknown_operator", "gte"),
        ({"data.nope": "1"}, "unknown_path", "data.age"),
        ({"data.a.b.x": "1"}, "unknown_path", "data.a.b.c"),
        ({"data.age__gte": "abc"}, "invalid_value", None),
        ({"data.born__lt": "yesterday"}, "invalid_value", None),
        ({"data.active": "maybe"}, "invalid_value", None),
        ({"data.tags__gt": "a"}, "invalid_operator", "contains"),
        ({"data.age__icontains": "1"}, "invalid_operator", "gte"),
        ({"data.age__isnull": "perhaps"}, "invalid_value", None),
    ],
)
def test_bad_query_string_filters(
    people: Api, params: dict[str, str], code: str, valid: str | None
) -> None:
    r = people.get(R, params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "invalid_filter" and body["errors"][0]["code"] == code
    if valid is not None:
        assert valid in body["valid"] and valid in body["detail"]
    assert people.get(f"{R}/count", params=params).status_code == 400


@pytest.mark.parametrize(
    ("flt", "code"),
    [
        (cond("data.age", "gte", "18"), "invalid_value"),
        (cond("data.city", "eq", 5), "invalid_value"),
        (cond("data.active", "eq", "yes"), "invalid_value"),
        (cond("data.age", "gte", 1, 2), "invalid_value"),
        (cond("data.misc", "eq", None), "invalid_value"),
        (cond("data.misc", "lt", True), "invalid_value"),
        (cond("data.age", "like", 1), "unknown_operator"),
        (cond("colour", "eq", 1), "unknown_path"),
        ({"data.age": {"op": "eq"}}, "unknown_member"),
        ({"or": {"a": 1}}, "type"),
        ([], "type"),
    ],
)
def test_bad_json_filters(people: Api, flt: Any, code: str) -> None:
    r = people.post(f"{R}/query", json={"filter": flt})
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "invalid_filter" and r.json()["errors"][0]["code"] == code


def test_bad_sort_and_body(people: Api) -> None:
    for sort in ("data.nope", "colour", "data.tags"):
        r = people.get(R, params={"sort": sort})
        assert r.status_code == 400 and r.json()["code"] == "invalid_sort", sort
    r = people.post(f"{R}/query", json={"filter": {}, "colour": 1})
    assert r.status_code == 400 and r.json()["code"] == "unknown_member"
    assert "page_size" in r.json()["valid"]
    r = people.post(f"{R}/query", json={"limit": 1001})
    assert r.status_code == 400 and r.json()["code"] == "page_too_large"
    r = people.get(R, params={"limit": "5", "page": "2"})
    assert r.status_code == 400


def test_sorts(people: Api) -> None:
    def order(sort: str) -> list[str]:
        r = people.get(R, params={"sort": sort})
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["records"]]

    # Null and missing are the smallest values; ties break on id.
    assert order("data.age") == ["r4", "r6", "r5", "r2", "r1", "r3"]
    assert order("-data.age") == ["r3", "r1", "r2", "r5", "r6", "r4"]
    # Instants, not text: r2's "2000-01-01T01:00:00+02:00" is 1999-12-31T23:00Z.
    assert order("data.born") == ["r4", "r5", "r6", "r1", "r2", "r3"]
    assert order("data.active,-data.score") == ["r3", "r6", "r5", "r4", "r2", "r1"]
    assert order("name") == ["r4", "r6", "r1", "r3", "r2", "r5"]
    body = people.post(f"{R}/query", json={"sort": ["-data.age"], "limit": 2}).json()
    assert [x["id"] for x in body["records"]] == ["r3", "r1"]


def test_page_numbers_and_count(people: Api) -> None:
    params = {"sort": "id", "page": "2", "page_size": "4", "count": "true"}
    body = people.get(R, params=params).json()
    assert [x["id"] for x in body["records"]] == ["r5", "r6"]
    assert body["count"] == 6 and body["next_cursor"] is None
    body = people.post(f"{R}/query", json={"sort": "id", "page": 1, "page_size": 2}).json()
    assert [x["id"] for x in body["records"]] == ["r1", "r2"]
    assert people.get(f"{R}/count").json() == {"count": 6}


def test_cursor_pages_with_filter_and_stale_cursor(people: Api) -> None:
    query = {"filter": cond("data.age", "isnull", False), "sort": ["-data.born"], "limit": 1}
    seen: list[str] = []
    cursor = None
    while True:
        body = people.post(f"{R}/query", json={**query, "cursor": cursor}).json()
        seen += [x["id"] for x in body["records"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ["r3", "r2", "r1", "r5"]
    cursor = people.post(f"{R}/query", json=query).json()["next_cursor"]
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    r = people.post(f"{R}/query", json={**query, "cursor": tampered})
    assert r.status_code == 400 and r.json()["code"] == "invalid_cursor"
    r = people.post(f"{R}/query", json={**query, "filter": {}, "cursor": cursor})
    assert r.status_code == 400 and r.json()["code"] == "invalid_cursor"
    # A schema change makes earlier cursors stale.
    schema = {**SCHEMA, "properties": {**SCHEMA["properties"], "new": {"type": "string"}}}
    assert people.patch("/v1/types/person", json={"schema": schema}).status_code == 200
    r = people.post(f"{R}/query", json={**query, "cursor": cursor})
    assert r.status_code == 400 and r.json()["code"] == "invalid_cursor"
