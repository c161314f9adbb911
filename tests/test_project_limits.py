"""Per-project rate-limit defaults: a key's own limits, else its project's, else the deployment's.

Through the real app (its RateLimit-Limit header is the effective burst) and the real CLI.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from recordbase.config import Settings
from recordbase.ratelimit import MemoryLimiter
from tests.conftest import Api
from tests.server import cli


class Seconds:
    """A still float clock for the limiter: no refill unless a test moves it."""

    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _app(make_api: Callable[..., Api], settings: Settings) -> Api:
    # The deployment default (burst 50) differs from every project value used below.
    return make_api(
        settings.replace(default_rate=100.0, default_burst=50), limiter=MemoryLimiter(Seconds())
    )


def _set(api: Api, project: str, **limits: Any) -> Any:
    return api.client.portal.call(  # type: ignore[union-attr]
        lambda: api.service.set_project_limits(project, **limits)
    )


def _limit(api: Api, key: str) -> str:
    answer = api.get("/v1/types", key=key)
    assert answer.status_code == 200, answer.text
    return str(answer.headers["RateLimit-Limit"])


def test_a_key_without_limits_takes_its_projects(
    make_api: Callable[..., Api], settings: Settings
) -> None:
    api = _app(make_api, settings)
    api.new_key("types:read", project="p2")  # makes project p2
    _set(api, "p2", rate=0.001, burst=3)
    plain = api.new_key("types:read", project="p2")
    statuses = [api.get("/v1/types", key=plain) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert statuses[0].headers["RateLimit-Limit"] == "3"
    # Another project keeps the deployment default.
    assert _limit(api, api.new_key("types:read")) == "50"


def test_a_keys_own_limits_win_field_by_field(
    make_api: Callable[..., Api], settings: Settings
) -> None:
    api = _app(make_api, settings)
    _set(api, "p1", rate=1.0, burst=7)
    assert _limit(api, api.new_key("types:read", rate=5.0, burst=12)) == "12"
    # Only a rate of its own: the burst still comes from the project.
    assert _limit(api, api.new_key("types:read", rate=5.0)) == "7"


def test_changing_a_projects_limits_counts_at_once(
    make_api: Callable[..., Api], settings: Settings
) -> None:
    api = _app(make_api, settings)
    key = api.new_key("types:read")
    assert _limit(api, key) == "50"  # authenticated and cached
    _set(api, "p1", burst=9)
    assert _limit(api, key) == "9"
    _set(api, "p1", rate=2.0)  # an omitted member stays
    assert _limit(api, key) == "9"
    _set(api, "p1", burst=None)  # cleared: the deployment default again
    assert _limit(api, key) == "50"
    projects = api.client.portal.call(api.service.list_projects)  # type: ignore[union-attr]
    assert [(p.name, p.rate, p.burst) for p in projects] == [("p1", 2.0, None)]


def test_bad_limits_and_unknown_projects_are_refused(
    make_api: Callable[..., Api], settings: Settings
) -> None:
    api = _app(make_api, settings)
    for limits, words in (({"rate": 0.0}, "above 0"), ({"burst": 0}, "at least 1")):
        with pytest.raises(Exception, match=words) as bad:
            _set(api, "p1", **limits)
        assert getattr(bad.value, "code", None) == "bad_request"
    with pytest.raises(Exception, match="No project 'nope'") as missing:
        _set(api, "nope", burst=3)
    assert getattr(missing.value, "code", None) == "project_not_found"


@pytest.mark.backend("sqlite")
def test_the_cli_sets_limits_that_a_running_app_uses(
    make_api: Callable[..., Api], settings: Settings
) -> None:
    api = _app(make_api, settings)
    key = api.new_key("types:read")
    assert _limit(api, key) == "50"
    db = settings.database_url
    out = cli("projects", "set", "p1", "--db", db, "--rate", "600/m", "--burst", "4")
    assert out.strip() == "project p1: rate 10/s, burst 4"
    assert _limit(api, key) == "4"  # another process's change: the epoch tells the app


def test_cli_projects_list_and_set(db_url: str) -> None:
    cli("keys", "create", "--db", db_url, "--project", "acme", "--scope", "admin")
    cli("keys", "create", "--db", db_url, "--project", "beta", "--scope", "admin")
    cli("projects", "set", "acme", "--db", db_url, "--rate", "50/s", "--burst", "100")
    table = cli("projects", "list", "--db", db_url).splitlines()
    assert table[0].split() == ["NAME", "RATE", "BURST"]
    assert [line.split() for line in table[1:]] == [
        ["acme", "50/s", "100"],
        ["beta", "default", "default"],
    ]
    cli("projects", "set", "acme", "--db", db_url, "--rate", "none")
    rows = [json.loads(line) for line in cli("projects", "list", "--db", db_url, "--json").split()]
    assert [(r["name"], r["rate"], r["burst"]) for r in rows] == [
        ("acme", None, 100),
        ("beta", None, None),
    ]
    # Keys list what they were created with; the project's default is not copied into them.
    keys = [json.loads(line) for line in cli("keys", "list", "--db", db_url, "--json").split()]
    assert {(k["rate"], k["burst"]) for k in keys} == {(None, None)}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["ghost", "--burst", "3"], "project_not_found"),
        (["acme"], "Nothing to set"),
        (["acme", "--rate", "fast"], "use e.g. 50/s"),
        (["acme", "--burst", "lots"], "whole number or none"),
        (["acme", "--burst", "0"], "at least 1"),
    ],
)
def test_cli_projects_set_refuses_bad_input(tmp_path: Any, args: list[str], words: str) -> None:
    db = str(tmp_path / "cli.db")
    cli("keys", "create", "--db", db, "--project", "acme", "--scope", "admin")
    with pytest.raises(RuntimeError, match=words):
        cli("projects", "set", *args, "--db", db)
