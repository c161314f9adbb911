"""The bench's set-up and scenarios: data, servers, request bodies, and the measures paired.

`Bench.run()` loads the data, starts the servers (each pinned to the server core), builds
every scenario with its references, runs them round by round and returns the report.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import data
import orjson
import procs
from scenarios import Measure, Sample, Scenario, Target, table

CACHE = procs.BENCH / ".cache"
KEYWORDS_LOG = {
    "model": "gpt-4o-mini",
    "log_type": "chat",
    "input": [{"role": "user", "content": "Summarise the ticket about the late delivery."}],
    "output": {"role": "assistant", "content": "The parcel left the depot two days late."},
    "usage": {"prompt_tokens": 42, "completion_tokens": 17},
    "latency": 0.82,
    "time_to_first_token": 0.21,
    "customer_identifier": "customer-42",
    "custom_identifier": "ticket-1234",
    "metadata": {"env": "bench", "region": "eu"},
    "status_code": 200,
}
RECORD_COLUMNS = (
    "id",
    "name",
    "external_id",
    "owner",
    "data",
    "description",
    "attachments",
    "version",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
)


class Bench:
    def __init__(self, args: argparse.Namespace, running: procs.Procs, workdir: Path) -> None:
        self.args = args
        self.procs = running
        self.work = workdir
        self.log_lines: list[str] = []
        self.wanted = {s for s in args.scenarios.split(",") if s}
        self.conns = args.connections
        self.pg_databases = []

    def log(self, text: str) -> None:
        print(text, flush=True)

    # files --------------------------------------------------------------------------------

    def file(self, name: str, content: Any) -> str:
        path = self.work / name
        path.write_bytes(content if isinstance(content, bytes) else orjson.dumps(content))
        return str(path)

    def bodies(self) -> None:
        self.create_body = self.file("create.json", {"record": {"data": data.row(1)}})
        self.batch_body = self.file(
            "batch.json", {"records": [{"data": data.row(i)} for i in range(100)]}
        )
        self.upsert_body = self.file(
            "upsert.json", {"records": [{"external_id": "@EXT@", "data": data.row(7)}]}
        )
        self.kw_body = self.file("keywords.json", KEYWORDS_LOG)
        self.ds_one = self.file("ds-one.json", {"row": _ds_row(1), "return": True})
        self.ds_many = self.file(
            "ds-many.json", {"rows": [_ds_row(i) for i in range(100)], "return": True}
        )

    # measures -----------------------------------------------------------------------------

    def http(
        self,
        label: str,
        url: str,
        method: str = "GET",
        body: str = "",
        paths: list[str] | None = None,
        auth: str = "",
        unit: str = "req/s",
        per_request: int = 1,
        upsert: int = 0,
        drain: str = "",
    ) -> Measure:
        env = {
            "BENCH_METHOD": method,
            "BENCH_BODY": body,
            "BENCH_AUTH": auth,
            "BENCH_PATHS": self.file(
                f"paths-{_digest(url.encode())}.txt", "\n".join(paths).encode()
            )
            if paths
            else "",
            "BENCH_UPSERT": str(upsert) if upsert else "",
        }

        def drive(seconds: float) -> dict[str, Any]:
            r = procs.wrk(url, seconds, self.conns, env)
            if drain:
                # Requests wrk gave up on are still queued in the server; wait them out so
                # they do not slow the next measure (a read queues behind them).
                procs.request("GET", drain, auth=auth)
            return r

        def run() -> Sample:
            r = drive(self.args.seconds)
            return Sample(r["rate"] * per_request, r["p99_ms"], r["failed"])

        return Measure(label, unit, run, warm=lambda: drive(min(2.0, self.args.seconds)))

    def ref(
        self, label: str, kind: str, where: str, spec: str, unit: str, rows: bool = False
    ) -> Measure:
        def run() -> Sample:
            r = procs.reference(kind, self.args.seconds, where, spec)
            return Sample(
                r["row_rate"] if rows else r["rate"], r["p99_ms"], note="; ".join(r.get("plan", []))
            )

        warm_seconds = min(2.0, self.args.seconds)
        return Measure(
            label, unit, run, warm=lambda: procs.reference(kind, warm_seconds, where, spec)
        )

    # set-up -------------------------------------------------------------------------------

    def load(self, url: str, cache_key: str | None) -> data.Loaded:
        """Load the read set, from a cached copy of an identical earlier load when there is one."""
        n = self.args.records
        deep = int(n * 0.9)
        if cache_key is None:
            return data.load_recordbase(url, n, deep)
        cached = CACHE / f"rb-{n}-{cache_key}.db"
        meta = cached.with_suffix(".json")
        if not (cached.exists() and meta.exists()):
            CACHE.mkdir(exist_ok=True)
            self.log(f"loading {n:,} records into recordbase (once; cached in bench/.cache) ...")
            t = time.monotonic()
            loaded = data.load_recordbase(str(cached) + ".tmp", n, deep)
            Path(str(cached) + ".tmp").rename(cached)
            meta.write_bytes(orjson.dumps(vars(loaded)))
            self.log(f"  loaded in {time.monotonic() - t:.0f} s")
        _copy_synced(cached, url)
        raw = orjson.loads(meta.read_bytes())
        raw["deep_after"] = tuple(raw["deep_after"]) if raw["deep_after"] else None
        return data.Loaded(**raw)

    def start_recordbase(self, name: str, url: str) -> str:
        port = procs.free_port()
        exe = str(Path(__import__("sys").executable).parent / "recordbase")
        proc = self.procs.start(
            name,
            [exe, "serve", "--db", url, "--port", str(port)],
            env={"RECORDBASE_LOG_LEVEL": "warning"},
        )
        base = f"http://127.0.0.1:{port}"
        procs.wait_http(base + "/healthz", proc)
        return base

    def start_echo(self, *mode: str) -> str:
        port = procs.free_port()
        exe = __import__("sys").executable
        proc = self.procs.start(
            "echo-" + (mode[0] if mode else "joined"),
            [exe, str(procs.BENCH / "echo_app.py"), str(port), *mode],
        )
        base = f"http://127.0.0.1:{port}"
        procs.wait_http(base + "/", proc)
        return base

    def start_datasette(self) -> tuple[str, str] | str:
        """(base URL, bearer token), or the reason it is not measured."""
        exe, version = procs.ensure_datasette(install=not (self.args.no_install or self.args.smoke))
        if exe is None:
            return version
        self.ds_version = version
        n = self.args.records
        db = self.work / "ds.db"
        cached = CACHE / f"ds-{n}-{_digest(Path(data.__file__).read_bytes())}.db"
        if not cached.exists():
            CACHE.mkdir(exist_ok=True)
            data.load_datasette(str(cached) + ".tmp", n)
            Path(str(cached) + ".tmp").rename(cached)
        _copy_synced(cached, db)
        secret = "bench-" + _digest(str(time.time()).encode())
        token = subprocess.run(
            [str(exe), "create-token", "root", "--secret", secret],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        port = procs.free_port()
        proc = self.procs.start(
            "datasette",
            [
                str(exe),
                "serve",
                str(db),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--root",
                "--secret",
                secret,
                "--setting",
                "sql_time_limit_ms",
                "30000",
            ],
        )
        base = f"http://127.0.0.1:{port}"
        procs.wait_http(base + "/-/versions.json", proc)
        return base, "Bearer " + token.stdout.strip().splitlines()[-1]

    # scenarios ----------------------------------------------------------------------------

    def on(self, name: str) -> bool:
        return not self.wanted or name in self.wanted

    pg_databases: list[str]  # made by this run; dropped by drop_databases()

    def drop_databases(self) -> None:
        """Drop the PostgreSQL databases this run made (their servers are stopped by then)."""
        for name in self.pg_databases:
            drop_pg_database(self.args.pg_url, name)

    def run(self) -> str:
        from run import machine

        self.bodies()
        self.echo = self.start_echo()
        self.echo_stock = self.start_echo("stock")
        ds = self.start_datasette()
        self.ds: tuple[str, str] | None = ds if isinstance(ds, tuple) else None
        self.ds_skip = ds if isinstance(ds, str) else ""
        scenarios: list[Scenario] = []
        for backend in self.args.backends.split(","):
            scenarios += self.backend(backend.strip())
        for s in scenarios:
            if s.skip:
                self.log(f"skip {s.name} ({s.backend}): {s.skip}")
                continue
            self.log(
                f"{s.name} ({s.backend}): {s.a.label} vs "
                f"{', '.join(m.label for m in s.refs) or 'nothing'}"
            )
            s.run(self.args.rounds, self.log)
        extra = [validation_row()]
        head = (
            f"\nmachine: {machine()}\nwrk -t1 -c{self.conns} -d{self.args.seconds:g}s, "
            f"{self.args.rounds} round(s), {self.args.records:,} records in the read set"
            + (f"; {getattr(self, 'ds_version', '')}" if self.ds else "")
            + "\n\n"
        )
        return head + table(scenarios, extra)

    def backend(self, backend: str) -> list[Scenario]:
        if backend == "sqlite":
            url = str(self.work / "recordbase.db")
            key = _digest(
                b"".join(p.read_bytes() for p in sorted(_migrations().glob("*/*.sql")))
                + Path(data.__file__).read_bytes()
            )
            loaded = self.load(url, key)
            base = self.start_recordbase("recordbase-sqlite", url)
            return self.scenarios("sqlite", base, loaded, url)
        if backend == "postgres":
            reason = postgres_reason(self.args.pg_url)
            if reason:
                return [
                    _skipped(n, "postgres", reason)
                    for n in ("create", "batch", "upsert", "filter", "indexed", "keyset")
                    if self.on(n)
                ]
            name = f"recordbase_bench_{os.getpid()}"
            self.pg_databases.append(name)
            url = fresh_pg_database(self.args.pg_url, name)
            loaded = self.load(url, None)
            base = self.start_recordbase("recordbase-postgres", url)
            return self.scenarios("postgres", base, loaded, url)
        raise SystemExit(f"unknown backend {backend!r}: use sqlite and/or postgres")

    def scenarios(self, backend: str, base: str, loaded: data.Loaded, url: str) -> list[Scenario]:
        from scenarios_build import build

        return build(self, backend, base, loaded, url)


def validation_row() -> list[str]:
    """T5: time to validate one ~10-field record with the compiled (Rust) validator."""
    import timeit

    from recordbase.core import validation

    validate = validation.compile_validator(data.SCHEMA)
    record = data.row(5)
    n = 100_000
    per = min(timeit.repeat(lambda: validate(record, "/data"), number=n, repeat=3)) / n * 1e6
    rust = type(validation._compile(data.SCHEMA)).__module__.split(".")[0]
    return [
        "validation (T5)",
        f"{per:.2f} µs per record",
        f"validator from {rust}",
        "",
        "",
        "T5 ≤ 10 µs; no pure-Python validator",
        "met" if per <= 10 and rust == "jsonschema_rs" else "SHORT",
    ]


def postgres_reason(pg_url: str) -> str:
    if importlib.util.find_spec("recordbase.stores.postgres") is None:
        return "recordbase.stores.postgres is not in this build yet (branch postgres)"
    try:
        import psycopg

        with psycopg.connect(pg_url, connect_timeout=3):
            return ""
    except Exception as exc:  # any failure to reach it is a reason to skip, printed
        return f"PostgreSQL at {pg_url} does not answer: {exc}"


def fresh_pg_database(pg_url: str, name: str) -> str:
    """A new database for this run (its name carries our pid, so runs never collide); the
    databases of earlier runs whose process is gone are dropped."""
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'recordbase_bench%'"
        ).fetchall()
        for (old,) in rows:
            pid = old.rsplit("_", 1)[-1]
            if old == name or not pid.isdigit() or not _alive(int(pid)):
                conn.execute(f"DROP DATABASE IF EXISTS {old} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    return pg_url.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(pg_url: str, name: str) -> None:
    import psycopg

    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    except psycopg.Error as exc:  # the next run drops it (fresh_pg_database)
        print(f"could not drop database {name}: {exc}", flush=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _skipped(name: str, backend: str, reason: str) -> Scenario:
    empty = Measure("", "", lambda: Sample(0, 0))
    return Scenario(name, backend, empty, [], [], skip=reason)


def _ds_row(i: int) -> dict[str, Any]:
    row = data.row(i)
    row["tags"] = orjson.dumps(row["tags"]).decode()
    return row


def _digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:12]


def _migrations() -> Path:
    import recordbase.stores

    return Path(recordbase.stores.__file__).parent / "migrations"


Builder = Callable[..., list[Scenario]]
__all__ = ["RECORD_COLUMNS", "Bench", "Target"]


def _copy_synced(source: Path, target: Path | str) -> None:
    """Copy a cached database and flush it to disk before any server opens it: otherwise the
    copy's hundreds of MB of dirty pages are written back by the server's first fsync (a
    checkpoint), and the first rounds' p99 measure the copy, not the server."""
    shutil.copyfile(source, target)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
