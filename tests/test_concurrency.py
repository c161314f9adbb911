"""Guarantees under concurrent requests to a real server: autonumbers, unique keys, If-Match."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.server import admin_headers, run_server


def test_concurrent_writes_keep_every_guarantee(db_url: str) -> None:
    headers = admin_headers(db_url)
    with (
        run_server(db_url) as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=30) as client,
    ):
        r = client.post(
            "/v1/types",
            json={
                "key": "ticket",
                "naming": {"mode": "autonumber", "prefix": "T-"},
                "unique_keys": [{"name": "by_ref", "fields": ["data.ref"]}],
            },
        )
        assert r.status_code == 201

        def create(i: int) -> tuple[int, list[str]]:
            body = {"records": [{"data": {"ref": f"r{i}-{j}"}} for j in range(3)]}
            r = client.post("/v1/types/ticket/records", json=body)
            return r.status_code, [x["name"] for x in r.json().get("records", [])]

        def clash(i: int) -> int:
            return client.post(
                "/v1/types/ticket/records", json={"record": {"data": {"ref": "same"}}}
            ).status_code

        with ThreadPoolExecutor(16) as pool:
            created = list(pool.map(create, range(60)))
            clashes = Counter(pool.map(clash, range(30)))
        assert all(status == 201 for status, _ in created)
        names = [n for _, batch in created for n in batch]
        assert sorted(int(n[2:]) for n in names) == list(range(1, 181))  # no gap, no duplicate
        assert clashes == Counter({201: 1, 409: 29})
        # the 29 refused writes rolled their numbers back: the one winner got the next number
        page = client.get("/v1/types/ticket/records", params={"limit": "1000"}).json()
        stored = sorted(int(r["name"][2:]) for r in page["records"])
        assert stored == list(range(1, 182))

        rec = client.post(
            "/v1/types/ticket/records", json={"record": {"data": {"ref": "v"}}}
        ).json()["records"][0]
        path = f"/v1/types/ticket/records/{rec['id']}"

        def bump(i: int) -> int:
            return client.patch(
                path, json={"data": {"n": i}}, headers={"If-Match": '"1"'}
            ).status_code

        with ThreadPoolExecutor(16) as pool:
            outcomes = Counter(pool.map(bump, range(20)))
        assert outcomes == Counter({200: 1, 412: 19})
        assert client.get(path).json()["version"] == 2
