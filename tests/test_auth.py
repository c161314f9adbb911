"""API keys and scopes over HTTP: 401s, 403s, revocation, expiry, narrowed scopes."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import Api, FakeClock

R = "/v1/types/contact/records"


def test_missing_unknown_and_malformed_keys(api: Api) -> None:
    api.make_type()
    assert api.client.get(R).status_code == 401
    r = api.client.get(R, headers={"Authorization": "Bearer rb_nope"})
    assert r.status_code == 401 and r.json()["code"] == "unauthenticated"
    assert r.headers["content-type"] == "application/problem+json"
    assert api.client.get(R, headers={"Authorization": "Basic abc"}).status_code == 401
    assert api.client.get(R, headers={"X-API-Key": api.key}).status_code == 200


def test_only_the_hash_is_stored(api: Api) -> None:
    keys = api.client.portal.call(api.service.list_keys, "p1")  # type: ignore[union-attr]
    assert keys and all(k.prefix == api.key[:10] or k.prefix for k in keys)
    import sqlite3

    url = api.service.settings.database_url
    if url.startswith("postgres"):
        return
    conn = sqlite3.connect(url)
    dump = "\n".join(conn.iterdump())
    conn.close()
    assert api.key not in dump and api.key[10:] not in dump


def test_revocation_takes_effect_at_once(api: Api) -> None:
    api.make_type()
    key = api.new_key("records:read")
    assert api.get(R, key=key).status_code == 200
    api.client.portal.call(api.service.revoke_key, key)  # type: ignore[union-attr]
    r = api.get(R, key=key)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_expiry(api: Api, clock: FakeClock) -> None:
    # A key seen lately answers from a cache until its next last-used write is due; an expiry
    # that comes sooner than that write must still end it on time.
    api.make_type()
    assert api.service.settings.key_touch_seconds >= 30
    key = api.new_key("records:read", expires_in=timedelta(seconds=10))
    assert api.get(R, key=key).status_code == 200
    clock.advance(5)
    assert api.get(R, key=key).status_code == 200
    clock.advance(6)
    r = api.get(R, key=key)
    assert r.status_code == 401 and "expired" in r.json()["detail"]


def test_last_used_at_is_written_again_when_due(api: Api, clock: FakeClock) -> None:
    api.make_type()
    key = api.new_key("records:read")

    def last_used() -> object:
        api.client.portal.call(api.service.settle)  # type: ignore[union-attr]
        keys = api.client.portal.call(api.service.list_keys, "p1")  # type: ignore[union-attr]
        (used,) = [k.last_used_at for k in keys if key.startswith(k.prefix)]
        return used

    assert api.get(R, key=key).status_code == 200
    first = last_used()
    assert first is not None
    clock.advance(1)
    assert api.get(R, key=key).status_code == 200
    assert last_used() == first  # not due yet
    clock.advance(api.service.settings.key_touch_seconds)
    assert api.get(R, key=key).status_code == 200
    later = last_used()
    assert later is not None and later > first  # type: ignore[operator]


def test_scopes_name_what_is_missing(api: Api) -> None:
    api.make_type()
    reader = api.new_key("records:read")
    r = api.post(R, key=reader, json={"record": {"data": {}}})
    assert r.status_code == 403
    assert r.json()["code"] == "forbidden" and "records:write:contact" in r.json()["detail"]
    assert api.get("/v1/types", key=reader).status_code == 403


def test_scope_narrowed_to_one_type(api: Api) -> None:
    api.make_type("contact")
    api.make_type("invoice")
    key = api.new_key("records:write:contact", "records:read")
    assert api.post(R, key=key, json={"record": {"data": {}}}).status_code == 201
    r = api.post("/v1/types/invoice/records", key=key, json={"record": {"data": {}}})
    assert r.status_code == 403
    assert api.get("/v1/types/invoice/records", key=key).status_code == 200


def test_bad_scope_rejected(api: Api) -> None:
    import pytest

    from recordbase.errors import BadRequest

    with pytest.raises(BadRequest, match="valid"):
        api.new_key("records:delete")


def test_last_used_at_is_written(api: Api) -> None:
    api.make_type()
    api.get(R)
    api.client.portal.call(api.service.settle)  # type: ignore[union-attr]
    keys = api.client.portal.call(api.service.list_keys, "p1")  # type: ignore[union-attr]
    assert any(k.last_used_at is not None for k in keys)


def test_rate_limit_headers_and_429(make_api, settings) -> None:  # type: ignore[no-untyped-def]
    api = make_api(settings)
    api.make_type()
    key = api.new_key("records:read", rate=0.001, burst=2)
    first = api.get(R, key=key)
    assert first.headers["ratelimit-limit"] == "2"
    assert first.headers["ratelimit-remaining"] == "1"
    assert api.get(R, key=key).status_code == 200
    r = api.get(R, key=key)
    assert r.status_code == 429 and r.json()["code"] == "rate_limited"
    assert int(r.headers["retry-after"]) >= 1


def test_the_sync_answer_is_authenticates_own(api: Api) -> None:
    """`authenticated` (the pipeline's way without awaiting) answers only where `authenticate`
    would answer from its caches; anything else is None, for `authenticate` to decide."""
    service = api.service
    portal = api.client.portal
    key = api.new_key("records:read")
    assert service.authenticated(None) is None and service.authenticated("") is None
    assert service.authenticated("rb_nope") is None
    assert service.authenticated(key) is None  # not seen yet: authenticate reads the store

    async def both() -> tuple[object, object]:  # nothing awaited between the two
        principal = await service.authenticate(key)
        return principal, service.authenticated(key)

    principal, again = portal.call(both)  # type: ignore[union-attr]
    assert again is principal
    portal.call(service.revoke_key, key)  # type: ignore[union-attr]
    assert service.authenticated(key) is None  # the epoch moved: authenticate re-reads it
    assert api.get(R, key=key).status_code == 401
