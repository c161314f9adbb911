"""Accepted jobs survive SIGKILL: after a restart every item is applied exactly once.

A real `recordbase serve` accepts many asynchronous batches, is killed (-9) while its worker
is in the middle of them, and is started again: the queued jobs run, the interrupted one resumes
where it stopped, and no item is applied twice. Polling the real server's status route in a
bounded loop is how a client waits for a job; nothing here waits for time to pass.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx

from tests.server import cli, run_server

JOBS = 12
ITEMS = 400
# A short lease so the restarted server resumes the interrupted job promptly; small chunks so
# the kill lands between (and inside) many transactions.
ENV = {
    "RECORDBASE_JOB_LEASE_SECONDS": "1",
    "RECORDBASE_JOB_CHUNK": "5",
    "RECORDBASE_JOB_POLL_SECONDS": "0.2",
}


def _wait(client: httpx.Client, url: str, done: Any, limit: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while True:
        job: dict[str, Any] = client.get(url).json()
        if done(job) or time.monotonic() > deadline:
            return job
        time.sleep(0.02)  # polling a real process, as a client would


def _all_records(client: httpx.Client) -> list[dict[str, Any]]:
    stored: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        page = client.get("/v1/types/event/records", params=params).json()
        stored += page["records"]
        cursor = page["next_cursor"]
        if cursor is None:
            return stored


def test_jobs_survive_sigkill_and_run_exactly_once(db_url: str) -> None:
    out = cli("keys", "create", "--db", db_url, "--project", "p1", "--scope", "admin")
    headers = {"Authorization": f"Bearer {out.strip().splitlines()[-1]}"}
    urls: list[str] = []
    with run_server(db_url, env=ENV) as server:
        client = httpx.Client(base_url=server.url, headers=headers, timeout=10)
        assert client.post("/v1/types", json={"key": "event"}).status_code == 201
        for j in range(JOBS):
            r = client.post(
                "/v1/types/event/records",
                json={"records": [{"data": {"job": j, "i": i}} for i in range(ITEMS)]},
                headers={"Prefer": "respond-async"},
            )
            assert r.status_code == 202, r.text
            urls.append(r.headers["location"])
        # Kill once the worker is inside the jobs: some items done, the last job untouched.
        first = _wait(client, urls[0], lambda job: job["processed"] > 0)
        server.kill()
        client.close()
    assert first["processed"] > 0
    with run_server(db_url, env=ENV) as server:
        client = httpx.Client(base_url=server.url, headers=headers, timeout=10)
        jobs = [_wait(client, url, lambda job: job["status"] == "completed") for url in urls]
        stored = _all_records(client)
        client.close()
    assert [job["status"] for job in jobs] == ["completed"] * JOBS
    assert all(job["succeeded"] == ITEMS and len(job["results"]) == ITEMS for job in jobs)
    assert any(job["attempts"] >= 2 for job in jobs)  # one was interrupted and resumed
    applied = Counter((r["data"]["job"], r["data"]["i"]) for r in stored)
    assert len(stored) == JOBS * ITEMS
    assert set(applied.values()) == {1}
    # Every result points at a record that exists, and no record is claimed by two results.
    result_ids = [r["id"] for job in jobs for r in job["results"]]
    assert sorted(result_ids) == sorted(r["id"] for r in stored)


def test_several_workers_share_the_queue(db_url: str) -> None:
    out = cli("keys", "create", "--db", db_url, "--project", "p1", "--scope", "admin")
    headers = {"Authorization": f"Bearer {out.strip().splitlines()[-1]}"}
    with run_server(db_url, workers=3, env=ENV) as server:
        client = httpx.Client(base_url=server.url, headers=headers, timeout=10)
        assert client.post("/v1/types", json={"key": "event"}).status_code == 201
        urls = []
        for j in range(JOBS):
            r = client.post(
                "/v1/types/event/records",
                json={"records": [{"data": {"job": j, "i": i}} for i in range(40)]},
                headers={"Prefer": "respond-async"},
            )
            assert r.status_code == 202, r.text
            urls.append(r.headers["location"])
        jobs = [_wait(client, url, lambda job: job["status"] == "completed") for url in urls]
        stored = _all_records(client)
        client.close()
    assert all(job["status"] == "completed" for job in jobs)
    applied = Counter((r["data"]["job"], r["data"]["i"]) for r in stored)
    assert len(stored) == JOBS * 40 and set(applied.values()) == {1}
