"""An acknowledged write is never lost, even when the process is killed right after."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.server import admin_headers, run_server


def test_acknowledged_writes_survive_sigkill(db_url: str) -> None:
    headers = admin_headers(db_url)
    acknowledged: list[str] = []
    with run_server(db_url) as server:
        client = httpx.Client(base_url=server.url, headers=headers, timeout=10)
        assert client.post("/v1/types", json={"key": "event"}).status_code == 201

        def write(i: int) -> list[str]:
            r = client.post(
                "/v1/types/event/records",
                json={"records": [{"data": {"i": i, "j": j}} for j in range(5)]},
            )
            assert r.status_code == 201, r.text
            return [rec["id"] for rec in r.json()["records"]]

        with ThreadPoolExecutor(8) as pool:
            for ids in pool.map(write, range(40)):
                acknowledged += ids
        server.kill()  # right after the last answer: nothing gets a chance to flush
        client.close()
    with run_server(db_url) as server:
        client = httpx.Client(base_url=server.url, headers=headers, timeout=10)
        stored: list[str] = []
        cursor = None
        while True:
            params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/types/event/records", params=params).json()
            stored += [r["id"] for r in page["records"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        client.close()
    assert sorted(stored) == sorted(acknowledged) and len(stored) == 200
