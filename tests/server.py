"""A real `recordbase serve` subprocess on a free port, for tests that kill or load it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cli(*args: str, env: dict[str, str] | None = None) -> str:
    """Run the recordbase CLI; returns stdout (raises on a non-zero exit)."""
    done = subprocess.run(
        [sys.executable, "-m", "recordbase.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"recordbase {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def admin_headers(db: str, project: str = "p1") -> dict[str, str]:
    """An admin key (made with the CLI) whose bucket never runs dry, as request headers."""
    out = cli(
        "keys",
        "create",
        "--db",
        db,
        "--project",
        project,
        "--scope",
        "admin",
        "--rate",
        "100000/s",
        "--burst",
        "100000",
    )
    return {"Authorization": f"Bearer {out.strip().splitlines()[-1]}"}


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing — a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@contextmanager
def run_server(
    db: str, *, workers: int = 1, env: dict[str, str] | None = None, timeout: float = 30.0
) -> Iterator[Server]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "recordbase.cli",
            "serve",
            "--db",
            db,
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start (exit {process.poll()})")
            time.sleep(0.05)  # waiting for a real process to listen, not for time to pass
        yield Server(process, url)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def run_script(script: str, arg: str, db: Path, **env: str) -> Any:
    """Run `script` (Python source) with `arg` in a fresh interpreter on the SQLite file
    `db`, for settings that are process-wide; returns the JSON of its last line of output."""
    full = {**os.environ, "RECORDBASE_DATABASE_URL": f"sqlite:///{db}", **env}
    out = subprocess.run(
        [sys.executable, "-c", script, arg],
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
