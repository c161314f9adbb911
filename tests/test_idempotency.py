"""Idempotency-Key: a retried write is carried out once; a reused key with a new body is 422."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from recordbase.config import Settings
from recordbase.core.idempotency import fingerprint
from tests.conftest import Api, FakeClock

R = "/v1/types/contact/records"


@pytest.fixture
def iapi(make_api: Callable[..., Api], settings: Settings) -> Api:
    api = make_api(settings)
    api.make_type("contact", unique_keys=[{"name": "by_email", "fields": ["data.email"]}])
    return api


def post(api: Api, key: str, body: Any, **kw: Any) -> Any:
    return api.post(R, json=body, headers={"Idempotency-Key": key, **kw.pop("headers", {})}, **kw)


def count(api: Api) -> int:
    return len(api.get(R, params={"limit": "1000"}).json()["records"])


def test_retry_gets_the_stored_response_without_writing(iapi: Api) -> None:
    body = {"records": [{"data": {"email": "a@x"}}, {"data": {}}]}
    first = post(iapi, "k1", body)
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    again = post(iapi, "k1", body)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["x-request-id"] != first.headers["x-request-id"]
    assert count(iapi) == 2
    assert post(iapi, "k2", {"record": {"data": {}}}).status_code == 201
    assert count(iapi) == 3


def test_same_key_different_request_is_422(iapi: Api) -> None:
    assert post(iapi, "k1", {"record": {"data": {"email": "a@x"}}}).status_code == 201
    r = post(iapi, "k1", {"record": {"data": {"email": "b@x"}}})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "idempotency_key_reused"
    r = iapi.put(
        R + "?on=by_email", json={"record": {"data": {}}}, headers={"Idempotency-Key": "k1"}
    )
    assert r.status_code == 422
    assert count(iapi) == 1


def test_keys_are_per_project_and_ignored_on_reads(iapi: Api) -> None:
    other = iapi.new_key("admin", project="p2")
    iapi.post("/v1/types", key=other, json={"key": "contact"})
    assert post(iapi, "k1", {"record": {"data": {}}}).status_code == 201
    r = iapi.post(R, key=other, json={"record": {"data": {}}}, headers={"Idempotency-Key": "k1"})
    assert r.status_code == 201 and "idempotent-replayed" not in r.headers
    r = iapi.get(R, headers={"Idempotency-Key": "k1"})
    assert r.status_code == 200 and "idempotent-replayed" not in r.headers


def test_malformed_requests_release_the_key_conflicts_keep_it(iapi: Api) -> None:
    assert post(iapi, "k1", {"records": [{"data": 5}]}).status_code == 400
    assert post(iapi, "k1", {"record": {"data": {"email": "a@x"}}}).status_code == 201
    clash = {"record": {"data": {"email": "a@x"}}}
    assert post(iapi, "k2", clash).status_code == 409
    replay = post(iapi, "k2", clash)
    assert replay.status_code == 409 and replay.headers["idempotent-replayed"] == "true"
    assert post(iapi, "k3", {"x": 1}, headers={"Idempotency-Key": ""}).status_code == 400


def test_keys_expire_after_the_ttl(iapi: Api, settings: Settings, clock: FakeClock) -> None:
    body = {"record": {"data": {}}}
    assert post(iapi, "k1", body).status_code == 201
    clock.advance(settings.idempotency_ttl_seconds + 1)
    r = post(iapi, "k1", body)
    assert r.status_code == 201 and "idempotent-replayed" not in r.headers
    assert count(iapi) == 2
    assert iapi.client.portal.call(iapi.service.idempotency.purge) == 0  # type: ignore[union-attr]
    clock.advance(settings.idempotency_ttl_seconds + 1)
    assert iapi.client.portal.call(iapi.service.idempotency.purge) == 1  # type: ignore[union-attr]


def test_a_claim_whose_request_died_lapses(iapi: Api, settings: Settings, clock: FakeClock) -> None:
    body = b'{"record": {"data": {}}}'
    p = iapi.client.portal.call(iapi.service.authenticate, iapi.key)  # type: ignore[union-attr]
    fp = fingerprint("POST", R, "", body)
    iapi.client.portal.call(iapi.service.idempotency.begin, p, "k1", fp)  # type: ignore[union-attr]
    headers = {"Idempotency-Key": "k1", "Content-Type": "application/json"}
    r = iapi.post(R, content=body, headers=headers)
    assert r.status_code == 409 and r.json()["code"] == "idempotency_in_progress"
    assert r.headers["retry-after"].isdigit()
    clock.advance(settings.idempotency_lock_seconds + 1)
    assert iapi.post(R, content=body, headers=headers).status_code == 201
    assert count(iapi) == 1


@pytest.mark.parametrize("prefer", ["", "respond-async"])
def test_concurrent_retries_write_once(iapi: Api, prefer: str) -> None:
    body = {"records": [{"data": {"email": f"{i}@x"}} for i in range(20)]}
    headers = {"Idempotency-Key": "same", "Prefer": prefer}

    def send(_: int) -> Any:
        return iapi.post(R, json=body, headers=headers)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, range(16)))
    done = [a for a in answers if a.status_code in (201, 202)]
    busy = [a for a in answers if a.status_code == 409]
    assert len(done) + len(busy) == len(answers) and done
    assert all(b.json()["code"] == "idempotency_in_progress" for b in busy)
    assert len({a.text for a in done}) == 1  # the one response, replayed
    if prefer:
        assert iapi.run_jobs() == 1
    assert count(iapi) == 20


def test_every_face_takes_the_key_and_answers_in_its_own_shape(iapi: Api) -> None:
    """The Keywords AI face: replay without a second log, 422 as {"detail": ...}."""
    log = {"model": "gpt-4o", "input": "hi", "output": "yo", "customer_identifier": "c1"}
    headers = {"Idempotency-Key": "kw-1"}
    first = iapi.post("/api/request-logs/", json=log, headers=headers)
    assert first.status_code == 201, first.text
    again = iapi.post("/api/request-logs/", json=log, headers=headers)
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    other = iapi.post("/api/request-logs/", json={**log, "input": "other"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused" and "detail" in other.json()
    listed = iapi.post(
        "/api/request-logs/list/", json={}, params={"start_time": "2000-01-01T00:00:00Z"}
    )
    assert listed.status_code == 200, listed.text
    assert len(listed.json()["results"]) == 1
