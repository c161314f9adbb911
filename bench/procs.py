"""Processes for the bench: install what is missing, start servers pinned to a core, drive them
with wrk on the other core, run the raw references, and stop every process it started.

Every child gets its own process group, so stopping it also stops anything it spawned; every
run has a deadline (wrk's own -d plus a margin enforced here).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson

BENCH = Path(__file__).resolve().parent
SERVER_CPU, LOAD_CPU = 0, 1


def pin(cpu: int) -> list[str]:
    """`taskset -c cpu` when the machine has two cores and taskset; else nothing."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(cpu)]
    return []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (apt-get install -y wrk) ...", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        run = subprocess.run(
            ["apt-get", "install", "-y", "wrk"], env=env, capture_output=True, timeout=300
        )
        if run.returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=300)
            subprocess.run(
                ["apt-get", "install", "-y", "wrk"], env=env, capture_output=True, timeout=300
            )
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is missing and could not be installed: apt-get install wrk")
    return found


def ensure_datasette(install: bool) -> tuple[Path | None, str]:
    """bench/.venv/bin/datasette (1.0 alpha from PyPI), made when missing and `install`."""
    venv = BENCH / ".venv"
    exe = venv / "bin" / "datasette"
    if not exe.exists() and install:
        print("installing Datasette 1.0 into bench/.venv ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "--pre", "datasette>=1.0a0,<1.1"],
            check=True,
            timeout=600,
        )
    if not exe.exists():
        return None, "Datasette is not installed in bench/.venv (a full run installs it)"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    return exe, version.stdout.strip()


class Procs:
    """The processes this bench started; `stop_all` ends each one's process group."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        cpu: int | None = SERVER_CPU,
    ) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the child
        proc = subprocess.Popen(
            (pin(cpu) if cpu is not None else []) + argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            cwd=self.workdir,
        )
        self.children.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)

    def stop_all(self) -> None:
        for _name, proc in reversed(self.children):
            self.stop(proc)
        self.children.clear()

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url}: no answer within {timeout} s")


def request(
    method: str, url: str, body: bytes | None = None, auth: str | None = None
) -> tuple[int, Any]:
    """One plain HTTP request (for set-up and probes): status and parsed JSON body."""
    req = urllib.request.Request(url, data=body, method=method)
    req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return status, raw[:300].decode(errors="replace")


def wrk(url: str, seconds: float, connections: int, env: dict[str, str]) -> dict[str, Any]:
    """Drive `url` for `seconds` with wrk (one thread, on the load core); throughput and p99."""
    argv = [
        *pin(LOAD_CPU),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        f"--timeout={max(2, int(seconds))}s",
        "-s",
        str(BENCH / "lua" / "request.lua"),
        url,
    ]
    out = _run(argv, seconds, env)
    result = _benchjson(out, argv)
    elapsed = result["duration_us"] / 1e6
    result["rate"] = result["requests"] / elapsed if elapsed else 0.0
    result["failed"] = sum(
        result[k]
        for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return result


def reference(kind: str, seconds: float, where: str, spec: str) -> dict[str, Any]:
    """A raw reference from refs.py, in its own process on the server's core."""
    argv = [
        *pin(SERVER_CPU),
        sys.executable,
        str(BENCH / "refs.py"),
        kind,
        f"{seconds:g}",
        where,
        spec,
    ]
    result = _benchjson(_run(argv, seconds, {}), argv)
    result["rate"] = result["ops"] / result["seconds"]
    result["row_rate"] = result["rows"] / result["seconds"]
    return result


def _run(argv: list[str], seconds: float, env: dict[str, str]) -> str:
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RuntimeError(f"{argv[0]} overran its time bound") from None
    return out.decode(errors="replace")


def _benchjson(out: str, argv: list[str]) -> dict[str, Any]:
    for line in out.splitlines():
        if line.startswith("BENCHJSON "):
            parsed: dict[str, Any] = orjson.loads(line[len("BENCHJSON ") :])
            return parsed
    raise RuntimeError(f"no result from {' '.join(argv)}:\n{out[-2000:]}")
