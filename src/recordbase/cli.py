"""The `recordbase` command: a thin shell over the service (DESIGN.md, operator contract).

serve, init, keys create|list|revoke, projects list|set, types apply, records import|export. Every command takes
`--db URL` (else RECORDBASE_DATABASE_URL, else ./recordbase.db). Secrets are printed once, alone
on the last line of stdout, so scripts can capture them with `tail -n1`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson

from recordbase.config import Settings
from recordbase.core.records import Principal, Scope, parse_record_input
from recordbase.core.service import RecordService
from recordbase.errors import FieldError, RecordbaseError, ValidationFailed
from recordbase.stores import open_store

T = TypeVar("T")


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    if getattr(args, "db", None):
        settings = settings.replace(database_url=args.db)
    return settings


def _run(settings: Settings, work: Callable[[RecordService], Awaitable[T]]) -> T:
    async def main() -> T:
        service = RecordService(open_store(settings), settings)
        await service.start()
        try:
            return await work(service)
        finally:
            await service.close()

    return asyncio.run(main())


def parse_duration(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([smhdw])", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: use a number and s, m, h, d or w (e.g. 30d)")
    n, unit = int(match[1]), match[2]
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    return timedelta(seconds=n * seconds)


def parse_rate(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(?:/(s|m|h))?", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: use e.g. 50/s, 600/m or 10000/h")
    per = {"s": 1, "m": 60, "h": 3600}[match[2] or "s"]
    return float(match[1]) / per


def _rate_or_none(text: str) -> float | None:
    """`--rate` of `projects set`: a rate as for keys, or `none` to clear it."""
    return None if text.strip().lower() == "none" else parse_rate(text)


def _burst_or_none(text: str) -> int | None:
    if text.strip().lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use a whole number or none") from None


def _limit_text(rate: float | None, burst: int | None) -> tuple[str, str]:
    """How `projects` prints limits: `50/s`, `100`, or `default` (the deployment's)."""
    return (
        "default" if rate is None else f"{rate:g}/s",
        "default" if burst is None else str(burst),
    )


# commands ---------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _run(settings, lambda s: asyncio.sleep(0))
    print(f"database ready: {settings.database_url}")
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    async def work(s: RecordService) -> Any:
        return await s.create_key(
            args.project,
            args.scope,
            rate=args.rate,
            burst=args.burst,
            expires_in=args.expires,
            name=args.name or "",
        )

    key, secret = _run(_settings(args), work)
    print(f"key {key.id} for project {key.project_name}: {', '.join(map(str, key.scopes))}")
    print("the secret is shown once; store it now:")
    print(secret)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    keys = _run(_settings(args), lambda s: s.list_keys(args.project))
    if args.json:
        for key in keys:
            print(orjson.dumps(key.as_dict(), option=orjson.OPT_UTC_Z).decode())
        return 0
    print(f"{'ID':26}  {'PROJECT':16}  {'PREFIX':10}  {'STATE':8}  SCOPES")
    for key in keys:
        state = "revoked" if key.revoked_at else "active"
        print(
            f"{key.id:26}  {key.project_name[:16]:16}  {key.prefix:10}  {state:8}  "
            f"{' '.join(map(str, key.scopes))}"
        )
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    key = _run(_settings(args), lambda s: s.revoke_key(args.key))
    print(f"revoked {key.id}")
    return 0


def cmd_projects_list(args: argparse.Namespace) -> int:
    projects = _run(_settings(args), lambda s: s.list_projects())
    if args.json:
        for project in projects:
            print(orjson.dumps(project.as_dict(), option=orjson.OPT_UTC_Z).decode())
        return 0
    print(f"{'NAME':24}  {'RATE':12}  BURST")
    for project in projects:
        rate, burst = _limit_text(project.rate, project.burst)
        print(f"{project.name:24}  {rate:12}  {burst}")
    return 0


def cmd_projects_set(args: argparse.Namespace) -> int:
    changes = {k: getattr(args, k) for k in ("rate", "burst") if k in vars(args)}
    if not changes:
        raise ValidationFailed("Nothing to set: give --rate and/or --burst (none clears one).")
    project = _run(_settings(args), lambda s: s.set_project_limits(args.name, **changes))
    rate, burst = _limit_text(project.rate, project.burst)
    print(f"project {project.name}: rate {rate}, burst {burst}")
    return 0


async def _admin(service: RecordService, project: str) -> Principal:
    found = await service.store.read(lambda tx: tx.project_by_name(project))
    if found is None:
        raise ValidationFailed(f"No project {project!r}; `recordbase keys create` makes one.")
    return Principal(found.id, found.name, "cli", (Scope("admin", ""),), user="cli")


def _load_file(path: str) -> Any:
    return orjson.loads(Path(path).read_bytes())


def cmd_types_apply(args: argparse.Namespace) -> int:
    """Create each type in FILE, or update it when it exists (a list or one definition)."""
    raw = _load_file(args.file)
    definitions = raw if isinstance(raw, list) else [raw]

    async def work(s: RecordService) -> list[str]:
        p = await _admin(s, args.project)
        done = []
        existing = {t.key for t in await s.list_types(p)}
        for definition in definitions:
            key = definition.get("key") if isinstance(definition, dict) else None
            if key in existing:
                changes = {k: v for k, v in definition.items() if k != "key"}
                await s.update_type(p, key, changes)
                done.append(f"updated {key}")
            else:
                created = await s.create_type(p, definition)
                done.append(f"created {created.key}")
        return done

    for line in _run(_settings(args), work):
        print(line)
    return 0


def cmd_records_import(args: argparse.Namespace) -> int:
    """Import JSON Lines records (one record per line) in batches, all-or-nothing per batch."""

    async def work(s: RecordService) -> int:
        p = await _admin(s, args.project)
        total = 0
        batch: list[Any] = []
        with open(args.file, "rb") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                errors: list[FieldError] = []
                batch.append(parse_record_input(orjson.loads(line), f"/line/{number}", errors))
                if errors:
                    raise ValidationFailed(f"line {number}: {errors[0].message}", errors=errors)
                if len(batch) >= args.batch:
                    total += len(await _import(s, p, args, batch))
                    batch = []
        if batch:
            total += len(await _import(s, p, args, batch))
        return total

    print(f"imported {_run(_settings(args), work)} record(s)")
    return 0


async def _import(
    s: RecordService, p: Principal, args: argparse.Namespace, batch: list[Any]
) -> Any:
    if args.on:
        return (await s.upsert_records(p, args.type, args.on, batch)).records
    return await s.create_records(p, args.type, batch)


def cmd_records_export(args: argparse.Namespace) -> int:
    from recordbase.core.query import Query

    async def work(s: RecordService) -> int:
        p = await _admin(s, args.project)
        cursor, count = None, 0
        out = sys.stdout.buffer
        while True:
            page = await s.list_records(p, args.type, Query(limit=1000), cursor)
            for record in page.records:
                out.write(orjson.dumps(record.as_dict(), option=orjson.OPT_UTC_Z) + b"\n")
            count += len(page.records)
            cursor = page.next_cursor
            if cursor is None:
                return count

    count = _run(_settings(args), work)
    print(f"exported {count} record(s)", file=sys.stderr)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from recordbase.web.server import http_protocol

    settings = _settings(args)
    _restart_with_malloc_tunables(settings)  # before anything happens (the demo's key)
    if args.demo:
        _demo(settings, args.port or settings.port)
    env = {"RECORDBASE_DATABASE_URL": settings.database_url}
    os.environ.update(env)  # the worker processes read their settings from the environment
    _run(settings, lambda s: asyncio.sleep(0))  # migrations before any worker starts
    uvicorn.run(
        "recordbase.app:serve_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers or settings.workers,
        log_level=settings.log_level,
        access_log=args.access_log,
        server_header=False,
        http=http_protocol(),  # a response's head and body in one write (web/server.py)
    )
    return 0


def _restart_with_malloc_tunables(settings: Settings) -> None:
    """Start this very command again with glibc's malloc tunables in the environment.

    glibc reads GLIBC_TUNABLES only when a process starts (app.malloc_tunables). The new
    process (and its workers) find them set and go on; so does a process whose environment
    already sets them, or where exec fails."""
    from recordbase.app import malloc_tunables

    tunables = malloc_tunables(settings.malloc_keep_mb, os.environ.get("GLIBC_TUNABLES", ""))
    if tunables is None:
        return
    os.environ["GLIBC_TUNABLES"] = tunables
    try:
        os.execv(sys.executable, sys.orig_argv)
    except OSError as exc:
        print(f"warning: could not restart with malloc tunables: {exc}", file=sys.stderr)


def cmd_copy(args: argparse.Namespace) -> int:
    """Copy a whole deployment from one database to another (resumable; counts verified)."""
    from recordbase.stores.transfer import CountMismatch, copy_deployment

    try:
        counts = copy_deployment(args.source, args.target, chunk=args.chunk)
    except CountMismatch as exc:
        print(f"error (count_mismatch): {exc}", file=sys.stderr)
        return 1
    print("copied: " + ", ".join(f"{n} {table}" for table, n in counts.items()))
    return 0


def _demo(settings: Settings, port: int) -> None:
    async def work(s: RecordService) -> str:
        _key, secret = await s.create_key("demo", ["admin"], name="demo")
        p = await _admin(s, "demo")
        if "contact" not in {t.key for t in await s.list_types(p)}:
            await s.create_type(
                p,
                {
                    "key": "contact",
                    "name": "Contact",
                    "schema": {
                        "type": "object",
                        "properties": {
                            "email": {"type": "string", "format": "email"},
                            "age": {"type": "integer", "minimum": 0},
                        },
                        "required": ["email"],
                    },
                    "unique_keys": [{"name": "by_email", "fields": ["data.email"]}],
                },
            )
        return secret

    secret = _run(settings, work)
    print("demo project ready; an admin key for it (shown once):")
    print(f"  export RB_KEY={secret}")
    print(f'  curl -H "Authorization: Bearer $RB_KEY" http://127.0.0.1:{port}/v1/types')
    print(secret, flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recordbase", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(
        name: str, fn: Callable[[argparse.Namespace], int], help: str, into: Any = sub
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = into.add_parser(name, help=help, description=help)
        p.add_argument("--db", help="SQLite path or postgresql:// URL (RECORDBASE_DATABASE_URL)")
        p.set_defaults(fn=fn)
        return p

    serve = command("serve", cmd_serve, "Run the HTTP server.")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument(
        "--demo",
        action="store_true",
        help="Create a demo project with a contact type and print an admin key.",
    )
    serve.add_argument("--access-log", action="store_true", help="Log every request.")
    command("init", cmd_init, "Create or migrate the database.")

    copy = sub.add_parser(
        "copy",
        help="Copy a whole deployment between databases (SQLite <-> PostgreSQL).",
        description="Copy projects, keys, types and records from one database to another. "
        "Resumable: run it again after an interruption. Verifies row counts at the end.",
    )
    copy.add_argument("--from", dest="source", required=True, help="source database URL")
    copy.add_argument("--to", dest="target", required=True, help="target database URL")
    copy.add_argument("--chunk", type=int, default=1000, help="rows per transaction")
    copy.set_defaults(fn=cmd_copy)

    keys = sub.add_parser("keys", help="API keys.").add_subparsers(dest="keys", required=True)
    create = command("create", cmd_keys_create, "Create an API key.", keys)
    create.add_argument("--project", required=True)
    create.add_argument(
        "--scope",
        action="append",
        required=True,
        help="records:read, records:write, types:read, types:write, admin; "
        "records:write:<type> narrows to one type. Repeatable.",
    )
    create.add_argument("--rate", type=parse_rate, help="refill rate, e.g. 50/s")
    create.add_argument("--burst", type=int, help="bucket size")
    create.add_argument("--expires", type=parse_duration, help="lifetime, e.g. 30d")
    create.add_argument("--name", help="a label for the key")
    listing = command("list", cmd_keys_list, "List API keys.", keys)
    listing.add_argument("--project")
    listing.add_argument("--json", action="store_true")
    revoke = command("revoke", cmd_keys_revoke, "Revoke a key (its id or its secret).", keys)
    revoke.add_argument("key")

    projects = sub.add_parser("projects", help="Projects.").add_subparsers(
        dest="projects", required=True
    )
    plist = command("list", cmd_projects_list, "List projects and their rate limits.", projects)
    plist.add_argument("--json", action="store_true")
    pset = command(
        "set",
        cmd_projects_set,
        "Set a project's default rate limit, for its keys created without their own.",
        projects,
    )
    pset.add_argument("name")
    # SUPPRESS: an option not given leaves the project's value as it is.
    pset.add_argument(
        "--rate",
        type=_rate_or_none,
        default=argparse.SUPPRESS,
        help="refill rate, e.g. 50/s or 600/m; none: the deployment default",
    )
    pset.add_argument(
        "--burst",
        type=_burst_or_none,
        default=argparse.SUPPRESS,
        help="bucket size; none: the deployment default",
    )

    types = sub.add_parser("types", help="Record types.").add_subparsers(
        dest="types", required=True
    )
    apply = command("apply", cmd_types_apply, "Create or update types from a JSON file.", types)
    apply.add_argument("file")
    apply.add_argument("--project", required=True)

    records = sub.add_parser("records", help="Records.").add_subparsers(
        dest="records", required=True
    )
    imp = command("import", cmd_records_import, "Import JSON Lines records.", records)
    imp.add_argument("file")
    imp.add_argument("--project", required=True)
    imp.add_argument("--type", required=True)
    imp.add_argument("--on", help="upsert on external_id, name or a unique key")
    imp.add_argument("--batch", type=int, default=500)
    exp = command("export", cmd_records_export, "Export records as JSON Lines.", records)
    exp.add_argument("--project", required=True)
    exp.add_argument("--type", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.fn(args)
    except RecordbaseError as exc:
        print(f"error ({exc.code}): {exc.detail}", file=sys.stderr)
        for err in exc.errors[:10]:
            print(f"  {err.path}: {err.message}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
