"""The native list answers the bytes it always did: built from each record's JSON text (on
SQLite, made by SQLite itself; docs/performance.md "Read path, round 4") rather than from a
Record and a dict per row, the page must equal `JSONResponse` of `Record.as_dict` byte for byte,
and its cursors must be the ones `list_records` makes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from recordbase.config import Settings
from recordbase.core.filters import parse_json_filter, parse_params, parse_sort
from recordbase.core.query import Query
from recordbase.core.records import (
    OUTPUT_JSON_OPTIONS,
    record_from_json,
    record_json,
)
from recordbase.core.store import JSON_ROW_SEP, JsonRows
from recordbase.web.http import JSON_OPTIONS, dumps
from tests.conftest import Api, FakeClock

R = "/v1/types/contact/records"

# PostgreSQL refuses NUL in text and jsonb; SQLite keeps it (the fixture adds it there). \x1e
# is the separator of the SQLite page (sqlite_tx.list_records_json): JSON escapes it.
ODD_TEXT = 'a"b\\c/d\n\t\r\b\f\x01\x1e\x1f\x7f é ☃ \u2028\u2029 😀 </script>'
RECORDS: list[dict[str, Any]] = [
    {
        "data": {"email": "a@x", "age": 30, "score": 0.1, "tags": ["x", ODD_TEXT]},
        "name": ODD_TEXT,
        "external_id": "ext-1",
        "owner": "owner é",
        "description": ODD_TEXT,
        "attachments": [{"url": "https://x/1", "size": 12}, "plain", None, 1.5],
    },
    {
        "data": {
            "email": ODD_TEXT,
            "age": 0,
            "score": -0.0,
            "address": {"city": "Zürich", "zip": None},
            "big": 2**63 - 1,
            "small": -(2**63),
            "floats": [1e20, 1e-7, 5e-324, 1.7976931348623157e308, 3.141592653589793, 1.0],
            "empty": {},
            "none": [],
            ODD_TEXT: True,
        }
    },
    {"data": {}},
    {"data": {"email": "c@x", "age": 7, "tags": []}, "owner": None, "attachments": []},
]


class StillClock(FakeClock):
    """FakeClock that can be held still (every call answers the same time)."""

    still = False

    def __call__(self) -> datetime:
        return self.now if self.still else super().__call__()


@pytest.fixture
def clock() -> StillClock:
    return StillClock()


@pytest.fixture
def contacts(make_api: Callable[..., Api], settings: Settings, clock: StillClock) -> Api:
    api = make_api(settings)
    api.make_type()
    # The first record is made at a whole second: the API writes it without a fraction.
    clock.now, clock.still = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), True
    assert api.post(R, json={"record": {"data": {"age": 1}}}).status_code == 201
    clock.still = False
    records = list(RECORDS * 3)
    if not settings.database_url.startswith("postgres"):
        records.append({"data": {"nul\x00": "\x00"}, "name": "a\x00b", "description": "\x00"})
    for i, record in enumerate(records):
        if "external_id" in record:
            record = {**record, "external_id": f"ext-{i}"}
        r = api.post(R, json={"record": record})
        assert r.status_code == 201, r.text
    # an update at a whole second too
    clock.now, clock.still = datetime(2026, 1, 3, 0, 0, 0, tzinfo=UTC), True
    last = r.json()["records"][0]
    assert api.patch(f"{R}/{last['id']}", json={"data": {"age": 31}}).status_code == 200
    clock.still = False
    return api


def _expected_body(api: Api, query: Query, cursor: str | None) -> bytes:
    """What the handler answered before: JSONResponse of the Records' as_dict."""
    svc = api.service

    async def go() -> Any:
        p = await svc.authenticate(api.key)
        return await svc.list_records(p, "contact", query, cursor)

    result = api.client.portal.call(go)  # type: ignore[union-attr]
    body: dict[str, Any] = {
        "records": [r.as_dict() for r in result.records],
        "next_cursor": result.next_cursor,
    }
    if result.count is not None:
        body["count"] = result.count
    return dumps(body)


def _query(params: dict[str, str]) -> Query:
    limit = int(params.get("limit", params.get("page_size", "100")))
    offset = None
    if "page" in params:
        offset = (int(params["page"]) - 1) * limit
    return Query(
        filter=parse_params(
            [(k, v) for k, v in params.items()],
            ("limit", "cursor", "count", "sort", "page", "page_size"),
        ),
        sort=_sort(params.get("sort")),
        limit=limit,
        offset=offset,
        count=params.get("count") == "true",
    )


def _sort(raw: str | None) -> Any:
    return parse_sort(raw)


CASES: list[dict[str, str]] = [
    {},
    {"limit": "5"},
    {"limit": "5", "count": "true"},
    {"limit": "4", "sort": "-data.age"},
    {"limit": "3", "sort": "data.email,-created_at"},
    {"limit": "2", "sort": "-updated_at"},
    {"limit": "3", "sort": "name"},
    {"limit": "2", "data.age__gte": "1"},
    {"page": "2", "page_size": "5", "count": "true"},
    {"limit": "3", "owner__isnull": "false"},
    {"limit": "3", "data.email__eq": "nobody"},
]


@pytest.mark.parametrize("params", CASES, ids=lambda c: "&".join(f"{k}={v}" for k, v in c.items()))
def test_list_bytes_and_cursors_are_unchanged(contacts: Api, params: dict[str, str]) -> None:
    query = _query(params)
    cursor = None
    pages = 0
    while True:
        url = R + "?" + "&".join(f"{k}={v}" for k, v in params.items())
        if cursor:
            url += f"&cursor={cursor}"
        r = contacts.get(url)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.content == _expected_body(contacts, query, cursor)
        cursor = r.json()["next_cursor"]
        pages += 1
        if not cursor or pages > 20:
            break
    assert pages <= 20


def test_query_endpoint_is_unchanged(contacts: Api) -> None:
    body = {
        "filter": {"data.age": {"operator": "gte", "value": [0]}},
        "sort": ["-data.age"],
        "limit": 3,
        "count": True,
    }
    r = contacts.post(R + "/query", json=body)
    assert r.status_code == 200, r.text
    query = Query(
        filter=parse_json_filter(body["filter"]),
        sort=_sort("-data.age"),
        limit=3,
        count=True,
    )
    assert r.content == _expected_body(contacts, query, None)


def test_record_texts_round_trip(contacts: Api) -> None:
    """The store's texts (SQLite prints them; PostgreSQL answers None and the service uses
    Records) are each record's `record_json`; `record_from_json` gives the Record back."""
    svc = contacts.service

    async def go() -> tuple[Any, Any, Any]:
        p = await svc.authenticate(contacts.key)
        rtype = await svc.type_for(p, "contact")
        q = Query(limit=100)
        texts = await svc.store.read(lambda tx: tx.list_records_json(rtype, q))
        page = await svc.list_records_json(p, "contact", q)
        return await svc.list_records(p, "contact", q), texts, page

    records, texts, page = contacts.client.portal.call(go)  # type: ignore[union-attr]
    assert len(records.records) >= len(RECORDS) * 3
    assert page.records == dumps([r.as_dict() for r in records.records])
    stamps = [r.created_at for r in records.records] + [r.updated_at for r in records.records]
    assert any(s.microsecond == 0 for s in stamps)  # the case the SQL trims
    listed = orjson.loads(page.records)
    assert listed[0]["created_at"] == "2026-01-02T03:04:05Z"
    assert any(r["updated_at"] == "2026-01-03T00:00:00Z" for r in listed)
    if contacts.service.store.dialect == "sqlite":
        assert texts.count == len(records.records)
        parts = texts.text.split(JSON_ROW_SEP)
        assert [t.decode() for t in parts] == [record_json(r) for r in records.records]
        assert [record_from_json(t) for t in parts] == records.records
    else:
        assert texts is None


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 6])
def test_json_rows_head_cuts_the_page_and_names_its_last_record(count: int) -> None:
    """`JsonRows.head(n)`: the first n records as a JSON array, and the n-th record's text
    when more follow (where the cursor starts); non-ASCII text passes through as UTF-8."""
    texts = [orjson.dumps({"i": i, "name": f"n\u00e9{i}", "s": "a,b"}) for i in range(count)]
    rows = JsonRows(JSON_ROW_SEP.join(texts), count)
    for n in (1, 2, 3):
        array, last = rows.head(n)
        assert orjson.loads(array) == [orjson.loads(t) for t in texts[:n]]
        assert last == (texts[n - 1] if count > n else None)


def test_output_options_match_the_web_layer() -> None:
    assert OUTPUT_JSON_OPTIONS == JSON_OPTIONS


def test_query_copies_know_every_field() -> None:
    """check_query and the service build Query(...) member by member (no dataclasses.replace
    on the hot path): a new Query field must be added there too."""
    from dataclasses import fields

    names = [f.name for f in fields(Query)]
    assert names == ["filter", "sort", "limit", "after", "offset", "count", "text", "extra"]


def test_records_json_writes_what_as_dict_writes() -> None:
    """The create answer (`records_json`) equals orjson of `as_dict` byte for byte: records
    sharing one write's members, records with their own, data text kept or not."""
    from recordbase.core.records import Record, records_json

    whole = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    fine = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    records = []
    for i, spec in enumerate(RECORDS * 2):
        data = spec["data"]
        at = whole if i % 3 == 0 else fine
        records.append(
            Record(
                f"id-{i}",
                "contact" if i < 5 else ODD_TEXT,
                spec.get("name"),
                spec.get("external_id"),
                spec.get("owner"),
                data,
                spec.get("description"),
                spec.get("attachments") or [],
                1 if i % 4 else 3,
                at,
                at if i % 2 else fine,
                "key-1" if i % 5 else None,
                "key-1" if i % 5 else ODD_TEXT,
                data_json=None if i == 6 else orjson.dumps(data).decode(),
            )
        )
    expected = orjson.dumps([r.as_dict() for r in records], option=OUTPUT_JSON_OPTIONS)
    assert records_json(records) == expected
    assert records_json([]) == b"[]"
    assert records_json(records[:1]) == orjson.dumps(
        [records[0].as_dict()], option=OUTPUT_JSON_OPTIONS
    )


def test_a_create_answers_the_records_as_reading_them_does(contacts: Api, db_url: str) -> None:
    batch = {"records": [{**r, "external_id": None} for r in RECORDS]}
    r = contacts.post(R, json=batch)
    assert r.status_code == 201, r.text
    ids = [rec["id"] for rec in r.json()["records"]]
    read = [contacts.get(f"{R}/{rid}").content for rid in ids]
    assert r.json() == {"records": [orjson.loads(body) for body in read]}
    if db_url.startswith("sqlite"):
        # jsonb keeps its own key order; SQLite keeps the text the create answered
        assert r.content == b'{"records":[' + b",".join(read) + b"]}"


def test_an_upsert_answers_the_records_as_reading_them_does(contacts: Api, db_url: str) -> None:
    """The upsert's answer is written from the records it made (records_json), created and
    updated alike, and says which were which."""
    stored = contacts.post(R, json={"records": [{"external_id": "u1", "data": {"email": "a"}}]})
    assert stored.status_code == 201, stored.text
    batch = [
        {"external_id": "u1", "data": {"age": 5}, "name": "kept"},
        {"external_id": "u2", "data": {"email": "b", "tags": ["x"]}, "owner": "o"},
    ]
    r = contacts.put(R + "?on=external_id", json={"records": batch})
    assert r.status_code == 200, r.text
    body = r.json()
    ids = [rec["id"] for rec in body["records"]]
    assert body["updated"] == ids[:1] and body["created"] == ids[1:]
    assert body["records"][0]["version"] == 2 and body["records"][0]["data"] == {"age": 5}
    read = [contacts.get(f"{R}/{rid}").content for rid in ids]
    assert body["records"] == [orjson.loads(text) for text in read]
    if db_url.startswith("sqlite"):
        assert r.content.startswith(b'{"records":[' + b",".join(read) + b"]")
