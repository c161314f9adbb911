"""The web layer's shortcuts answer exactly as the Starlette code they replace
(docs/performance.md, "Hot path, round 4"): the route cache, headers read once, the body read
from receive(), the JSON response headers, the headers the pipeline adds, and the Principal
made once per cached key."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match

from recordbase.errors import PayloadTooLarge, Unauthenticated
from recordbase.web import dispatch
from recordbase.web.dispatch import Direct
from recordbase.web.http import FastRequest, JSONResponse, RequestHeaders, _read_stream, read_body
from recordbase.web.middleware import with_headers
from tests.conftest import Api

PATHS = [
    ("POST", "/v1/types/contact/records"),
    ("GET", "/v1/types/contact/records"),
    ("HEAD", "/v1/types/contact/records"),
    ("GET", "/v1/types/contact/records/r1"),
    ("DELETE", "/v1/types/contact/records/r1"),
    ("POST", "/v1/types/contact/records/query"),
    ("GET", "/v1/types/contact/records/count"),
    ("GET", "/v1/types/contact"),
    ("DELETE", "/v1/types"),  # 405: Starlette decides
    ("GET", "/nowhere"),  # 404: Starlette decides
    ("GET", "/v1/types/contact/records/"),  # slash redirect: Starlette decides
    ("GET", "/healthz"),
    ("GET", "/v1/jobs/j1"),
]


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": ""}


def _by_the_routes(direct: Direct, scope: dict[str, Any]) -> Any:
    """What Starlette's routes say: the first full match, if it is called directly."""
    for route in direct.app.router.routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            endpoint = dispatch.direct_endpoint(route)
            return (
                None if endpoint is None else (route, endpoint, child, getattr(route, "lean", None))
            )
    return None


def test_the_route_cache_answers_as_the_routes_do(api: Api) -> None:
    direct = api.app.pipeline.app
    assert isinstance(direct, Direct)
    for _ in range(3):  # the first round fills the cache, the others read it
        for method, path in PATHS:
            expected = _by_the_routes(direct, _scope(method, path))
            found = direct.endpoint_for(_scope(method, path))
            assert found == expected, (method, path)
    # Each request gets its own path parameters.
    found = direct.endpoint_for(_scope("GET", "/v1/types/contact/records/r1"))
    assert found is not None
    found[2]["path_params"]["id"] = "changed"
    again = direct.endpoint_for(_scope("GET", "/v1/types/contact/records/r1"))
    assert again is not None and again[2]["path_params"] == {"type": "contact", "id": "r1"}
    # Outer path parameters (a mount) bypass the cache and still count.
    scope = {**_scope("GET", "/v1/types/contact/records/r2"), "path_params": {"outer": "x"}}
    found = direct.endpoint_for(scope)
    assert found is not None and found[2]["path_params"]["outer"] == "x"


def test_the_route_cache_stays_bounded(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dispatch, "ROUTE_CACHE_MAX", 50)
    direct = api.app.pipeline.app
    for i in range(130):
        found = direct.endpoint_for(_scope("GET", f"/v1/types/contact/records/r{i}"))
        assert found is not None and found[2]["path_params"]["id"] == f"r{i}"
        assert len(direct._cache) <= 50


def test_served_requests_keep_their_answers(api: Api) -> None:
    api.make_type()
    created = api.post("/v1/types/contact/records", json={"record": {"data": {"name": "A"}}})
    assert created.status_code == 201
    record_id = created.json()["records"][0]["id"]
    for _ in range(2):  # uncached, then cached
        got = api.get(f"/v1/types/contact/records/{record_id}")
        assert got.status_code == 200 and got.json()["id"] == record_id
        assert got.headers["etag"] and got.headers["x-request-id"]
        assert "ratelimit-remaining" in got.headers
        assert api.get("/v1/types/contact/records/nope").status_code == 404
        assert api.delete("/v1/types").json()["code"] == "method_not_allowed"
        assert api.get("/v1/nowhere").json()["code"] == "route_not_found"
    # A client's request id is echoed, and only once.
    mine = api.get("/v1/types", headers={**api.headers(), "X-Request-Id": "abc"})
    assert mine.headers.get_list("x-request-id") == ["abc"]


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# Requests to the create route: each answer must be the same from the lean lane and from the
# endpoint (status, body but for the new records' ids and times, headers but for the request id
# and the token bucket's count).
CREATES: list[tuple[dict[str, str], Any]] = [
    ({}, {"record": {"data": {"email": "a@x"}}}),
    ({}, {"records": [{"data": {"name": "B"}}, {"data": {"name": "C"}}]}),
    ({}, {"record": {"data": {}, "external_id": "taken"}}),  # a clash: 409
    ({}, {"records": [{"data": {"age": -5}}]}),  # schema: 422 naming the field
    ({}, {"records": []}),  # empty batch
    ({}, {"record": {"data": {}}, "records": []}),  # both members
    ({}, {"recrd": {}}),  # unknown member
    ({}, [1, 2]),  # not an object
    ({}, b""),  # empty body
    ({}, b"{not json"),
    ({"Content-Type": "text/plain"}, {"record": {"data": {"name": "D"}}}),
    ({"Content-Type": "application/merge-patch+json"}, {"record": {"data": {"name": "E"}}}),
    ({}, {"record": {"data": {"name": "F", "deep": _nested(80)}}}),  # too deep
    ({"Prefer": "respond-async"}, {"record": {"data": {"name": "G"}}}),  # declined: a job
]
VARIES = {"x-request-id", "ratelimit-remaining", "ratelimit-reset", "location"}


def _comparable(response: Any) -> tuple[Any, ...]:
    body = response.json()
    for record in body.get("records", []) if isinstance(body, dict) else []:
        for name in ("id", "created_at", "updated_at"):
            record.pop(name, None)
    if isinstance(body, dict):
        body.pop("request_id", None)
        for name in ("id", "url", "created_at", "updated_at"):  # a job's
            body.pop(name, None)
    headers = sorted((k, v) for k, v in response.headers.items() if k not in VARIES)
    return response.status_code, body, headers


def test_the_lean_create_answers_as_the_endpoint(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    api.make_type()
    assert (
        api.post(
            "/v1/types/contact/records", json={"record": {"data": {}, "external_id": "taken"}}
        ).status_code
        == 201
    )
    route = next(r for r in api.app.inner.router.routes if isinstance(r, dispatch.LeanRoute))
    assert route.path == "/v1/types/{type}/records" and route.methods == {"POST"}
    lean_calls: list[str] = []
    lean = route.lean

    async def counting(*args: Any) -> Any:
        lean_calls.append("called")
        answer = await lean(*args)
        lean_calls.append("answered" if answer is not None else "declined")
        return answer

    def send(headers: dict[str, str], body: Any, path: str = "/v1/types/contact/records") -> Any:
        headers = {**api.headers(), **headers}
        if isinstance(body, bytes):
            headers.setdefault("Content-Type", "application/json")
            return api.client.post(path, content=body, headers=headers)
        return api.client.post(path, json=body, headers=headers)

    for headers, body in CREATES:
        monkeypatch.setattr(route, "lean", counting)
        api.app.pipeline.app._cache.clear()
        lean_calls.clear()
        via_lean = send(headers, body)
        assert lean_calls[0] == "called"
        if "Prefer" in headers:
            assert lean_calls == ["called", "declined"]
        elif via_lean.status_code == 201:
            assert lean_calls == ["called", "answered"]
        monkeypatch.setattr(route, "lean", None)
        api.app.pipeline.app._cache.clear()
        via_endpoint = send(headers, body)
        assert _comparable(via_lean) == _comparable(via_endpoint), (headers, body)
    # Parameters and another project's type answer as the endpoint does, too.
    monkeypatch.setattr(route, "lean", counting)
    api.app.pipeline.app._cache.clear()
    assert send({}, {"record": {"data": {}}}, "/v1/types/contact/records?x=1").status_code == 400
    assert send({}, {"record": {"data": {}}}, "/v1/types/nope/records").status_code == 404


RAW = [
    (b"host", b"x"),
    (b"content-type", b"application/json"),
    (b"x-dup", b"first"),
    (b"x-dup", b"second"),
    (b"authorization", b"Bearer rb_\xe9t\xe9"),
    (b"content-length", b"12"),
]


def test_request_headers_answer_as_starlette_headers() -> None:
    fast = RequestHeaders({"headers": list(RAW)})
    slow = Headers(scope={"headers": list(RAW)})
    for name in ("host", "Content-Type", "X-DUP", "x-dup", "authorization", "missing", ""):
        assert fast.get(name) == slow.get(name)
        assert fast.get(name, "d") == slow.get(name, "d")
        assert (name in fast) == (name in slow)
        if name in slow:
            assert fast[name] == slow[name]
        else:
            with pytest.raises(KeyError):
                fast[name]
    assert fast.items() == slow.items() and fast.getlist("x-dup") == ["first", "second"]
    assert fast == slow and 3 not in fast


def test_the_added_headers_are_the_ones_mutable_headers_added() -> None:
    cases = [
        ([], {"X-Request-Id": "r1"}),
        ([(b"content-type", b"application/json")], {"X-Request-Id": "r", "RateLimit-Limit": "5"}),
        ([(b"x-request-id", b"mine")], {"X-Request-Id": "r", "X-Rate-Limit": "7"}),
        ([(b"etag", b'"1"'), (b"etag", b'"2"')], {"ETag": "x", "Retry-After": "3"}),
    ]
    for raw, extra in cases:
        message: dict[str, Any] = {"headers": list(raw)}
        headers = MutableHeaders(scope=message)
        for name, value in extra.items():
            if name not in headers:
                headers[name] = value
        encoded = [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        assert with_headers(list(raw), encoded) == message["headers"]


@pytest.mark.parametrize("status", [200, 201, 202, 204, 304, 400, 100])
@pytest.mark.parametrize("media_type", [None, "application/problem+json", "text/plain"])
@pytest.mark.parametrize("headers", [None, {"ETag": '"3"'}, {"Content-Length": "9"}])
def test_json_response_headers_are_starlettes(
    status: int, media_type: str | None, headers: dict[str, str] | None
) -> None:
    response = JSONResponse({"a": [1, "é"]}, status, headers, media_type)
    reference = JSONResponse({"a": [1, "é"]}, status, headers, media_type)
    Response.init_headers(reference, headers)  # Starlette's own general case
    assert response.raw_headers == reference.raw_headers


class _App:
    """What read_body reads of the app: app.state.settings.max_body_bytes."""

    def __init__(self, limit: int) -> None:
        self.state = type("S", (), {"settings": type("T", (), {"max_body_bytes": limit})})()


def _request(messages: list[dict[str, Any]], limit: int, fast: bool) -> Request:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    async def send(message: Any) -> None:
        raise AssertionError("nothing is sent")

    scope = {"type": "http", "headers": [], "app": _App(limit), "query_string": b""}
    return FastRequest(scope, receive, send) if fast else Request(scope, receive, send)


def _outcome(messages: list[dict[str, Any]], limit: int, fast: bool) -> tuple[Any, ...]:
    request = _request(messages, limit, fast)
    reader = read_body if fast else (lambda r: _read_stream(r, limit))
    try:
        result: Any = asyncio.run(reader(request))
    except (PayloadTooLarge, ClientDisconnect) as exc:
        result = type(exc)
    return result, request._stream_consumed, request._is_disconnected


def _body(data: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": data, "more_body": more}


BODIES = [
    [_body(b'{"a": 1}', False)],
    [_body(b"", False)],
    [{"type": "http.request"}],
    [_body(b"ab", True), _body(b"", True), _body(b"cd", False)],
    [_body(b"abc", True), _body(b"defgh", True), _body(b"ij", False)],  # 10 bytes: the limit
    [_body(b"abc", True), _body(b"defgh", True), _body(b"ijk", False)],  # 11: too large
    [_body(b"x" * 11, False)],
    [_body(b"ab", True), {"type": "http.disconnect"}],
    [{"type": "http.other"}, _body(b"ab", False)],
]


@pytest.mark.parametrize("messages", BODIES)
def test_read_body_answers_as_the_stream_did(messages: list[dict[str, Any]]) -> None:
    assert _outcome(messages, 10, fast=True) == _outcome(messages, 10, fast=False)


def test_read_body_after_the_body_was_read() -> None:
    request = _request([_body(b"ab", True), _body(b"cd", False)], 10, fast=True)
    assert asyncio.run(request.body()) == b"abcd"
    assert asyncio.run(read_body(request)) == b"abcd"
    consumed = _request([_body(b"ab", False)], 10, fast=True)
    assert asyncio.run(read_body(consumed)) == b"ab"
    with pytest.raises(RuntimeError, match="Stream consumed"):
        asyncio.run(read_body(consumed))


def test_a_principal_is_made_once_per_cached_key(api: Api) -> None:
    secret = api.new_key("records:read", project="p2")
    call = api.client.portal.call  # type: ignore[union-attr]
    # On PostgreSQL the key's creation reaches this process's epoch through LISTEN/NOTIFY a
    # moment later, and a changed epoch rightly empties the caches: two calls with no epoch
    # change between them must share one Principal.
    for _ in range(100):
        before = call(api.service.store.epoch)
        first = call(api.service.authenticate, secret)
        again = call(api.service.authenticate, secret)
        if call(api.service.store.epoch) == before:
            break
        time.sleep(0.01)
    else:
        pytest.fail("the epoch kept changing")
    assert again is first
    assert first.user is None and first.project_name == "p2"
    call(api.service.revoke_key, secret)
    with pytest.raises(Unauthenticated, match="revoked"):
        call(api.service.authenticate, secret)
