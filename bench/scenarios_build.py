"""The scenario list for one backend: recordbase's request beside its references.

Before a scenario is measured, its recordbase request (and Datasette's) is sent once; a
request this build cannot answer (a face or a filter syntax not merged yet) makes the
scenario a skip that prints the server's reason rather than a table of error rates.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from pathlib import Path
from typing import Any

import data
import orjson
import procs
from harness import RECORD_COLUMNS, Bench, _skipped
from scenarios import Measure, Scenario, Target

T = "/v1/types"


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _probe(method: str, url: str, body: str, auth: str, ok: tuple[int, ...]) -> str | None:
    raw = Path(body).read_bytes().replace(b"@EXT@", b"ext-probe") if body else None
    status, answer = procs.request(method, url, raw, auth)
    if status in ok:
        return None
    detail = answer.get("detail") or answer if isinstance(answer, dict) else answer
    return f"{method} {url.split('127.0.0.1', 1)[-1]} answers {status}: {str(detail)[:160]}"


def build(b: Bench, backend: str, base: str, loaded: data.Loaded, url: str) -> list[Scenario]:
    auth = "Bearer " + loaded.secret
    rb = functools.partial(b.http, drain=base + f"{T}/items/records?limit=1")
    out: list[Scenario] = []
    sqlite = backend == "sqlite"
    records = b.args.records

    def add(name: str, make: Any) -> None:
        if b.on(name):
            out.append(make())

    def probe_or(
        name: str, method: str, path: str, body: str, ok: tuple[int, ...], make: Any
    ) -> Scenario:
        reason = _probe(method, base + path, body, auth, ok)
        return _skipped(name, backend, reason) if reason else make()

    ds = b.ds
    ds_auth = ds[1] if ds else ""

    def ds_measure(label: str, path: str, body: str, unit: str, per: int) -> Measure | None:
        if ds is None:
            return None
        return b.http(label, ds[0] + path, "POST", body, auth=ds_auth, unit=unit, per_request=per)

    def create() -> Scenario:
        a = rb(
            "recordbase create 1", base + f"{T}/writes/records", "POST", b.create_body, auth=auth
        )
        refs = [b.http("echo (bare framework)", b.echo + "/echo", "POST", b.create_body)]
        targets = [Target("echo (bare framework)", "T1", 0.50, 0.65, p99_at_most=3.0)]
        if sqlite:  # uvicorn's own protocol, as the echo ran before round 12 (no target)
            stock = b.echo_stock + "/echo"
            refs.append(b.http("echo, uvicorn's own protocol", stock, "POST", b.create_body))
            targets.append(Target(refs[-1].label, ""))
        if (
            sqlite
            and ds
            and _probe("POST", ds[0] + "/ds/rows/-/insert", b.ds_one, ds_auth, (200, 201)) is None
        ):
            m = ds_measure("Datasette insert 1", "/ds/rows/-/insert", b.ds_one, "req/s", 1)
            refs.append(m)  # type: ignore[arg-type]
            targets.append(Target("Datasette insert 1", "T3", 15.0, times=True))
        if not sqlite:
            refs = [b.ref("psycopg autocommit insert", "pg-single", url, b.create_body, "tx/s")]
            targets = [Target("psycopg autocommit insert", "T6", 0.35)]
        return Scenario("create 1", backend, a, refs, targets)

    def batch() -> Scenario:
        a = rb(
            "recordbase batch 100",
            base + f"{T}/writes/records",
            "POST",
            b.batch_body,
            auth=auth,
            unit="rows/s",
            per_request=100,
        )
        if sqlite:
            refs = [
                b.ref(
                    "raw SQLite executemany 100",
                    "sqlite-batch",
                    str(b.work),
                    b.batch_body,
                    "rows/s",
                    rows=True,
                )
            ]
            # Not a target: the same rows into recordbase's own table and indexes, so the
            # table shows how much of the gap to the two-column reference the table is.
            refs.append(
                b.ref(
                    "raw SQLite executemany 100, recordbase's table",
                    "sqlite-batch-schema",
                    str(b.work),
                    b.batch_body,
                    "rows/s",
                    rows=True,
                )
            )
            targets = [Target(refs[0].label, "T2", 0.25, 0.35), Target(refs[1].label, "")]
            if (
                ds
                and _probe("POST", ds[0] + "/ds/rows/-/insert", b.ds_many, ds_auth, (200, 201))
                is None
            ):
                m = ds_measure(
                    "Datasette insert 100", "/ds/rows/-/insert", b.ds_many, "rows/s", 100
                )
                refs.append(m)  # type: ignore[arg-type]
                targets.append(Target("Datasette insert 100", "T3", 5.0, times=True))
        else:
            refs = [
                b.ref("psycopg executemany 100", "pg-batch", url, b.batch_body, "rows/s", True),
                b.ref("psycopg COPY 100", "pg-copy", url, b.batch_body, "rows/s", True),
            ]
            targets = [Target(refs[0].label, "T6", 0.50), Target(refs[1].label, "")]
        return Scenario("batch 100", backend, a, refs, targets)

    def upsert() -> Scenario:
        path = f"{T}/upserts/records?on=external_id"
        a = rb("recordbase upsert 1", base + path, "PUT", b.upsert_body, auth=auth, upsert=10_000)
        refs = [b.http("echo (bare framework)", b.echo + "/echo", "PUT", b.upsert_body)]
        return Scenario("upsert by external id", backend, a, refs, [Target(refs[0].label, "")])

    def query_ref(label: str, where: str, params: list[list[Any]]) -> list[Measure]:
        """The raw reference of a list scenario: its SQL (`where` in SQLite's form, with ?)
        in-process on the same database; on PostgreSQL through psycopg, `where` rewritten to
        the expressions recordbase's PostgreSQL dialect uses."""
        cols = ", ".join(RECORD_COLUMNS)
        sql = (
            f"SELECT {cols} FROM records WHERE type_id = ? AND {where} "
            "ORDER BY created_at, id LIMIT 100"
        )
        kind, first = "sqlite-query", []
        if sqlite:
            # As recordbase's SQLite store has it: the type's number as a literal (records
            # hold type numbers; a literal is what lets the planner use a partial index).
            with contextlib.closing(sqlite3.connect(f"file:{url}?mode=ro", uri=True)) as conn:
                number = conn.execute(
                    "SELECT no FROM record_types WHERE id = ?", (loaded.items_type_id,)
                ).fetchone()[0]
            sql = sql.replace("type_id = ?", f"type_id = {int(number)}")
        else:
            # As recordbase's compiler and its partial expression indexes have it: the type
            # id as a literal (so generic plans still match an index's predicate), the
            # indexed path by the index's own expression, the unindexed one as text.
            kind, first = "pg-query", []
            sql = sql.replace("type_id = ?", f"type_id = '{loaded.items_type_id}'")
            sql = sql.replace(
                """json_extract(data, '$."customer"') = ?""",
                "NULLIF(data #> '{customer}', 'null'::jsonb) = ?::jsonb",
            )
            sql = sql.replace("json_extract(data, '$.status')", "(data #>> '{status}')")
            sql = sql.replace("?", "%s")
            label = label.replace("raw SQLite", "raw psycopg")
        if not sqlite and "::jsonb" in sql:  # bound as jsonb text, as recordbase binds it
            params = [[orjson.dumps(v).decode() for v in p] for p in params]
        spec = {
            "sql": sql,
            "params": [[*first, *p] for p in params],
            "columns": list(RECORD_COLUMNS),
        }
        spec_file = b.file(f"spec-{backend}-{_digest(where)}.json", spec)
        return [b.ref(label, kind, url, spec_file, "q/s")]

    def filtered() -> Scenario:
        paths = [f"{T}/items/records?data.status__eq={s}&limit=100" for s in data.STATUSES]
        a = rb("recordbase filtered list", base + paths[0], paths=paths, auth=auth, unit="q/s")
        refs = query_ref(
            "raw SQLite query + JSON",
            "json_extract(data, '$.status') = ?",
            [[s] for s in data.STATUSES],
        )
        targets = [Target(r.label, "T4", 0.70) if sqlite else Target(r.label, "") for r in refs]
        if sqlite and ds:
            ds_paths = [f"/ds/items.json?status={s}&_size=100" for s in data.STATUSES]
            refs.append(
                b.http(
                    "Datasette filtered table JSON",
                    ds[0] + ds_paths[0],
                    paths=ds_paths,
                    auth=ds_auth,
                    unit="q/s",
                )
            )
            targets.append(Target(refs[-1].label, "T3", 4.0, times=True))
        s = Scenario(f"filtered list, unindexed, {records:,}", backend, a, refs, targets)
        if sqlite:
            s.p99_limit_ms, s.p99_target = 100.0, "T4"
        return s

    def indexed() -> Scenario:
        customers = [f"c-{(i * 37) % data.CUSTOMERS}" for i in range(200)]
        paths = [f"{T}/items/records?data.customer__eq={c}&limit=100" for c in customers]
        a = rb(
            "recordbase filtered list (indexed)",
            base + paths[0],
            paths=paths,
            auth=auth,
            unit="q/s",
        )
        refs = query_ref(
            "raw SQLite query + JSON",
            # the declared index's own expression (a person writing SQL over that index
            # would; `'$.customer'` is another expression to SQLite and scans)
            """json_extract(data, '$."customer"') = ?""",
            [[c] for c in customers],
        )
        return Scenario(
            f"filtered list, indexed, {records:,}",
            backend,
            a,
            refs,
            [Target(r.label, "") for r in refs],
        )

    def keyset() -> Scenario:
        if loaded.deep_cursor is None:
            return _skipped("keyset deep", backend, "no deep cursor (too few records)")
        path = f"{T}/items/records?limit=100&cursor={loaded.deep_cursor}"
        a = rb("recordbase keyset page", base + path, auth=auth, unit="q/s")
        after = loaded.deep_after or ("", "")
        refs = query_ref(
            "raw SQLite keyset + JSON",
            # the row-value form seeks the index; the OR form scans from the first record
            "(created_at, id) > (?, ?)",
            [[after[0], after[1]]],
        )
        return Scenario(
            f"keyset page at {int(records * 0.9):,}",
            backend,
            a,
            refs,
            [Target(r.label, "") for r in refs],
        )

    def keywords() -> Scenario:
        a = rb(
            "recordbase Keywords AI log", base + "/api/request-logs/", "POST", b.kw_body, auth=auth
        )
        refs = [b.http("echo (bare framework)", b.echo + "/echo", "POST", b.kw_body)]
        return Scenario("Keywords AI log create", backend, a, refs, [Target(refs[0].label, "")])

    add(
        "create",
        lambda: probe_or("create 1", "POST", f"{T}/writes/records", b.create_body, (201,), create),
    )
    add(
        "batch",
        lambda: probe_or("batch 100", "POST", f"{T}/writes/records", b.batch_body, (201,), batch),
    )
    add(
        "upsert",
        lambda: probe_or(
            "upsert by external id",
            "PUT",
            f"{T}/upserts/records?on=external_id",
            b.upsert_body,
            (200,),
            upsert,
        ),
    )
    add(
        "filter",
        lambda: probe_or(
            f"filtered list, unindexed, {records:,}",
            "GET",
            f"{T}/items/records?data.status__eq=open&limit=100",
            "",
            (200,),
            filtered,
        ),
    )
    add(
        "indexed",
        lambda: probe_or(
            f"filtered list, indexed, {records:,}",
            "GET",
            f"{T}/items/records?data.customer__eq=c-1&limit=100",
            "",
            (200,),
            indexed,
        ),
    )
    add(
        "keyset",
        lambda: probe_or(
            f"keyset page at {int(records * 0.9):,}",
            "GET",
            f"{T}/items/records?limit=100&cursor={loaded.deep_cursor}",
            "",
            (200,),
            keyset,
        ),
    )
    add(
        "keywords",
        lambda: probe_or(
            "Keywords AI log create", "POST", "/api/request-logs/", b.kw_body, (200, 201), keywords
        ),
    )
    return out


__all__ = ["build", "orjson"]
