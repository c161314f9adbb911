"""Text search (q=) over the database's full-text index, and declared indexes that the query
planner really uses."""

from __future__ import annotations

from typing import Any

import pytest

from recordbase.core.filters import check_query, parse_params, parse_sort
from recordbase.core.query import Query, stable_sort
from tests.conftest import Api

R = "/v1/types/book/records"
SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "author": {"type": "string"},
        "year": {"type": "integer"},
        "published": {"type": "string", "format": "date-time"},
        "notes": {"type": "array", "items": {"type": "string"}},
    },
}


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(r["id"] for r in response.json()["records"])


@pytest.fixture
def books(api: Api) -> Api:
    api.make_type("book", schema=SCHEMA, search=True)
    records = [
        {"id": "b1", "name": "Dune", "data": {"title": "Dune", "author": "Frank Herbert"}},
        {"id": "b2", "name": "Emma", "data": {"title": "Emma", "author": "Jane Austen"}},
        {"id": "b3", "data": {"title": "Les Misérables", "author": "Victor Hugo", "year": 1862}},
        {"id": "b4", "data": {"title": "Zürich stories", "notes": ["herbarium", "alpine"]}},
    ]
    assert api.post(R, json={"records": records}).status_code == 201
    return api


def test_text_search_prefixes_names_and_strings(books: Api) -> None:
    assert ids(books.get(R, params={"q": "dun"})) == ["b1"]
    assert ids(books.get(R, params={"q": "herb"})) == ["b1", "b4"]  # author; array item
    assert ids(books.get(R, params={"q": "HERB frank"})) == ["b1"]  # every word
    assert ids(books.get(R, params={"q": "miser"})) == ["b3"]  # accents folded
    assert ids(books.get(R, params={"q": "zur"})) == ["b4"]
    assert ids(books.get(R, params={"q": '"austen'})) == ["b2"]  # quotes are just text
    assert ids(books.get(R, params={"q": "1862"})) == []  # numbers are not text
    assert ids(books.get(R, params={"q": "erbert"})) == []  # prefixes, not substrings
    body = {"q": "herb", "filter": {"data.notes": {"operator": "contains", "value": ["alpine"]}}}
    assert ids(books.post(f"{R}/query", json=body)) == ["b4"]
    assert books.get(f"{R}/count", params={"q": "herb"}).json() == {"count": 2}


def test_text_index_follows_writes(books: Api) -> None:
    r = books.patch(f"{R}/b2", json={"data": {"author": "Charlotte Bronte"}})
    assert r.status_code == 200, r.text
    assert ids(books.get(R, params={"q": "austen"})) == []
    assert ids(books.get(R, params={"q": "bront"})) == ["b2"]
    assert books.patch(f"{R}/b2", json={"name": "Jane Eyre"}).status_code == 200
    assert ids(books.get(R, params={"q": "eyre"})) == ["b2"]
    assert books.delete(f"{R}/b1").status_code == 204
    assert ids(books.get(R, params={"q": "herb"})) == ["b4"]
    r = books.put(f"{R}?on=external_id", json={"records": [{"external_id": "x", "name": "Herbal"}]})
    assert r.status_code == 200, r.text
    assert len(ids(books.get(R, params={"q": "herb"}))) == 2


# Declared indexes and the query plan (SQLite's EXPLAIN QUERY PLAN).


def plan(api: Api, type_key: str, params: dict[str, str], sort: str | None = None) -> str:

    async def read() -> str:
        store = api.service.store

        def fn(tx: Any) -> str:
            project = tx.project_by_name("p1")
            rtype = tx.get_type(project.id, type_key)
            query = Query(filter=parse_params(params.items(), ()), sort=parse_sort(sort))
            query = check_query(query, rtype, api.service.settings)
            query = Query(filter=query.filter, sort=stable_sort(query.sort))
            return str(tx.explain(rtype, query))

        return str(await store.read(fn))

    return str(api.client.portal.call(read))  # type: ignore[union-attr]


@pytest.mark.backend("sqlite")  # SQLite's EXPLAIN QUERY PLAN
def test_declared_indexes_are_used(api: Api) -> None:
    indexes = [
        {"name": "by_year", "fields": ["data.year"]},
        {"name": "by_published", "fields": ["data.published"]},
        {"name": "by_author_title", "fields": ["data.author", "data.title"]},
    ]
    api.make_type("book", schema=SCHEMA)
    records = [
        {
            "data": {
                "year": 1900 + i % 40,
                "author": f"a{i % 7}",
                "title": f"t{i}",
                "published": f"20{i % 25:02d}-01-01T00:00:00+01:00",
            }
        }
        for i in range(300)
    ]
    assert api.post(R, json={"records": records}).status_code == 201
    # Without a declared index, the filter reads every record of the type.
    assert "rbx_" not in plan(api, "book", {"data.year": "1950"})
    assert api.patch("/v1/types/book", json={"indexes": indexes}).status_code == 200

    eq = plan(api, "book", {"data.year": "1930"})
    assert "USING INDEX rbx_" in eq and "by_year" in eq, eq
    rng = plan(api, "book", {"data.year__gte": "1930", "data.year__lt": "1932"})
    assert "by_year" in rng and ">" in rng and "<" in rng, rng
    # Date-times: the index holds instants, and a range with its sort is served by it.
    when = plan(api, "book", {"data.published__gt": "2023-01-01T00:00:00Z"}, "data.published")
    assert "by_published" in when and "TEMP B-TREE" not in when, when
    eq_when = plan(api, "book", {"data.published": "2023-01-01T00:00:00+01:00"})
    assert "by_published" in eq_when, eq_when
    two = plan(api, "book", {"data.author": "a1", "data.title": "t8"})
    assert "by_author_title" in two, two
    # Sorting on an indexed path reads the index in order: no sorting step.
    ordered = plan(api, "book", {}, "data.year")
    assert "by_year" in ordered and "TEMP B-TREE" not in ordered, ordered
    backwards = plan(api, "book", {"data.year__gt": "1910"}, "-data.year")
    assert "by_year" in backwards and "TEMP B-TREE" not in backwards, backwards
    assert "rbx_" not in plan(api, "book", {"data.notes__contains": "x"})
    # And the results agree.
    r = api.get(R, params={"data.year__gte": "1937", "sort": "-data.year", "limit": "3"})
    assert [x["data"]["year"] for x in r.json()["records"]] == [1939, 1939, 1939]
    assert api.get(f"{R}/count", params={"data.year": "1930"}).json() == {"count": 7}
    after = {"data.published__gte": "2022-12-31T23:00:00Z"}  # = 2023-01-01T00:00:00+01:00
    assert api.get(f"{R}/count", params=after).json() == {"count": 24}


@pytest.mark.backend("sqlite")  # SQLite's EXPLAIN QUERY PLAN
def test_sorted_range_uses_index_on_a_new_type(api: Api) -> None:
    api.make_type("book", schema=SCHEMA, indexes=[{"name": "by_year", "fields": ["data.year"]}])
    records = [{"data": {"year": 1900 + i}} for i in range(50)]
    assert api.post(R, json={"records": records}).status_code == 201
    found = plan(api, "book", {"data.year__gte": "1940"}, "data.year")
    assert "by_year" in found and "TEMP B-TREE" not in found, found


@pytest.mark.backend("sqlite")  # SQLite's EXPLAIN QUERY PLAN
def test_indexes_follow_type_changes(api: Api) -> None:
    def uses(path: str) -> str:
        return plan(api, "book", {f"{path}__gt": "1"}, path)

    api.make_type("book", schema=SCHEMA, indexes=[{"name": "by_year", "fields": ["data.year"]}])
    assert "by_year" in uses("data.year")
    indexes = [{"name": "by_title", "fields": ["data.title"]}]
    assert api.patch("/v1/types/book", json={"indexes": indexes}).status_code == 200
    # by_year is gone (by_title, partial to the type, may still serve as its list of rows)
    assert "by_year" not in uses("data.year")
    assert "by_title" in uses("data.title")
    assert api.delete("/v1/types/book").status_code == 204
    api.make_type("book", schema=SCHEMA)
    assert "rbx_" not in uses("data.title")
