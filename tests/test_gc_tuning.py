"""`recordbase serve` workers tune Python's collector once started (app.tune_collector); the
app that tests and embedders make with create_app leaves it alone. Each case runs in its own
interpreter: the collector is process-wide."""

from __future__ import annotations

from pathlib import Path

from tests.server import run_script

SCRIPT = """
import gc, json, sys
from starlette.testclient import TestClient
from recordbase.app import create_app, serve_app
before = gc.get_threshold()
app = serve_app() if sys.argv[1] == "serve" else create_app()
with TestClient(app) as client:
    assert client.get("/healthz").status_code == 200
    print(json.dumps({"before": before, "after": gc.get_threshold(),
                      "frozen": gc.get_freeze_count()}))
"""


def _run(tmp_path: Path, which: str, **env: str) -> dict[str, list[int] | int]:
    result: dict[str, list[int] | int] = run_script(SCRIPT, which, tmp_path / "gc.db", **env)
    return result


def test_serve_app_raises_the_threshold_and_freezes_what_started(tmp_path: Path) -> None:
    got = _run(tmp_path, "serve")
    before, after = got["before"], got["after"]
    assert isinstance(before, list) and isinstance(after, list)
    assert after == [50_000, before[1], before[2]]
    assert isinstance(got["frozen"], int) and got["frozen"] > 1000


def test_the_setting_sets_the_threshold_and_zero_leaves_python_alone(tmp_path: Path) -> None:
    assert _run(tmp_path, "serve", RECORDBASE_GC_THRESHOLD="2500")["after"][0] == 2500  # type: ignore[index]
    untouched = _run(tmp_path, "serve", RECORDBASE_GC_THRESHOLD="0")
    assert untouched["after"] == untouched["before"] and untouched["frozen"] == 0


def test_create_app_leaves_the_collector_alone(tmp_path: Path) -> None:
    got = _run(tmp_path, "create")
    assert got["after"] == got["before"] and got["frozen"] == 0
