"""A published Zendesk client (python-zendesk 0.3.1, from PyPI) against a real server process.

The SDK is generated from Zendesk's OpenAPI document, so it carries that document's gaps (see
docs/research/sdks.md): it never sends a record `name` (so the object autonumbers names here),
sends no body on updates and reorder, sends both upsert keys, and can't parse the documented
count shape; those calls go through plain httpx or assert the error the API answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from zendesk import Zendesk, errors, models

from tests.server import cli, run_server

EMAIL = "agent@example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    db = str(tmp_path_factory.mktemp("zendesk") / "sdk.db")
    key = cli("keys", "create", "--project", "p1", "--scope", "admin", "--db", db).splitlines()[-1]
    with run_server(db) as running:
        yield running.url, key


def wait_for_job(client: httpx.Client, url: str) -> dict[str, Any]:
    """Poll as Zendesk clients do until the server's job worker has finished the job."""
    deadline = time.monotonic() + 30
    while True:
        status: dict[str, Any] = client.get(url).json()["job_status"]
        if status["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return status
        time.sleep(0.05)  # waiting for another process to do the work, not for time to pass


def basic_sdk(url: str, key: str) -> Zendesk:
    security = models.Security(username=f"{EMAIL}/token", password=key)
    return Zendesk(server_url=url, security=security, timeout_ms=10_000)


def test_objects_fields_and_records(server: tuple[str, str]) -> None:
    url, key = server
    with basic_sdk(url, key) as sdk:
        _objects_fields_and_records(sdk, url, key)


def _objects_fields_and_records(sdk: Zendesk, url: str, key: str) -> None:
    made = sdk.custom_objects.create_custom_object(
        request={"custom_object": {"key": "car", "title": "Car", "title_pluralized": "Cars"}}
    )
    assert made.custom_object is not None and made.custom_object.key == "car"
    assert [o.key for o in sdk.custom_objects.list_custom_objects().custom_objects or []] == ["car"]
    for field in (
        {"key": "color", "type": "text", "title": "Color"},
        {"key": "year", "type": "integer", "title": "Year"},
    ):
        created = sdk.custom_object_fields.create_custom_object_field(
            custom_object_key="car", custom_object_field=field
        )
        assert created.custom_object_field is not None
    fields = sdk.custom_object_fields.list_custom_object_fields(
        custom_object_key="car", include_standard_fields=True
    )
    assert [f.key for f in fields.result.custom_object_fields or []] == [
        "standard::name",
        "standard::external_id",
        "color",
        "year",
    ]
    limit = sdk.custom_object_fields.custom_object_fields_limit(custom_object_key="car")
    assert (limit.count, limit.limit) == (2, 100)
    # The SDK can't send a field update body nor a record name: number the names (httpx).
    auth = httpx.BasicAuth(f"{EMAIL}/token", key)
    properties = {
        "autoincrement_enabled": True,
        "autoincrement_prefix": "CAR-",
        "autoincrement_padding": 3,
    }
    response = httpx.patch(
        f"{url}/api/v2/custom_objects/car/fields/standard::name",
        json={"custom_object_field": {"properties": properties}},
        auth=auth,
    )
    assert response.status_code == 200, response.text
    recs = sdk.custom_object_records
    ids = []
    for i, color in enumerate(("red", "blue", "red")):
        rec = recs.create_custom_object_record(
            custom_object_key="car",
            custom_object_record={
                "external_id": f"ext-{i}",
                "custom_object_fields": {"color": color, "year": 2020 + i},
            },
        )
        assert rec.custom_object_record is not None
        assert rec.custom_object_record.name == f"CAR-{i + 1:03d}"
        assert rec.custom_object_record.created_by_user_id == EMAIL
        ids.append(rec.custom_object_record.id)
    shown = recs.show_custom_object_record(custom_object_key="car", custom_object_record_id=ids[0])
    assert (
        shown.custom_object_record is not None and shown.custom_object_record.external_id == "ext-0"
    )
    seen: list[str] = []
    page = recs.list_custom_object_records(custom_object_key="car", page_size=2, sort="id")
    while page is not None:
        seen += [r.id for r in page.result.custom_object_records or [] if r.id]
        page = page.next()
    assert seen == ids
    hits = recs.filtered_search_custom_object_records(
        custom_object_key="car",
        request_body={"filter": {"$and": [{"custom_object_fields.color": {"$eq": "red"}}]}},
    )
    assert [r.id for r in hits.result.custom_object_records or []] == [ids[0], ids[2]]
    found = recs.search_custom_object_records(custom_object_key="car", query="blue")
    assert [r.id for r in found.result.custom_object_records or []] == [ids[1]]
    auto = recs.autocomplete_custom_object_record_search(custom_object_key="car", name="CAR-00")
    assert len(auto.result.custom_object_records or []) == 3
    assert recs.custom_object_records_limit().count == 3
    # The SDK always sends both upsert keys, which the API refuses with a 400.
    with pytest.raises(errors.APIError) as refused:
        recs.upsert_custom_object_record_by_external_id_or_name(
            custom_object_key="car",
            external_id="ext-0",
            name="CAR-001",
            custom_object_record={"custom_object_fields": {"color": "green"}},
        )
    assert refused.value.status_code == 400
    recs.delete_custom_object_record(custom_object_key="car", custom_object_record_id=ids[2])
    with pytest.raises(errors.APIError) as missing:
        recs.show_custom_object_record(custom_object_key="car", custom_object_record_id=ids[2])
    assert missing.value.status_code == 404


def test_bulk_job_and_bearer(server: tuple[str, str]) -> None:
    url, key = server
    with (
        httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=10) as client,
        Zendesk(server_url=url, client=client) as sdk,
    ):
        _bulk_job(sdk, client, url)


def _bulk_job(sdk: Zendesk, client: httpx.Client, url: str) -> None:
    sdk.custom_objects.create_custom_object(
        request={"custom_object": {"key": "boat", "title": "Boat", "title_pluralized": "Boats"}}
    )
    client.patch(
        f"{url}/api/v2/custom_objects/boat/fields/standard::name",
        json={"custom_object_field": {"properties": {"autoincrement_enabled": True}}},
    ).raise_for_status()
    job = sdk.custom_object_records.custom_object_record_bulk_jobs(
        custom_object_key="boat",
        job={"action": "create", "items": [{"external_id": "b1"}, {"external_id": "b2"}]},
    )
    assert job.job_status is not None and job.job_status.status == "queued"
    status = wait_for_job(client, f"{url}/api/v2/job_statuses/{job.job_status.id}")
    assert [r["success"] for r in status["results"]] == [True, True]
    listed = sdk.custom_object_records.list_custom_object_records(custom_object_key="boat")
    records = listed.result.custom_object_records or []
    assert sorted(r.external_id or "" for r in records) == ["b1", "b2"]
    assert records[0].created_by_user_id is not None and records[0].created_by_user_id.startswith(
        "key:"
    )
    sdk.custom_objects.delete_custom_object(custom_object_key="boat")
