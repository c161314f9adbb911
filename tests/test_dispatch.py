"""Direct dispatch (web/dispatch.py) calls plain handlers itself and leaves everything else,
and every error shape, as Starlette and the Pipeline made them."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from recordbase.web.dispatch import Direct, direct_endpoint
from recordbase.web.native import routes as native
from tests.conftest import Api


def _scope(method: str, path: str, **extra: Any) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", **extra}


def test_the_served_app_dispatches_hot_routes_directly(api: Api) -> None:
    direct = api.app.pipeline.app
    assert isinstance(direct, Direct)
    found = direct.endpoint_for(_scope("POST", "/v1/types/contact/records"))
    assert found is not None and found[1] is native.create_records
    found = direct.endpoint_for(_scope("GET", "/v1/types/contact/records/r1"))
    assert found is not None and found[1] is native.get_record
    assert found[2]["path_params"] == {"type": "contact", "id": "r1"}
    # No full match (405, 404), or a mounted prefix: Starlette decides, as before.
    assert direct.endpoint_for(_scope("DELETE", "/v1/types")) is None
    assert direct.endpoint_for(_scope("GET", "/nowhere")) is None
    assert direct.endpoint_for(_scope("GET", "/v1/types", root_path="/api")) is None


def test_errors_keep_their_shapes_and_headers(api: Api) -> None:
    api.make_type()
    missing = api.get("/v1/types/nope/records")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    body = missing.json()
    assert body["request_id"] == missing.headers["x-request-id"]
    assert "ratelimit-limit" in missing.headers
    not_allowed = api.delete("/v1/types")
    assert not_allowed.status_code == 405 and not_allowed.json()["code"] == "method_not_allowed"
    assert api.get("/v1/nowhere").json()["code"] == "route_not_found"
    bad = api.post("/v1/types/contact/records", json={"record": {"data": {"age": -1}}})
    assert bad.status_code == 400 and bad.json()["errors"][0]["path"].startswith("/records/0")
    head = api.request("HEAD", "/v1/types/contact/records")
    assert head.status_code == 200 and head.content == b""


async def _plain(request: Request) -> Response:
    if request.query_params.get("fail") == "http":
        raise HTTPException(418)
    if request.query_params.get("fail") == "other":
        raise KeyError("boom")
    return PlainTextResponse(request.path_params.get("x", "plain"))


async def _teapot(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("handled", status_code=418)


class _Endpoint:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("asgi")(scope, receive, send)


def test_only_plain_handlers_are_called_directly() -> None:
    plain = Route("/p/{x}", _plain)
    wrapped = Route("/w", _plain, middleware=[Middleware(GZipMiddleware)])
    asgi = Route("/a", _Endpoint())
    assert direct_endpoint(plain) is _plain
    assert direct_endpoint(wrapped) is None and direct_endpoint(asgi) is None
    app = Starlette(routes=[plain, wrapped, asgi], exception_handlers={HTTPException: _teapot})
    client = TestClient(Direct(app), raise_server_exceptions=False)
    assert client.get("/p/one").text == "one"
    assert client.get("/w").text == "plain" and client.get("/a").text == "asgi"
    # A registered handler answers as ExceptionMiddleware would; others propagate.
    assert client.get("/p/one?fail=http").text == "handled"
    assert client.get("/p/one?fail=other").status_code == 500
    assert client.post("/p/one").text == "handled"  # a 405 from the router, to the same handler
