"""Record writes keep every value on both stores (PostgreSQL sends a batch as one JSON array
unpacked by json_to_recordset, see stores/postgres_tx.py), and text PostgreSQL cannot store
is a clear 400, never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api

R = "/v1/types/contact/records"

ODD_DATA: list[dict[str, Any]] = [
    {"email": 'quote " backslash \\ slash / tab \t newline \n', "age": 0},
    {"email": "é ü 中文 🎉 \u2028", "score": 0.1, "tags": []},
    {"score": 1e300, "age": 9_223_372_036_854_775_807, "address": {}},
    {"score": -2.5e-300, "tags": ["a", "", "b"], "address": {"city": ""}, "extra": None},
    {"born": "2026-01-02T03:04:05.123456+02:00", "extra": {"deep": [[{"x": [1, 2.5]}]]}},
]


def test_a_batch_keeps_every_value_and_reads_back_the_same(api: Api) -> None:
    api.make_type(unique_keys=[{"name": "by_email", "fields": ["data.email"]}])
    items = [
        {
            "data": data,
            "name": f"n{i} ✓",
            "external_id": f"x-{i}",
            "owner": "o'neil",
            "description": "line\nbreak" if i % 2 else None,
            "attachments": [{"url": f"https://e.x/{i}", "size": i}] if i % 2 else [],
        }
        for i, data in enumerate(ODD_DATA)
    ]
    r = api.post(R, json={"records": items})
    assert r.status_code == 201, r.text
    created = r.json()["records"]
    for item, made in zip(items, created, strict=True):
        got = api.get(f"{R}/{made['id']}")
        assert got.status_code == 200
        assert got.json() == made
        for field in ("data", "name", "external_id", "owner", "description", "attachments"):
            assert made[field] == item[field]
    # the key rows went in with the records: a second record with a taken email is refused
    clash = api.post(R, json={"record": {"data": {"email": ODD_DATA[1]["email"]}}})
    assert clash.status_code == 409
    # and a single create, then a batch again (other statement sizes, the same statement)
    for n in (1, 3, 1):
        more = [{"data": {"age": n, "tags": [str(j)]}} for j in range(n)]
        r = api.post(R, json={"records": more})
        assert r.status_code == 201
        for made in r.json()["records"]:
            assert api.get(f"{R}/{made['id']}").json() == made


@pytest.mark.parametrize(
    "record",
    [
        {"data": {"email": "a\u0000b"}},
        {"data": {"address": {"city": "\u0000"}}},
        {"data": {}, "description": "x\u0000"},
        {"data": {}, "name": "\u0000"},
    ],
)
def test_a_nul_character_is_a_clear_error_on_postgres_never_a_500(
    api: Api, db_url: str, record: dict[str, Any]
) -> None:
    api.make_type()
    r = api.post(R, json={"record": record})
    if db_url.startswith("postgresql"):
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "validation_failed"
        assert "U+0000" in r.json()["detail"]
    else:
        assert r.status_code == 201, r.text
    ok = api.post(R, json={"record": {"data": {"email": "fine"}}})
    assert ok.status_code == 201
    patched = api.patch(f"{R}/{ok.json()['records'][0]['id']}", json=record)
    assert patched.status_code in ((400,) if db_url.startswith("postgresql") else (200,))


def test_a_call_that_starts_with_the_type_check_is_still_one_whole_transaction(
    db_url: str,
) -> None:
    """On PostgreSQL the type-version check carries the call's BEGIN (stores/postgres_tx.py):
    what follows it commits with it or rolls back with it, and reads stay read-only."""
    from tests.test_store_contract import make_type, record, run, setup_type

    class Boom(Exception):
        pass

    async def body(store: Any) -> None:
        rtype = make_type()
        await setup_type(store, rtype)

        def fails(tx: Any) -> None:
            assert tx.type_version(rtype.id) == 1
            tx.insert_records(rtype, [record(1)], [])
            raise Boom

        with pytest.raises(Boom):
            await store.write(fails)

        def works(tx: Any) -> int | None:
            version = tx.type_version(rtype.id)
            tx.insert_records(rtype, [record(2), record(3)], [])
            return version

        assert await store.write(works) == 1
        ids = await store.read(
            lambda tx: (
                tx.type_version(rtype.id),
                [r.id for r in tx.get_records(rtype, ["R0001", "R0002", "R0003"])],
            )
        )
        assert ids == (1, ["R0002", "R0003"])
        assert await store.read(lambda tx: tx.type_version("nope")) is None
        if store.dialect == "postgres":
            import psycopg

            def sneaky(tx: Any) -> None:
                tx.type_version(rtype.id)
                tx.insert_records(rtype, [record(4)], [])

            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                await store.read(sneaky)

    run(db_url, body)
