"""`recordbase serve` workers keep freed heap memory for the next requests (app.tune_malloc,
setting `malloc_keep_mb`); the app that tests and embedders make with create_app leaves
glibc's malloc alone. Each case runs in its own interpreter: malloc's settings are
process-wide. What is checked is the effect itself: after 30 MB of request-sized buffers are
freed, a tuned process still holds their pages, an untuned one has handed them back. The
thread cache's size can only come from the environment at start: `recordbase serve` starts
itself again with it (app.malloc_tunables), which the last tests see in the server's own
environment."""

from __future__ import annotations

import platform
from pathlib import Path

import httpx
import pytest

from recordbase.app import TCACHE_COUNT, malloc_tunables
from tests.server import run_script, run_server

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
    result: dict[str, int] = run_script(SCRIPT, which, tmp_path / "malloc.db", **env)
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


def _served_tunables(tmp_path: Path, **env: str) -> str | None:
    """GLIBC_TUNABLES in the environment of a running `recordbase serve` (None: unset)."""
    with run_server(str(tmp_path / "serve.db"), env=env) as server:
        pid = httpx.get(server.url + "/healthz").json()["pid"]
        assert pid == server.process.pid  # started again in place (exec), not as a child
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    found = [v for v in environ if v.startswith(b"GLIBC_TUNABLES=")]
    return found[0].split(b"=", 1)[1].decode() if found else None


def test_serve_starts_again_with_the_thread_cache_tunable(tmp_path: Path) -> None:
    assert (
        _served_tunables(tmp_path, GLIBC_TUNABLES="") == f"glibc.malloc.tcache_count={TCACHE_COUNT}"
    )


def test_serve_keeps_the_tunables_it_is_given_and_zero_sets_none(tmp_path: Path) -> None:
    given = "glibc.malloc.tcache_count=9"
    assert _served_tunables(tmp_path, GLIBC_TUNABLES=given) == given
    assert _served_tunables(tmp_path, RECORDBASE_MALLOC_KEEP_MB="0") is None


def test_the_tunables_join_what_the_environment_has() -> None:
    # glibc rewrites the variable's own bytes in /proc/<pid>/environ as it reads them, so a
    # joined value is checked here rather than in a server's environment
    ours = f"glibc.malloc.tcache_count={TCACHE_COUNT}"
    assert malloc_tunables(64, "") == ours
    assert malloc_tunables(64, "glibc.malloc.arena_max=2") == f"glibc.malloc.arena_max=2:{ours}"
    assert malloc_tunables(64, "glibc.malloc.tcache_count=9") is None
    assert malloc_tunables(0, "") is None
