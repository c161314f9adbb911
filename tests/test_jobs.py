"""Jobs: Prefer: respond-async on the native write routes, GET /v1/jobs/{id}, exactly once.

The background worker is off in tests (conftest `settings`): they carry jobs out with
`api.run_jobs()`, so nothing depends on timing. tests/test_jobs_crash.py covers the worker of a real server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from recordbase.config import Settings
from recordbase.core.jobs import JobLeaseLost, principal_from_dict
from tests.conftest import Api, FakeClock

R = "/v1/types/contact/records"
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def japi(make_api: Callable[..., Api], settings: Settings) -> Api:
    api = make_api(settings.replace(job_chunk=3))
    api.make_type("contact", unique_keys=[{"name": "by_email", "fields": ["data.email"]}])
    return api


def run_jobs(api: Api) -> int:
    return api.run_jobs()


def all_records(api: Api) -> list[dict[str, Any]]:
    r = api.get(R, params={"limit": "1000"})
    assert r.status_code == 200, r.text
    records: list[dict[str, Any]] = r.json()["records"]
    return records


def submit(api: Api, method: str, path: str, **kw: Any) -> dict[str, Any]:
    r = api.request(method, path, headers={**ASYNC, **kw.pop("headers", {})}, **kw)
    assert r.status_code == 202, r.text
    job: dict[str, Any] = r.json()
    assert r.headers["location"] == job["url"] == f"/v1/jobs/{job['id']}"
    assert r.headers["preference-applied"] == "respond-async"
    return job


def test_async_create_is_stored_then_carried_out(japi: Api) -> None:
    records = [{"data": {"email": f"{i}@x"}, "external_id": f"e{i}"} for i in range(7)]
    job = submit(japi, "POST", R, json={"records": records})
    assert job["status"] == "queued" and job["total"] == 7 and job["processed"] == 0
    assert japi.get(job["url"]).json()["results"] == []
    assert all_records(japi) == []
    assert run_jobs(japi) == 1
    done = japi.get(job["url"]).json()
    assert done["status"] == "completed" and done["succeeded"] == 7 and done["progress"] == 1.0
    assert [r["index"] for r in done["results"]] == list(range(7))
    stored = {r["external_id"]: r["id"] for r in all_records(japi)}
    assert {r["external_id"]: r["id"] for r in done["results"]} == stored
    assert all(r["ok"] and r["action"] == "create" for r in done["results"])
    assert run_jobs(japi) == 0  # nothing is carried out twice


def test_each_item_succeeds_or_fails_on_its_own(japi: Api) -> None:
    job = submit(
        japi,
        "POST",
        R,
        json={
            "records": [
                {"data": {"email": "a@x"}},
                {"data": {"email": "b@x"}},
                {"data": {"email": "a@x"}},
                {"data": {"email": "c@x"}},
            ]
        },
    )
    # One item clashes with another only once they are applied: it fails on its own.
    japi.post(R, json={"record": {"data": {"email": "b@x"}}})
    run_jobs(japi)
    done = japi.get(job["url"]).json()
    assert done["status"] == "completed"
    assert (done["succeeded"], done["failed"]) == (2, 2)
    ok = [r["ok"] for r in done["results"]]
    assert ok == [True, False, False, True]
    assert done["results"][1]["error"]["code"] == "unique_violation"
    assert done["results"][2]["error"]["code"] == "unique_violation"
    assert sorted(r["data"]["email"] for r in all_records(japi)) == ["a@x", "b@x", "c@x"]


def test_bad_jobs_are_refused_before_acceptance(japi: Api) -> None:
    r = japi.post(R, headers=ASYNC, json={"records": [{"data": {}}, {"data": 5, "color": 1}]})
    assert r.status_code == 400
    assert {e["path"] for e in r.json()["errors"]} == {"/records/1/data", "/records/1/color"}
    # Data the schema refuses is a 400 before acceptance too, as for a synchronous create.
    r = japi.post(R, headers=ASYNC, json={"records": [{"data": {"email": "b@x", "age": -1}}]})
    assert r.status_code == 400 and r.json()["errors"][0]["path"] == "/records/0/data/age"
    r = japi.post("/v1/types/nope/records", headers=ASYNC, json={"records": [{"data": {}}]})
    assert r.status_code == 404 and r.json()["code"] == "type_not_found"
    r = japi.put(R + "?on=by_nothing", headers=ASYNC, json={"records": [{"data": {}}]})
    assert r.status_code == 400 and "by_email" in r.json()["valid"]
    reader = japi.new_key("records:read")
    r = japi.post(R, key=reader, headers=ASYNC, json={"records": [{"data": {}}]})
    assert r.status_code == 403
    assert run_jobs(japi) == 0


def test_async_upsert_update_and_delete(japi: Api) -> None:
    upsert = submit(
        japi,
        "PUT",
        R + "?on=by_email",
        json={"records": [{"data": {"email": "a@x", "age": 1}}, {"data": {"email": "b@x"}}]},
    )
    run_jobs(japi)
    results = japi.get(upsert["url"]).json()["results"]
    assert [r["action"] for r in results] == ["create", "create"]
    a_id = results[0]["id"]
    again = submit(japi, "PUT", R + "?on=by_email", json={"record": {"data": {"email": "a@x"}}})
    patch = submit(japi, "PATCH", f"{R}/{a_id}", json={"data": {"age": 5}})
    stale = submit(
        japi, "PATCH", f"{R}/{a_id}", json={"data": {"age": 9}}, headers={"If-Match": '"1"'}
    )
    assert run_jobs(japi) == 3
    assert japi.get(again["url"]).json()["results"][0]["action"] == "update"
    assert japi.get(patch["url"]).json()["results"][0]["version"] == 3
    failed = japi.get(stale["url"]).json()["results"][0]
    assert failed["error"]["code"] == "version_mismatch"
    record = japi.get(f"{R}/{a_id}").json()
    assert record["data"] == {"email": "a@x", "age": 5}
    delete = submit(japi, "DELETE", f"{R}/{a_id}")
    run_jobs(japi)
    assert japi.get(delete["url"]).json()["results"][0]["action"] == "delete"
    assert japi.get(f"{R}/{a_id}").status_code == 404


def test_job_whose_type_is_gone_fails_as_a_whole(japi: Api) -> None:
    job = submit(japi, "POST", R, json={"records": [{"data": {}}]})
    assert japi.delete("/v1/types/contact").status_code == 204
    run_jobs(japi)
    done = japi.get(job["url"]).json()
    assert done["status"] == "failed" and done["error"]["code"] == "type_not_found"


def test_jobs_belong_to_their_project(japi: Api) -> None:
    job = submit(japi, "POST", R, json={"records": [{"data": {}}]})
    other = japi.new_key("admin", project="p2")
    r = japi.get(job["url"], key=other)
    assert r.status_code == 404 and r.json()["code"] == "job_not_found"
    assert japi.get("/v1/jobs/nope").json()["code"] == "job_not_found"


def test_a_dead_workers_job_is_resumed_without_repeating_items(
    japi: Api, make_api: Callable[..., Api], settings: Settings, clock: FakeClock
) -> None:
    """Worker B claims the job, applies one chunk and "dies"; A resumes it after the lease."""
    other = make_api(settings.replace(job_chunk=3))
    job = submit(japi, "POST", R, json={"records": [{"data": {"n": i}} for i in range(8)]})
    b = other.service.jobs
    portal = other.client.portal
    claimed, submitter = portal.call(b._claim)
    p = principal_from_dict(submitter)
    items = portal.call(
        lambda: other.service.store.read(lambda tx: tx.pending_job_items(job["id"], 3))
    )
    portal.call(b._apply_chunk, claimed, p, items)
    assert len(all_records(japi)) == 3
    assert run_jobs(japi) == 0  # B's lease still holds
    clock.advance(settings.job_lease_seconds + 1)
    assert run_jobs(japi) == 1
    done = japi.get(job["url"]).json()
    assert done["status"] == "completed" and done["succeeded"] == 8 and done["attempts"] == 2
    assert sorted(r["data"]["n"] for r in all_records(japi)) == list(range(8))
    # B wakes up and carries on with an item it had read: its lease is gone, nothing is written.
    with pytest.raises(JobLeaseLost):
        portal.call(b._apply, claimed, p, [(5, {"data": {"n": 5}})])
    assert len(all_records(japi)) == 8
