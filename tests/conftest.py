"""Shared fixtures: the real app on real databases.

`db_url` runs a test once per database in RECORDBASE_TEST_DATABASE_URLS (comma-separated;
`sqlite` means a fresh SQLite file per test). Unset, it is SQLite plus the local PostgreSQL
when one answers; a PostgreSQL that does not answer is a skip with the reason, except under
CI=true, where it is a failure.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from recordbase.app import create_app
from recordbase.config import Settings

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_DEFAULT = "redis://127.0.0.1:6379/15"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def database_urls() -> list[str]:
    raw = os.environ.get("RECORDBASE_TEST_DATABASE_URLS")
    if raw:
        return [u.strip() for u in raw.split(",") if u.strip()]
    return ["sqlite", PG_DEFAULT]


def require_service(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run these tests (start it: see .ci/run)")
    pytest.skip(f"{message}; start it to run these tests")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "backend(name): run only on `sqlite` or on `postgresql` database URLs"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect (not skip) backend-specific tests on the other backend's parameter."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("backend")
        callspec = getattr(item, "callspec", None)
        url = callspec.params.get("db_url") if callspec is not None else None
        if marker is None or url is None:
            keep.append(item)
            continue
        is_pg = str(url).startswith("postgres")
        (keep if is_pg == (marker.args[0] == "postgresql") else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


class FakeClock:
    """A clock the tests move by hand (house rule 9: tests never sleep)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(params=database_urls())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    url: str = request.param
    if url == "sqlite":
        yield str(tmp_path / "test.db")
        return
    require_service("PostgreSQL", "127.0.0.1", 5432)
    from tests.pg import fresh_database

    yield from fresh_database(url)


@pytest.fixture
def settings(db_url: str) -> Settings:
    # No background job worker: tests carry jobs out with api.run_jobs(), never waiting.
    return Settings(database_url=db_url, default_rate=1000.0, default_burst=1000, job_worker=False)


@dataclass
class Api:
    """The real app behind a TestClient, with an admin key for project `p1`."""

    client: TestClient
    app: Any
    key: str

    @property
    def service(self) -> Any:
        return self.app.state.service

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.key}"}

    def new_key(self, *scopes: str, project: str = "p1", **options: Any) -> str:
        _key, secret = self.client.portal.call(  # type: ignore[union-attr]
            lambda: self.service.create_key(project, list(scopes), **options)
        )
        return str(secret)

    def run_jobs(self) -> int:
        """Carry out every queued job now (the background worker is off in tests)."""
        done: int = self.client.portal.call(self.service.run_pending_jobs)  # type: ignore[union-attr]
        return done

    def request(self, method: str, path: str, key: str | None = None, **kw: Any) -> Any:
        headers = {**self.headers(key), **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Any:
        return self.request("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)

    def make_type(self, key: str = "contact", **definition: Any) -> dict[str, Any]:
        body = {"key": key, "schema": definition.pop("schema", CONTACT_SCHEMA), **definition}
        response = self.post("/v1/types", json=body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result


CONTACT_SCHEMA = {
    "type": "object",
    "properties": {
        "email": {"type": "string"},
        "age": {"type": "integer", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
        "score": {"type": "number"},
        "born": {"type": "string", "format": "date-time"},
        "address": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_api(clock: FakeClock) -> Iterator[Callable[..., Api]]:
    clients: list[TestClient] = []

    def make(settings: Settings, **kw: Any) -> Api:
        app = create_app(settings, clock=kw.pop("clock", clock), **kw)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        api = Api(client, app, "")
        api.key = api.new_key("admin")
        return api

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_api: Callable[..., Api], settings: Settings) -> Api:
    return make_api(settings)
