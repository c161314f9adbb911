"""`recordbase serve --workers 3` on one PostgreSQL (and Redis), hammered on the same keys.

A real server in a subprocess on a free port; bounded bursts of concurrent httpx requests
(at most 24 in flight, a few hundred in all); then the guarantees are checked on what the
server answered and on what is stored: autonumbers without gaps or duplicates, one winner per
unique key, upserts that never duplicate, If-Match that lets exactly one writer through,
merges that lose nothing, and a shared rate-limit bucket that admits no more than its burst.

Each burst goes out over keep-alive connections that were spread over the workers first
(`_Pool`): a TCP connection is served by one worker for its life, so the local port of each
answer tells which worker answered it, and every burst must have been answered by at least
two workers — otherwise the race under test would have run inside one process.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
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


def _local_port(answer: httpx.Response) -> int:
    """The client-side port of the TCP connection that carried `answer`."""
    return int(answer.extensions["network_stream"].get_extra_info("client_addr")[1])


Job = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


class _Pool:
    """IN_FLIGHT one-connection clients whose connections landed on at least two workers.

    `race` sends job i over client i % n, all clients at once, and then fails unless the
    answers came from two workers or more (each connection's worker asked after the burst,
    on the same connection: `/healthz` answers with the worker's pid)."""

    def __init__(self, base: str, auth: dict[str, str]) -> None:
        self.base, self.auth = base, auth
        self.clients: list[httpx.AsyncClient] = []

    def _client(self) -> httpx.AsyncClient:
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        return httpx.AsyncClient(base_url=self.base, headers=self.auth, timeout=60, limits=one)

    async def open(self) -> None:
        by_pid: dict[int, list[httpx.AsyncClient]] = {}
        for _ in range(20 * IN_FLIGHT):  # a new connection each: the kernel picks its worker
            client = self._client()
            pid = (await client.get("/healthz")).json()["pid"]
            mine = by_pid.setdefault(pid, [])
            if len(mine) >= IN_FLIGHT:
                await client.aclose()
                continue
            mine.append(client)
            if len(by_pid) >= 2 and sum(map(len, by_pid.values())) >= IN_FLIGHT:
                break
        assert len(by_pid) >= 2, "every connection went to one worker"
        # Interleaved by worker, so that each worker gets a share of every burst.
        queues = list(by_pid.values())
        while any(queues):
            self.clients += [q.pop(0) for q in queues if q]

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()

    async def race(self, jobs: list[Job]) -> list[httpx.Response]:
        n = len(self.clients)
        mine: list[list[tuple[int, Job]]] = [[] for _ in range(n)]
        for i, job in enumerate(jobs):
            mine[i % n].append((i, job))
        answers: list[httpx.Response | None] = [None] * len(jobs)

        async def run(client: httpx.AsyncClient, share: list[tuple[int, Job]]) -> None:
            for i, job in share:
                answers[i] = await job(client)

        await asyncio.gather(*(run(c, share) for c, share in zip(self.clients, mine, strict=True)))
        workers: dict[int, int] = {}  # local port -> worker pid, asked after the burst
        for client, share in zip(self.clients, mine, strict=True):
            if share:
                health = await client.get("/healthz")
                workers[_local_port(health)] = health.json()["pid"]
        done = [a for a in answers if a is not None]
        served = {workers[p] for p in map(_local_port, done) if p in workers}
        assert len(served) >= 2, f"one worker answered the whole burst: {served}"
        return done


def test_guarantees_hold_across_workers(server: tuple[str, str, str]) -> None:
    base, admin, limited = server
    asyncio.run(_hammer(base, admin, limited))


async def _hammer(base: str, admin: str, limited: str) -> None:
    auth = {"Authorization": f"Bearer {admin}"}
    limits = httpx.Limits(max_connections=IN_FLIGHT)
    pool = _Pool(base, auth)
    async with httpx.AsyncClient(base_url=base, headers=auth, timeout=60, limits=limits) as c:
        await pool.open()
        try:
            await _types(c)
            await _autonumbers(c, pool)
            await _unique_key(pool)
            await _upserts(c, pool)
            await _if_match_and_merges(c, pool)
            await _shared_bucket(pool, limited)
        finally:
            await pool.close()


async def _types(c: httpx.AsyncClient) -> None:
    ticket = {
        "key": "ticket",
        "schema": {"type": "object"},
        "naming": {"mode": "autonumber", "prefix": "T-", "padding": 5},
        "unique_keys": [{"name": "by_email", "fields": ["data.email"]}],
    }
    assert (await c.post("/v1/types", json=ticket)).status_code == 201


def _post(path: str, body: Any) -> Job:
    return lambda c: c.post(path, json=body)


async def _autonumbers(c: httpx.AsyncClient, pool: _Pool) -> None:
    jobs = [
        _post("/v1/types/ticket/records", {"records": [{"data": {"i": i}}, {"data": {}}]})
        for i in range(60)
    ]
    answers = await pool.race(jobs)
    assert [a.status_code for a in answers] == [201] * 60
    names = sorted(r["name"] for a in answers for r in a.json()["records"])
    assert names == [f"T-{n:05d}" for n in range(1, 121)]  # no gaps, no duplicates
    listed = await c.get("/v1/types/ticket/records?count=true&limit=1")
    assert listed.json()["count"] == 120


async def _unique_key(pool: _Pool) -> None:
    same = {"record": {"data": {"email": "race@example.org"}}}
    answers = await pool.race([_post("/v1/types/ticket/records", same) for _ in range(40)])
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 39, codes
    assert {a.json()["code"] for a in answers if a.status_code == 409} == {"unique_violation"}


async def _upserts(c: httpx.AsyncClient, pool: _Pool) -> None:
    def put(i: int) -> Job:
        body = {"records": [{"external_id": "ext-1", "data": {"i": i}}]}
        return lambda c: c.put("/v1/types/ticket/records?on=external_id", json=body)

    answers = await pool.race([put(i) for i in range(40)])
    assert {a.status_code for a in answers} == {200}, [a.text for a in answers][:3]
    created = [a for a in answers if a.json()["created"]]
    assert len(created) == 1
    ids = {a.json()["records"][0]["id"] for a in answers}
    assert len(ids) == 1  # every upsert hit the same record
    (record_id,) = ids
    stored = (await c.get(f"/v1/types/ticket/records/{record_id}")).json()
    assert stored["version"] == 40  # one create, 39 updates, none lost


async def _if_match_and_merges(c: httpx.AsyncClient, pool: _Pool) -> None:
    made = await c.post("/v1/types/ticket/records", json={"record": {"data": {}}})
    rid = made.json()["records"][0]["id"]
    path = f"/v1/types/ticket/records/{rid}"

    def guarded(i: int) -> Job:
        return lambda c: c.patch(path, json={"data": {"winner": i}}, headers={"If-Match": '"1"'})

    def merge(i: int) -> Job:
        return lambda c: c.patch(path, json={"data": {f"f{i}": True}})

    codes = sorted(a.status_code for a in await pool.race([guarded(i) for i in range(20)]))
    assert codes == [200] + [412] * 19, codes
    assert {a.status_code for a in await pool.race([merge(i) for i in range(30)])} == {200}
    stored = (await c.get(path)).json()
    assert all(stored["data"][f"f{i}"] for i in range(30))  # no merge lost
    assert stored["version"] == 32


async def _shared_bucket(pool: _Pool, limited: str) -> None:
    # The pool's connections reach two workers or more; the bucket lives in Redis.
    headers = {"Authorization": f"Bearer {limited}"}
    key = uuid.uuid4().hex  # a distinct request id per call, for the server log

    def get(i: int) -> Job:
        return lambda c: c.get("/v1/types", headers={**headers, "X-Request-Id": f"{key}-{i}"})

    answers = await pool.race([get(i) for i in range(40)])
    codes = [a.status_code for a in answers]
    assert set(codes) <= {200, 429}
    assert codes.count(200) == 10  # burst 10, refill 1/h: never more, across all workers
    assert all("Retry-After" in a.headers for a in answers if a.status_code == 429)
