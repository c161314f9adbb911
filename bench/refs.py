"""Raw in-process references: what the database does with no HTTP and no recordbase around it.

Each reference runs for a fixed time in this one process (the bench pins it to the server's
core) and prints one JSON line: operations, rows, seconds and latency percentiles. Usage:

    python bench/refs.py sqlite-batch   SECONDS WORKDIR BODYFILE
    python bench/refs.py sqlite-single  SECONDS WORKDIR BODYFILE
    python bench/refs.py sqlite-batch-schema SECONDS WORKDIR BODYFILE
    python bench/refs.py sqlite-query   SECONDS DBFILE  SPECFILE
    python bench/refs.py pg-batch|pg-single|pg-copy SECONDS DSN BODYFILE
    python bench/refs.py pg-query       SECONDS DSN     SPECFILE

The rows are the `data` objects of the scenario's own request body. SQLite runs in WAL with
synchronous=NORMAL, as recordbase does; PostgreSQL stores the same rows as jsonb.
"""

from __future__ import annotations

import itertools
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson


def _rows(body_file: str) -> list[dict[str, Any]]:
    body = orjson.loads(Path(body_file).read_bytes())
    items = body["records"] if "records" in body else [body["record"]]
    return [item["data"] for item in items]


def _loop(seconds: float, op: Callable[[], int]) -> dict[str, Any]:
    """Run `op` (returns rows done) until `seconds` pass; count and time every call."""
    latencies: list[float] = []
    rows = 0
    start = time.perf_counter()
    deadline = start + seconds
    now = start
    while now < deadline:
        rows += op()
        after = time.perf_counter()
        latencies.append(after - now)
        now = after
    elapsed = now - start
    latencies.sort()
    return {
        "ops": len(latencies),
        "rows": rows,
        "seconds": elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def _sqlite(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _fresh_sqlite(workdir: str, name: str) -> sqlite3.Connection:
    path = Path(workdir) / name
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return _sqlite(str(path))


def _executemany(
    seconds: float, conn: sqlite3.Connection, sql: str, params: Callable[[], list[Any]]
) -> dict[str, Any]:
    """`sql` over each batch `params()` makes, one transaction per batch, for `seconds`."""

    def op() -> int:
        batch = params()
        conn.execute("BEGIN")
        conn.executemany(sql, batch)
        conn.execute("COMMIT")
        return len(batch)

    try:
        return _loop(seconds, op)
    finally:
        conn.close()


def sqlite_insert(seconds: float, workdir: str, body_file: str) -> dict[str, Any]:
    """executemany of the body's rows, one transaction per batch (a batch of 1 = autocommit)."""
    conn = _fresh_sqlite(workdir, "raw-sqlite.db")
    conn.execute("CREATE TABLE rows (id TEXT PRIMARY KEY, data TEXT NOT NULL)")
    rows = _rows(body_file)
    ids = itertools.count()
    return _executemany(
        seconds,
        conn,
        "INSERT INTO rows (id, data) VALUES (?, ?)",
        lambda: [(f"r{next(ids)}", orjson.dumps(r).decode()) for r in rows],
    )


MIGRATIONS = Path(__file__).resolve().parent.parent / "src/recordbase/stores/migrations/sqlite"


def sqlite_insert_schema(seconds: float, workdir: str, body_file: str) -> dict[str, Any]:
    """executemany of the body's rows into recordbase's own `records` table (its migrations:
    the same columns and the same five indexes), one transaction per batch: how much of
    recordbase's batch time the table itself takes, with no HTTP and no Python around it."""
    conn = _fresh_sqlite(workdir, "raw-sqlite-schema.db")
    for migration in sorted(MIGRATIONS.glob("*.sql")):
        conn.executescript(migration.read_text())
    rows = _rows(body_file)
    ids = itertools.count()
    type_key, actor = 1, "01KBENCHKEY00000000000000"  # records hold the type's number

    def params() -> list[Any]:
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000000Z"
        return [
            (type_key, f"01K{next(ids):023d}", orjson.dumps(r).decode(), now, now, actor, actor)
            for r in rows
        ]

    return _executemany(
        seconds,
        conn,
        "INSERT INTO records (type_id, id, name, external_id, owner, data, description, "
        "attachments, version, created_at, updated_at, created_by, updated_by) "
        "VALUES (?, ?, NULL, NULL, NULL, ?, NULL, '[]', 1, ?, ?, ?, ?)",
        params,
    )


def sqlite_query(seconds: float, db_file: str, spec_file: str) -> dict[str, Any]:
    """The scenario's SQL against the same database file, each page answered as JSON bytes."""
    spec = orjson.loads(Path(spec_file).read_bytes())
    conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, isolation_level=None)
    conn.execute("PRAGMA cache_size=-65536")
    sql, params_list, columns = spec["sql"], spec["params"], spec["columns"]
    plan = [row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params_list[0])]
    turn = itertools.cycle(params_list)

    def op() -> int:
        out = []
        for row in conn.execute(sql, next(turn)):
            item = dict(zip(columns, row, strict=True))
            item["data"] = orjson.loads(item["data"])
            out.append(item)
        orjson.dumps({"records": out})
        return len(out)

    result = _loop(seconds, op)
    result["plan"] = plan
    conn.close()
    return result


def pg_insert(seconds: float, dsn: str, body_file: str, *, copy: bool) -> dict[str, Any]:
    """psycopg executemany (or COPY) of the body's rows into jsonb, one transaction per batch."""
    import psycopg
    from psycopg.types.json import Jsonb

    rows = _rows(body_file)
    ids = itertools.count()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw_rows")
        conn.execute("CREATE TABLE bench_raw_rows (id text PRIMARY KEY, data jsonb NOT NULL)")

        def op() -> int:
            params = [(f"r{next(ids)}", Jsonb(r)) for r in rows]
            if len(params) == 1:  # autocommit: one statement, one transaction
                conn.execute("INSERT INTO bench_raw_rows (id, data) VALUES (%s, %s)", params[0])
                return 1
            with conn.transaction(), conn.cursor() as cur:
                if copy:
                    with cur.copy("COPY bench_raw_rows (id, data) FROM STDIN") as out:
                        for p in params:
                            out.write_row(p)
                else:
                    cur.executemany("INSERT INTO bench_raw_rows (id, data) VALUES (%s, %s)", params)
            return len(params)

        try:
            return _loop(seconds, op)
        finally:
            conn.execute("DROP TABLE IF EXISTS bench_raw_rows")


def pg_query(seconds: float, dsn: str, spec_file: str) -> dict[str, Any]:
    """The scenario's SQL through psycopg against the same database, each page as JSON bytes."""
    import psycopg

    spec = orjson.loads(Path(spec_file).read_bytes())
    sql, params_list, columns = spec["sql"], spec["params"], spec["columns"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        plan = [r[0] for r in conn.execute("EXPLAIN " + sql, params_list[0]).fetchall()]
        turn = itertools.cycle(params_list)

        def op() -> int:
            out = [
                dict(zip(columns, row, strict=True))
                for row in conn.execute(sql, next(turn)).fetchall()
            ]
            orjson.dumps({"records": out})
            return len(out)

        result = _loop(seconds, op)
    result["plan"] = plan[:3]
    return result


def main(argv: list[str]) -> None:
    kind, seconds, where, spec = argv[0], float(argv[1]), argv[2], argv[3]
    if kind in ("sqlite-batch", "sqlite-single"):
        result = sqlite_insert(seconds, where, spec)
    elif kind == "sqlite-batch-schema":
        result = sqlite_insert_schema(seconds, where, spec)
    elif kind == "sqlite-query":
        result = sqlite_query(seconds, where, spec)
    elif kind == "pg-query":
        result = pg_query(seconds, where, spec)
    elif kind in ("pg-batch", "pg-single", "pg-copy"):
        result = pg_insert(seconds, where, spec, copy=kind == "pg-copy")
    else:
        raise SystemExit(f"unknown reference {kind!r}")
    print("BENCHJSON " + orjson.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
