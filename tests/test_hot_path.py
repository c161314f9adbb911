"""The hot-path speed-ups keep their meaning (docs/performance.md): ULIDs stay valid and
ordered, key and type changes made elsewhere in the process still count at once, client ids
are still checked, and timestamps still format the same."""

from __future__ import annotations

import asyncio
import os
import random
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from ulid import ULID

from recordbase.config import Settings
from recordbase.core.clock import _UlidSource, new_ids, new_request_id, new_ulid, utc_text
from recordbase.core.service import RecordService
from recordbase.stores import open_store
from recordbase.stores.sqlite import GIL_SWITCH_INTERVAL
from tests.conftest import Api

R = "/v1/types/contact/records"


def test_ulids_are_valid_unique_and_ordered() -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    ids = [new_ulid() for _ in range(20_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for text in (ids[0], ids[-1]):
        parsed = ULID.from_str(text)
        assert str(parsed) == text and len(text) == 26
        assert before <= parsed.datetime <= datetime.now(UTC) + timedelta(seconds=1)


def test_batched_ulids_are_the_consecutive_values_python_ulid_would_write() -> None:
    source = _UlidSource()
    ids = [source(), *source.many(3000), source(), *new_ids(source, 1), *source.many(700)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    run = ids[1:3001]  # one millisecond's run crosses 10-bit boundaries of the randomness
    first = int(ULID.from_str(run[0]))
    assert run == [str(ULID.from_int(first + k)) for k in range(len(run))]
    mixed = new_ids(lambda: "fixed", 2)  # a plain id function is called once per id
    assert mixed == ["fixed", "fixed"]


def test_a_batch_that_would_exhaust_the_randomness_borrows_the_next_millisecond() -> None:
    source = _UlidSource()
    last = source()
    source._last_ms += 5  # the clock is behind: ids go on in the last millisecond
    source._last_rand = (1 << 80) - 10
    batch = source.many(50)
    assert last < batch[0] and batch == sorted(batch) and len(set(batch)) == 50
    times = {ULID.from_str(t).milliseconds for t in batch}
    assert times == {source._last_ms} and source._last_ms == ULID.from_str(last).milliseconds + 6


def test_utc_text_is_the_same_for_repeated_and_new_values() -> None:
    a = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    b = datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC)
    assert utc_text(a) == utc_text(a) == "2026-01-02T03:04:05.000006Z"
    assert utc_text(b) == "2026-01-02T03:04:05.000007Z"
    assert utc_text(a) == "2026-01-02T03:04:05.000006Z"


def test_utc_text_converts_other_zones_and_keeps_whole_seconds_fixed_width() -> None:
    paris = timezone(timedelta(hours=1))
    assert utc_text(datetime(2026, 1, 2, 4, 4, 5, tzinfo=paris)) == "2026-01-02T03:04:05.000000Z"
    assert utc_text(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(0), "UTC+0"))) == (
        "2026-01-02T03:04:05.000000Z"
    )
    early = datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert utc_text(early) == "0999-12-31T23:59:59.999999Z"  # sorts before year 1000
    for value in (datetime.now(UTC), datetime(2026, 6, 1, 12, tzinfo=paris)):
        assert utc_text(value) == value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_utc_text_is_strftime_fixed_width_text_across_years_zones_and_fractions() -> None:
    rng = random.Random(8)
    zones = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11))]
    for i in range(5_000):
        value = datetime(
            rng.randint(1, 9998),
            rng.randint(1, 12),
            rng.randint(1, 28),
            rng.randint(0, 23),
            rng.randint(0, 59),
            rng.randint(0, 59),
            0 if i % 5 == 0 else rng.randint(0, 999_999),  # whole seconds too
            tzinfo=zones[i % 3],
        )
        expected = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        year = value.astimezone(UTC).year
        expected = f"{year:04d}" + expected[expected.index("-") :]  # strftime's %Y may not pad
        assert utc_text(value) == expected, value


def _other_service(api: Api) -> RecordService:
    settings: Settings = api.service.settings
    return RecordService(open_store(settings), settings)


def test_a_key_revoked_by_another_service_fails_at_once(api: Api) -> None:
    secret = api.new_key("records:read", "types:read")
    assert api.get("/v1/types", key=secret).status_code == 200

    async def revoke() -> None:
        other = _other_service(api)
        await other.start()
        try:
            await other.revoke_key(secret)
        finally:
            await other.close()

    asyncio.run(revoke())
    r = api.get("/v1/types", key=secret)
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated"


def test_a_type_deleted_by_another_service_is_gone_at_once(api: Api) -> None:
    api.make_type()
    assert api.post(R, json={"record": {"data": {"email": "a@x"}}}).status_code == 201

    async def drop() -> None:
        other = _other_service(api)
        await other.start()
        try:
            principal = await other.authenticate(api.key)
            await other.delete_type(principal, "contact")
        finally:
            await other.close()

    asyncio.run(drop())
    r = api.post(R, json={"record": {"data": {"email": "b@x"}}})
    assert r.status_code == 404 and r.json()["code"] == "type_not_found"


def test_client_ids_are_still_checked_in_creates_and_upserts(api: Api) -> None:
    api.make_type()
    assert api.post(R, json={"record": {"id": "mine-1", "data": {}}}).status_code == 201
    r = api.post(R, json={"records": [{"data": {}}, {"id": "mine-1", "data": {}}]})
    assert r.status_code == 409 and r.json()["code"] == "duplicate_id"
    assert r.json()["errors"][0]["path"] == "/records/1/id"
    r = api.put(R + "?on=external_id", json={"records": [{"id": "mine-1", "external_id": "e1"}]})
    assert r.status_code == 409 and r.json()["code"] == "duplicate_id"
    fresh = api.post(R, json={"records": [{"data": {}} for _ in range(50)]})
    assert fresh.status_code == 201 and len({x["id"] for x in fresh.json()["records"]}) == 50


def test_duplicates_within_a_batch_of_an_unkeyed_type_point_at_the_second(api: Api) -> None:
    api.make_type()
    r = api.post(R, json={"records": [{"data": {}}, {"id": "d1"}, {"id": "d1", "data": {}}]})
    assert r.status_code == 409 and r.json()["code"] == "duplicate_id"
    assert r.json()["errors"][0]["path"] == "/records/2/id"
    batch = [{"external_id": "e1"}, {"external_id": "e2"}, {"id": "e1", "external_id": "e2"}]
    r = api.post(R, json={"records": batch})
    assert r.status_code == 409 and r.json()["key"] == "external_id"
    assert r.json()["errors"][0]["path"] == "/records/2/external_id"
    assert api.get(R).json()["records"] == []


def test_the_stored_data_is_the_written_data_after_creates_updates_and_upserts(
    api: Api,
) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}, "k": {"default": "d"}}}
    api.make_type(schema=schema)
    made = api.post(R, json={"records": [{"data": {"n": 1}}, {"external_id": "x", "data": {}}]})
    assert made.status_code == 201
    one, two = (r["id"] for r in made.json()["records"])
    assert api.get(f"{R}/{one}").json()["data"] == {"n": 1, "k": "d"}
    assert api.patch(f"{R}/{one}", json={"data": {"n": 2}}).status_code == 200
    assert api.get(f"{R}/{one}").json()["data"] == {"n": 2, "k": "d"}
    assert api.patch(f"{R}/{one}", json={"description": "only"}).status_code == 200
    assert api.get(f"{R}/{one}").json()["data"] == {"n": 2, "k": "d"}
    up = [{"external_id": "x", "data": {"n": 3}}, {"external_id": "y", "data": {"n": 4}}]
    assert api.put(R + "?on=external_id", json={"records": up}).status_code == 200
    assert api.get(f"{R}/{two}").json()["data"] == {"n": 3, "k": "d"}
    found = {r["external_id"]: r["data"] for r in api.get(R).json()["records"]}
    assert found == {None: {"n": 2, "k": "d"}, "x": {"n": 3, "k": "d"}, "y": {"n": 4, "k": "d"}}


@pytest.mark.backend("sqlite")
@pytest.mark.parametrize("threads", ["batch", "normal"])
def test_the_sqlite_store_shortens_the_gil_switch_interval_for_normal_threads(
    make_api: Any, db_url: str, threads: str
) -> None:
    """Under SCHED_BATCH the writer runs in the loop's pauses and CPython's interval stays;
    under the default policy the store shortens it (the loop waited up to 5 ms for the GIL)."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # CPython's default, whatever an earlier test left
    try:
        api = make_api(Settings(database_url=db_url, sqlite_threads=threads))
        assert api.get("/healthz").status_code == 200
        expected = GIL_SWITCH_INTERVAL if threads == "normal" else 0.005
        assert sys.getswitchinterval() == pytest.approx(expected)
    finally:
        sys.setswitchinterval(before)


def test_keyset_pages_cover_every_record_once_in_order(api: Api) -> None:
    api.make_type()
    made = api.post(R, json={"records": [{"data": {"age": i}} for i in range(250)]})
    assert made.status_code == 201
    for sort in ("created_at", "-created_at", "-updated_at,-id", "id"):
        seen: list[dict[str, object]] = []
        cursor = None
        while True:
            query = f"?limit=100&sort={sort}" + (f"&cursor={cursor}" if cursor else "")
            page = api.get(R + query).json()
            seen += page["records"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        keys = [tuple(str(r[k.lstrip("-")]) for k in (*sort.split(","), "id")) for r in seen]
        assert len({r["id"] for r in seen}) == 250
        assert keys == sorted(keys, reverse=sort.startswith("-"))


@pytest.mark.backend("sqlite")
def test_the_sqlite_store_gathers_planner_statistics_when_it_opens(api: Api) -> None:
    import sqlite3

    api.make_type(indexes=[{"name": "by_email", "fields": ["data.email"]}])
    assert api.post(R, json={"records": [{"data": {"email": f"{i}@x"}} for i in range(20)]})
    path = api.service.store.path

    async def reopen() -> None:
        other = _other_service(api)
        await other.start()
        await other.close()

    asyncio.run(reopen())
    conn = sqlite3.connect(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT tbl FROM sqlite_stat1")}
    finally:
        conn.close()
    assert "records" in tables


def test_request_ids_are_unique_ulid_shaped_and_differ_per_process() -> None:
    from recordbase.core.clock import _RequestIds

    ids = _RequestIds()
    made = [ids() for _ in range(5_000)]
    assert len(set(made)) == len(made) and made == sorted(made)
    for text in (made[0], made[-1]):
        assert len(text) == 26 and str(ULID.from_str(text)) == text
    other = _RequestIds()  # another process's prefix: its time and 30 random bits
    assert other()[:16] != made[0][:16]
    ids._next = iter([10_000_000_000]).__next__  # the counter ran out: a new prefix, from 0
    renewed = ids()
    assert renewed[:16] != made[0][:16] and renewed.endswith("0000000000")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a forked child makes its own prefix
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 26)[:16] != new_request_id()[:16].encode()


def test_limit_headers_are_encoded_once_and_answer_what_the_face_makes() -> None:
    from recordbase.ratelimit import Decision
    from recordbase.web.faces.zendesk.errors import limit_headers as zendesk_limit_headers
    from recordbase.web.middleware import limit_header_bytes, standard_limit_headers

    for make in (standard_limit_headers, zendesk_limit_headers):
        for decision in (Decision(True, 100, 99, 1, 0), Decision(False, 100, 0, 60, 3)):
            want = [(k.lower().encode(), v.encode()) for k, v in make(decision).items()]
            assert limit_header_bytes(make, decision) == want
            assert limit_header_bytes(make, decision) is limit_header_bytes(make, decision)
    assert limit_header_bytes(standard_limit_headers, Decision(True, 100, 98, 1, 0)) == [
        (b"ratelimit-limit", b"100"),
        (b"ratelimit-remaining", b"98"),
        (b"ratelimit-reset", b"1"),
    ]


def test_a_record_of_data_alone_is_made_as_the_general_way_makes_it() -> None:
    """RecordMaker.make's short way (plain type, `{"data": ...}` alone) answers exactly what
    the general way answers: the same record for valid data, the same errors otherwise."""
    from recordbase.core.records import RecordInput, parse_record_input
    from recordbase.core.types import RecordType, parse_type_definition
    from recordbase.core.validation import compile_validator
    from recordbase.core.writes import RecordMaker
    from recordbase.errors import RecordbaseError

    definition = parse_type_definition(
        {
            "key": "plain",
            "schema": {
                "type": "object",
                "properties": {"n": {"type": "integer"}, "s": {"type": "string"}},
                "required": ["n"],
                "additionalProperties": False,
            },
        }
    )
    now = datetime(2026, 12, 6, tzinfo=UTC)
    rtype = RecordType("01T", "p", definition, 1, now, now)
    validate = compile_validator(rtype.schema)

    def maker(plain: bool) -> RecordMaker:
        ids = iter(f"01K{i:023d}" for i in range(100)).__next__
        made = RecordMaker(rtype, validate, 40, "actor", now, ids)
        assert made.plain  # a type without naming or shaping
        made.plain = plain
        return made

    cases: list[dict[str, Any]] = [
        {"data": {"n": 1}},
        {"data": {"n": 2, "s": "é"}},
        {"data": {"s": "no n"}},  # invalid: the errors
        {"data": {"n": 3, "x": True}},  # invalid: not allowed
        {"data": {"n": 4, "s": "x" * 60}},  # over the 40-byte limit
        {"data": {"n": 5}, "owner": "o"},  # more than data: the general way
        {"data": {"n": 6}, "attachments": None},
    ]
    for i, body in enumerate(cases):
        answers = []
        for plain in (True, False):
            errors: list[Any] = []
            item: RecordInput = parse_record_input(body, f"/records/{i}", errors)
            try:
                record = maker(plain).make(item, f"/records/{i}", errors)
                answers.append(("made", record, record.data_json, [e.as_dict() for e in errors]))
            except RecordbaseError as exc:
                answers.append(("raised", type(exc), str(exc), exc.errors))
        assert answers[0] == answers[1], body
    assert answers[0][0] == "made"
