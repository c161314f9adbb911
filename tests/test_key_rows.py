"""Writes look for unique-key rows only where a type can have them: a type without unique
names or declared unique keys updates and deletes records without touching `record_keys`,
while a keyed type's changed and deleted records free their old values."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api

SCHEMA = {"type": "object", "properties": {"email": {"type": "string"}}}


def _traced(api: Api) -> list[str]:
    """Every statement the SQLite writer runs from now on."""
    statements: list[str] = []

    def install(tx: Any) -> None:
        tx.conn.set_trace_callback(statements.append)

    api.client.portal.call(lambda: api.service.store.write(install))  # type: ignore[union-attr]
    return statements


def _create(api: Api, key: str, email: str) -> Any:
    return api.post(f"/v1/types/{key}/records", json={"record": {"data": {"email": email}}})


@pytest.mark.backend("sqlite")  # the writer's statement trace is SQLite's
def test_a_type_without_keys_never_touches_key_rows(api: Api) -> None:
    api.make_type("plain", schema=SCHEMA)
    statements = _traced(api)
    rid = _create(api, "plain", "a@x.org").json()["records"][0]["id"]
    path = f"/v1/types/plain/records/{rid}"
    assert api.patch(path, json={"data": {"email": "b@x.org"}}).status_code == 200
    assert (
        api.put(
            "/v1/types/plain/records?on=external_id",
            json={"records": [{"external_id": "e1", "data": {"email": "c@x.org"}}]},
        ).status_code
        == 200
    )
    assert api.delete(path).status_code in (200, 204)
    assert any("UPDATE records" in s for s in statements), statements
    assert any("DELETE FROM records" in s for s in statements), statements
    assert not [s for s in statements if "record_keys" in s]


def test_a_keyed_type_frees_the_values_its_records_leave(api: Api) -> None:
    api.make_type(
        "keyed", schema=SCHEMA, unique_keys=[{"name": "by_email", "fields": ["data.email"]}]
    )
    first = _create(api, "keyed", "a@x.org").json()["records"][0]["id"]
    assert _create(api, "keyed", "a@x.org").status_code == 409
    path = f"/v1/types/keyed/records/{first}"
    assert api.patch(path, json={"data": {"email": "b@x.org"}}).status_code == 200
    assert _create(api, "keyed", "a@x.org").status_code == 201  # freed by the change
    assert _create(api, "keyed", "b@x.org").status_code == 409
    assert api.delete(path).status_code in (200, 204)
    assert _create(api, "keyed", "b@x.org").status_code == 201  # freed by the delete
