"""Keywords AI `keywordsai_api_controls.block = false`: answered at once, queued as a durable job.

The answer (202, the log's unique_id, status "pending") comes before the write: the test app
runs no job worker, so the log does not exist until `api.run_jobs()` carries the job out. Bad
input is still a 400 at once. A real server with its worker off accepts a log, is killed with
SIGKILL, and the restarted server (worker on) writes it.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.conftest import Api
from tests.server import cli, run_server

LOG = {
    "model": "gpt-4o",
    "input": '[{"role":"user","content":"hi"}]',
    "output": '{"role":"assistant","content":"yo"}',
    "usage": {"prompt_tokens": 10, "completion_tokens": 8},
    "customer_identifier": "c1",
    "keywordsai_api_controls": {"block": False},
}
SINCE = {"start_time": "2000-01-01T00:00:00Z"}


def logs(api: Api) -> list[dict[str, Any]]:
    r = api.post("/api/request-logs/list/", json={}, params=SINCE)
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    return results


def test_block_false_answers_before_the_write(api: Api) -> None:
    r = api.post("/api/request-logs/", json=LOG)
    assert r.status_code == 202, r.text
    pending = r.json()
    uid = pending["unique_id"]
    assert pending["id"] == uid and pending["status"] == "pending"
    assert pending["customer_identifier"] == "c1" and pending["organization_id"]
    assert pending["timestamp"].endswith("Z")
    # Not written yet: the answer came first.
    assert api.get(f"/api/request-logs/{uid}/").status_code == 404
    assert logs(api) == []
    job = api.get(pending["job_url"]).json()
    assert job["status"] == "queued" and job["total"] == 1 and job["id"] == pending["job_id"]

    assert api.run_jobs() == 1
    got = api.get(f"/api/request-logs/{uid}/")
    assert got.status_code == 200, got.text
    log = got.json()
    assert log["status"] == "success" and log["total_tokens"] == 18
    assert log["cost"] is not None and log["cost"] > 0
    assert log["prompt_messages"] == [{"role": "user", "content": "hi"}]
    assert log["timestamp"] == pending["timestamp"]  # the time it was received
    assert "keywordsai_api_controls" not in log
    assert api.get(pending["job_url"]).json()["results"][0]["id"] == uid


def test_block_true_and_absent_still_write_at_once(api: Api) -> None:
    for controls in ({"block": True}, None, {}):
        r = api.post("/api/request-logs/", json={**LOG, "keywordsai_api_controls": controls})
        assert r.status_code == 201, r.text
        assert api.get(f"/api/request-logs/{r.json()['unique_id']}/").status_code == 200


def test_bad_input_is_still_400_at_once(api: Api) -> None:
    cases = [
        ({**LOG, "colour": "red"}, "unknown_member", "/colour"),
        ({**LOG, "timestamp": "yesterday"}, "validation_failed", "/timestamp"),
        (
            {**LOG, "keywordsai_api_controls": {"block": "no"}},
            "validation_failed",
            "/keywordsai_api_controls/block",
        ),
        (
            {**LOG, "keywordsai_api_controls": {"block": False, "wait": 1}},
            "unknown_member",
            "/keywordsai_api_controls/wait",
        ),
        ({**LOG, "keywordsai_api_controls": []}, "validation_failed", "/keywordsai_api_controls"),
    ]
    for body, code, path in cases:
        r = api.post("/api/request-logs/", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["code"] == code and r.json()["errors"][0]["path"] == path
        assert "detail" in r.json()
    assert api.post("/api/request-logs/", content=b"{", headers={}).status_code == 400
    assert api.run_jobs() == 0  # nothing was queued
    assert logs(api) == []


def test_bulk_block_false_is_one_job(api: Api) -> None:
    body = {"logs": [{"model": "a"}, {"model": "b"}], "keywordsai_api_controls": {"block": False}}
    r = api.post("/api/request-logs/bulk/", json=body)
    assert r.status_code == 202, r.text
    answer = r.json()
    assert answer["status"] == "pending" and answer["success_count"] == 2
    uids = [p["unique_id"] for p in answer["results"]]
    assert len(set(uids)) == 2 and all(p["status"] == "pending" for p in answer["results"])
    assert logs(api) == []
    assert api.get(answer["job_url"]).json()["total"] == 2
    assert api.run_jobs() == 1
    assert sorted(log["unique_id"] for log in logs(api)) == sorted(uids)


def test_bulk_queues_when_every_log_says_block_false(api: Api) -> None:
    off = {"block": False}
    mixed = {"logs": [{"model": "a", "keywordsai_api_controls": off}, {"model": "b"}]}
    assert api.post("/api/request-logs/bulk/", json=mixed).status_code == 200  # written now
    assert len(logs(api)) == 2
    every = {"logs": [{"model": "c", "keywordsai_api_controls": off}] * 2}
    r = api.post("/api/request-logs/bulk/", json=every)
    assert r.status_code == 202, r.text
    assert len(logs(api)) == 2
    api.run_jobs()
    assert len(logs(api)) == 4


def test_bulk_block_false_bad_input_is_400_at_once(api: Api) -> None:
    body = {"logs": [{"model": "a"}, {"nope": 1}], "keywordsai_api_controls": {"block": False}}
    r = api.post("/api/request-logs/bulk/", json=body)
    assert r.status_code == 400
    assert r.json()["errors"][0]["path"] == "/logs/1/nope"
    r = api.post("/api/request-logs/bulk/", json={"logs": [], "other": 1})
    assert r.status_code == 400 and r.json()["code"] == "unknown_member"
    assert api.run_jobs() == 0


def test_a_log_the_type_refuses_is_a_400_before_queuing(api: Api) -> None:
    """The schema is checked in the request too: a refused log is never acknowledged."""
    r = api.post("/api/request-logs/", json={**LOG, "log_type": "nope"})
    assert r.status_code == 400, r.text
    assert "log_type" in r.text
    assert api.run_jobs() == 0


def test_idempotency_key_replays_the_queued_answer(api: Api) -> None:
    headers = {"Idempotency-Key": "kw-async-1"}
    first = api.post("/api/request-logs/", json=LOG, headers=headers)
    assert first.status_code == 202, first.text
    again = api.post("/api/request-logs/", json=LOG, headers=headers)
    assert again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    other = api.post("/api/request-logs/", json={**LOG, "model": "x"}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert api.run_jobs() == 1  # one job, not two
    found = logs(api)
    assert [log["unique_id"] for log in found] == [first.json()["unique_id"]]


def _wait_for(client: httpx.Client, path: str, limit: float = 60.0) -> httpx.Response:
    deadline = time.monotonic() + limit
    while True:
        r = client.get(path)
        if r.status_code != 404 or time.monotonic() > deadline:
            return r
        time.sleep(0.02)  # polling a real process, as a client would


def test_a_queued_log_survives_sigkill(db_url: str) -> None:
    out = cli("keys", "create", "--db", db_url, "--project", "p1", "--scope", "admin")
    headers = {"Authorization": f"Bearer {out.strip().splitlines()[-1]}"}
    with run_server(db_url, env={"RECORDBASE_JOB_WORKER": "false"}) as server:
        client = httpx.Client(base_url=server.url, headers=headers, timeout=10)
        r = client.post("/api/request-logs/", json=LOG)
        assert r.status_code == 202, r.text
        uid = r.json()["unique_id"]
        assert client.get(f"/api/request-logs/{uid}/").status_code == 404  # no worker ran it
        server.kill()
        client.close()
    with run_server(db_url, env={"RECORDBASE_JOB_POLL_SECONDS": "0.2"}) as server:
        client = httpx.Client(base_url=server.url, headers=headers, timeout=10)
        got = _wait_for(client, f"/api/request-logs/{uid}/")
        client.close()
    assert got.status_code == 200, got.text
    assert got.json()["customer_identifier"] == "c1" and got.json()["total_tokens"] == 18
