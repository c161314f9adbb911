"""Zendesk face: bulk record jobs (all six actions) and job statuses."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api
from tests.zendesk_helpers import CO, create, make_car, set_name


def run_job(api: Api, action: str, items: list[Any], obj: str = "car") -> dict[str, Any]:
    response = api.post(f"{CO}/{obj}/jobs", json={"job": {"action": action, "items": items}})
    assert response.status_code == 201, response.text
    posted = response.json()["job_status"]
    assert posted["status"] == "queued" and posted["total"] == len(items)
    assert posted["results"] is None and posted["progress"] == 0
    api.run_jobs()
    shown = api.get(f"/api/v2/job_statuses/{posted['id']}")
    assert shown.status_code == 200
    status: dict[str, Any] = shown.json()["job_status"]
    assert status["url"] == posted["url"]
    assert status["status"] == "completed" and status["progress"] == len(items)
    return status


def test_create_update_delete_jobs(api: Api) -> None:
    make_car(api)
    created = run_job(
        api,
        "create",
        [
            {"name": "2020 Tesla", "custom_object_fields": {"make": "Tesla", "year": 2020}},
            {
                "name": "2012 Toyota",
                "custom_object_fields": {"external_id": "ddd444", "year": 2012},
            },
            {"name": "1999 ?", "custom_object_fields": {"year": "new"}},
        ],
    )
    results = created["results"]
    assert [r["success"] for r in results] == [True, True, False]
    assert results[0]["status"] == "Created" and results[2]["error"] == "RecordInvalid"
    assert "custom_object_fields.year" in results[2]["details"]
    toyota = api.get(f"{CO}/car/records", params={"filter[external_ids]": "ddd444"})
    assert [r["id"] for r in toyota.json()["custom_object_records"]] == [results[1]["id"]]
    tesla = results[0]["id"]
    updated = run_job(
        api, "update", [{"id": tesla, "custom_object_fields": {"model": "S"}}, {"id": "nope"}]
    )
    assert [r["success"] for r in updated["results"]] == [True, False]
    assert updated["results"][1]["error"] == "RecordNotFound"
    record = api.get(f"{CO}/car/records/{tesla}").json()["custom_object_record"]
    assert (
        record["custom_object_fields"]["model"] == "S"
        and record["custom_object_fields"]["make"] == "Tesla"
    )
    deleted = run_job(api, "delete", [tesla])
    assert deleted["results"][0] == {
        "index": 0,
        "id": tesla,
        "action": "delete",
        "success": True,
        "status": "Deleted",
    }
    by_ext = run_job(api, "delete_by_external_id", ["ddd444", {"external_id": "missing"}])
    assert [r["success"] for r in by_ext["results"]] == [True, False]
    assert api.get(f"{CO}/car/records/count").json()["count"]["value"] == 0


def test_upsert_jobs(api: Api) -> None:
    make_car(api)
    first = run_job(
        api,
        "create_or_update_by_external_id",
        [{"external_id": "e1", "name": "one", "custom_object_fields": {"make": "VW"}}],
    )
    rid = first["results"][0]["id"]
    again = run_job(
        api,
        "create_or_update_by_external_id",
        [{"external_id": "e1", "custom_object_fields": {"model": "Golf"}}],
    )
    assert again["results"][0]["id"] == rid
    fields = api.get(f"{CO}/car/records/{rid}").json()["custom_object_record"][
        "custom_object_fields"
    ]
    assert fields["make"] == "VW" and fields["model"] == "Golf"
    refused = api.post(
        f"{CO}/car/jobs",
        json={"job": {"action": "create_or_update_by_name", "items": [{"name": "one"}]}},
    )
    assert refused.status_code == 400  # the name field is not unique
    make_car_unique = "boat"
    api.post(
        CO,
        json={
            "custom_object": {"key": make_car_unique, "title": "Boat", "title_pluralized": "Boats"}
        },
    )
    set_name(api, "boat", is_unique=True)
    by_name = run_job(
        api, "create_or_update_by_name", [{"name": "Nautilus"}, {"name": "Nautilus"}], obj="boat"
    )
    assert by_name["results"][0]["id"] == by_name["results"][1]["id"]


def test_job_limits_and_errors(api: Api) -> None:
    make_car(api)
    create(api, name="x")
    too_many = [{"name": f"n{i}"} for i in range(101)]
    response = api.post(f"{CO}/car/jobs", json={"job": {"action": "create", "items": too_many}})
    assert response.status_code == 422 and "job.items" in response.json()["details"]
    bad = api.post(f"{CO}/car/jobs", json={"job": {"action": "explode", "items": [1]}})
    assert bad.status_code == 422 and "job.action" in bad.json()["details"]
    # Zendesk-shape problems in any item refuse the whole job before it is queued.
    nameless = api.post(
        f"{CO}/car/jobs", json={"job": {"action": "create", "items": [{"name": "a"}, {}]}}
    )
    assert nameless.status_code == 422 and "job.items.1.name" in nameless.json()["details"]
    unknown = api.post(
        f"{CO}/car/jobs", json={"job": {"action": "delete", "items": [{"name": "a"}]}}
    )
    assert unknown.status_code == 422 and "job.items.0" in unknown.json()["details"]
    missing = api.get("/api/v2/job_statuses/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "RecordNotFound"
    job = api.post(f"{CO}/car/jobs", json={"job": {"action": "delete", "items": ["x"]}}).json()
    # zenpy asks for /job_statuses/{id}.json
    assert api.get(f"/api/v2/job_statuses/{job['job_status']['id']}.json").status_code == 200
    other = api.new_key("admin", project="p2")
    assert api.get(f"/api/v2/job_statuses/{job['job_status']['id']}", key=other).status_code == 404
