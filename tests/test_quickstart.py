"""The quick start as a new user runs it: `serve --demo` prints a key that works at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.server import free_port


def test_serve_demo_prints_a_working_key(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recordbase.cli",
            "serve",
            "--demo",
            "--db",
            str(tmp_path / "demo.db"),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        key = ""
        for line in process.stdout:
            if line.startswith("rb_"):
                key = line.strip()
                break
        assert key, "serve --demo printed no key"
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(url + "/v1/types", headers={"Authorization": f"Bearer {key}"})
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.05)  # the server is still binding its port
        assert r.status_code == 200
        assert [t["key"] for t in r.json()["types"]] == ["contact"]
        created = httpx.post(
            url + "/v1/types/contact/records",
            headers={"Authorization": f"Bearer {key}"},
            json={"record": {"data": {"email": "ada@example.com"}}},
        )
        assert created.status_code == 201
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
        if process.stdout is not None:
            process.stdout.close()
