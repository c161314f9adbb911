"""The OpenAPI document describes the native API and is itself valid."""

from __future__ import annotations

from openapi_spec_validator import validate

from recordbase.web.native.routes import routes
from tests.conftest import Api


def test_document_is_valid_openapi(api: Api) -> None:
    r = api.client.get("/v1/openapi.json")
    assert r.status_code == 200
    validate(r.json())


def test_every_native_route_is_described(api: Api) -> None:
    paths = api.client.get("/v1/openapi.json").json()["paths"]
    described = {(m.upper(), p) for p, ops in paths.items() for m in ops}
    served = {(m, r.path) for r in routes() for m in (r.methods or ()) if m != "HEAD"}
    assert served == described


def test_docs_page_renders(api: Api) -> None:
    r = api.client.get("/docs")
    assert r.status_code == 200 and "/v1/openapi.json" in r.text
