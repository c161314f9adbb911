"""`recordbase serve` workers keep freed heap memory for the next requests (app.tune_malloc,
setting `malloc_keep_mb`); the app that tests and embedders make with create_app leaves
glibc's malloc alone. Each case runs in its own interpreter: malloc's settings are
process-wide. What is checked is the effect itself: after 30 MB of request-sized buffers are
freed, a tuned process still holds their pages, an untuned one has handed them back."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="malloc tuning applies to glibc only"
)

SCRIPT = """
import json, os, sys
from starlette.testclient import TestClient
from recordbase.app import create_app, serve_app

def resident() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

app = serve_app() if sys.argv[1] == "serve" else create_app()
with TestClient(app) as client:
    assert client.get("/healthz").status_code == 200
    start = resident()
    # 300 buffers of 100 KB, the size of a large request's body or answer, touched, freed
    held = [bytes([i % 251 + 1]) * 100_000 for i in range(300)]
    grown = resident() - start
    del held
    kept = resident() - start
    print(json.dumps({"grown": grown, "kept": kept}))
"""
MB = 1024 * 1024


def _run(tmp_path: Path, which: str, **env: str) -> dict[str, int]:
    full = {
        **os.environ,
        "RECORDBASE_DATABASE_URL": f"sqlite:///{tmp_path / 'malloc.db'}",
        **env,
    }
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, which],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_serve_app_keeps_freed_memory(tmp_path: Path) -> None:
    got = _run(tmp_path, "serve")
    assert got["grown"] > 25 * MB
    assert got["kept"] > 25 * MB  # freed, but kept for the next requests


def test_zero_and_create_app_leave_glibc_alone(tmp_path: Path) -> None:
    for got in (
        _run(tmp_path, "serve", RECORDBASE_MALLOC_KEEP_MB="0"),
        _run(tmp_path, "create"),
    ):
        assert got["grown"] > 25 * MB
        assert got["kept"] < 5 * MB  # handed back to the kernel as soon as it was freed


def test_the_setting_bounds_what_is_kept(tmp_path: Path) -> None:
    got = _run(tmp_path, "serve", RECORDBASE_MALLOC_KEEP_MB="8")
    assert got["grown"] > 25 * MB
    assert got["kept"] < 12 * MB  # more than 8 MiB free at the top: trimmed back
