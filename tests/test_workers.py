"""`recordbase serve --workers 3` on one PostgreSQL (and Redis), hammered on the same keys.

A real server in a subprocess on a free port; bounded bursts of concurrent httpx requests
(at most 24 in flight, a few hundred in all); then the guarantees are checked on what the
server answered and on what is stored: autonumbers without gaps or duplicates, one winner per
unique key, upserts that never duplicate, If-Match that lets exactly one writer through,
merges that lose nothing, and a shared rate-limit bucket that admits no more than its burst.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import PG_DEFAULT, REDIS_DEFAULT, require_service

WORKERS = 3
IN_FLIGHT = 24


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(url: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "recordbase.cli", *args, "--db", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def server() -> Iterator[tuple[str, str, str]]:
    """(base URL, admin key, rate-limited key) of a 3-worker server on a fresh database."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    from tests.pg import fresh_database

    for url in fresh_database(PG_DEFAULT):
        admin = _cli(
            url, "keys", "create", "--project", "p1", "--scope", "admin",
            "--rate", "100000/s", "--burst", "100000",
        )  # fmt: skip
        limited = _cli(
            url, "keys", "create", "--project", "p1", "--scope", "types:read",
            "--rate", "1/h", "--burst", "10",
        )  # fmt: skip
        port = _free_port()
        env = {**os.environ, "RECORDBASE_REDIS_URL": REDIS_DEFAULT, "RECORDBASE_LOG_LEVEL": "info"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "recordbase.cli", "serve", "--db", url, "--port", str(port),
             "--workers", str(WORKERS)],
            env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            _wait_started(proc)
            yield f"http://127.0.0.1:{port}", admin, limited
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            assert proc.stderr is not None
            proc.stderr.close()


def _wait_started(proc: subprocess.Popen[str]) -> None:
    """Block on the server's log until every worker has finished its startup."""
    assert proc.stderr is not None
    started = 0
    for line in proc.stderr:
        if "Application startup complete" in line:
            started += 1
            if started == WORKERS:
                return
        if "error" in line.lower() and "Traceback" in line:
            break
    raise AssertionError(f"server did not start (exit code {proc.poll()})")


async def _bounded(jobs: list[Awaitable[Any]]) -> list[Any]:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(job: Awaitable[Any]) -> Any:
        async with gate:
            return await job

    return await asyncio.gather(*(one(j) for j in jobs))


def test_guarantees_hold_across_workers(server: tuple[str, str, str]) -> None:
    base, admin, limited = server
    asyncio.run(_hammer(base, admin, limited))


async def _hammer(base: str, admin: str, limited: str) -> None:
    auth = {"Authorization": f"Bearer {admin}"}
    limits = httpx.Limits(max_connections=IN_FLIGHT)
    async with httpx.AsyncClient(base_url=base, headers=auth, timeout=60, limits=limits) as c:
        await _types(c)
        await _autonumbers(c)
        await _unique_key(c)
        await _upserts(c)
        await _if_match_and_merges(c)
        await _shared_bucket(c, limited)
        # Which worker accepts a new connection is the kernel's race between the workers
        # waiting on the shared socket: a worker that answers fast may win a whole burst
        # (uvloop accepts all that wait at once). Bursts of fresh connections until a second
        # worker answers, at most ten.
        close = {"Connection": "close"}
        pids: set[int] = set()
        for _ in range(10):
            answers = await _bounded([c.get("/healthz", headers=close) for _ in range(60)])
            pids |= {a.json()["pid"] for a in answers}
            if len(pids) >= 2:
                break
        assert len(pids) >= 2, "every request went to one worker"


async def _types(c: httpx.AsyncClient) -> None:
    ticket = {
        "key": "ticket",
        "schema": {"type": "object"},
        "naming": {"mode": "autonumber", "prefix": "T-", "padding": 5},
        "unique_keys": [{"name": "by_email", "fields": ["data.email"]}],
    }
    assert (await c.post("/v1/types", json=ticket)).status_code == 201


async def _autonumbers(c: httpx.AsyncClient) -> None:
    jobs = [
        c.post("/v1/types/ticket/records", json={"records": [{"data": {"i": i}}, {"data": {}}]})
        for i in range(60)
    ]
    answers = await _bounded(jobs)
    assert [a.status_code for a in answers] == [201] * 60
    names = sorted(r["name"] for a in answers for r in a.json()["records"])
    assert names == [f"T-{n:05d}" for n in range(1, 121)]  # no gaps, no duplicates
    listed = await c.get("/v1/types/ticket/records?count=true&limit=1")
    assert listed.json()["count"] == 120


async def _unique_key(c: httpx.AsyncClient) -> None:
    same = {"record": {"data": {"email": "race@example.org"}}}
    answers = await _bounded([c.post("/v1/types/ticket/records", json=same) for _ in range(40)])
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 39, codes
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"unique_violation"}


async def _upserts(c: httpx.AsyncClient) -> None:
    def body(i: int) -> dict[str, Any]:
        return {"records": [{"external_id": "ext-1", "data": {"i": i}}]}

    jobs = [c.put("/v1/types/ticket/records?on=external_id", json=body(i)) for i in range(40)]
    answers = await _bounded(jobs)
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers][:3]
    created = [a for a in answers if a.json()["created"]]
    assert len(created) == 1
    ids = {a.json()["records"][0]["id"] for a in answers}
    assert len(ids) == 1  # every upsert hit the same record
    (record_id,) = ids
    stored = (await c.get(f"/v1/types/ticket/records/{record_id}")).json()
    assert stored["version"] == 40  # one create, 39 updates, none lost


async def _if_match_and_merges(c: httpx.AsyncClient) -> None:
    made = await c.post("/v1/types/ticket/records", json={"record": {"data": {}}})
    rid = made.json()["records"][0]["id"]
    path = f"/v1/types/ticket/records/{rid}"
    guarded = [
        c.patch(path, json={"data": {"winner": i}}, headers={"If-Match": '"1"'}) for i in range(20)
    ]
    codes = sorted(a.status_code for a in await _bounded(guarded))
    assert codes == [200] + [412] * 19, codes
    merges = [c.patch(path, json={"data": {f"f{i}": True}}) for i in range(30)]
    assert {a.status_code for a in await _bounded(merges)} == {200}
    stored = (await c.get(path)).json()
    assert all(stored["data"][f"f{i}"] for i in range(30))  # no merge lost
    assert stored["version"] == 32


async def _shared_bucket(c: httpx.AsyncClient, limited: str) -> None:
    # Fresh connections spread the requests over the workers; the bucket lives in Redis.
    headers = {"Authorization": f"Bearer {limited}", "Connection": "close"}
    key = uuid.uuid4().hex  # a distinct request id per call, for the server log
    answers = await _bounded(
        [c.get("/v1/types", headers={**headers, "X-Request-Id": f"{key}-{i}"}) for i in range(40)]
    )
    codes = [a.status_code for a in answers]
    assert set(codes) <= {200, 429}
    assert codes.count(200) == 10  # burst 10, refill 1/h: never more, across all workers
    assert all("Retry-After" in a.headers for a in answers if a.status_code == 429)
