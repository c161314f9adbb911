"""Settings: the one place where configuration enters recordbase.

Every field has a default and a help text; `Settings.from_env()` reads `RECORDBASE_<FIELD>`
variables. No other module reads `os.environ` (DESIGN.md, house rule 8). The docs test checks
that every field here is documented in docs/configuration.md.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    database_url: str = _setting(
        "recordbase.db",
        "SQLite file path (or sqlite:///path) or postgresql://... URL of the database.",
    )
    redis_url: str = _setting(
        "", "Redis URL for shared rate limits (empty: limits are kept in each process's memory)."
    )
    host: str = _setting("127.0.0.1", "Address `recordbase serve` listens on.")
    port: int = _setting(8000, "Port `recordbase serve` listens on.")
    workers: int = _setting(1, "Number of worker processes `recordbase serve` starts.")
    max_body_bytes: int = _setting(
        10 * 1024 * 1024, "Largest request body accepted, in bytes (larger: 413 body_too_large)."
    )
    max_depth: int = _setting(
        32, "Deepest JSON nesting accepted in a request body (deeper: 400 nesting_too_deep)."
    )
    max_record_bytes: int = _setting(
        256 * 1024, "Largest record `data` accepted, as compact JSON bytes (413 record_too_large)."
    )
    max_batch: int = _setting(1000, "Most records in one batch write (more: 413 batch_too_large).")
    default_page_size: int = _setting(100, "Page size when a list request gives no limit.")
    max_page_size: int = _setting(1000, "Largest page size a list request may ask for.")
    max_in_values: int = _setting(1000, "Most values in one `in` filter.")
    default_rate: float = _setting(
        50.0,
        "Token-bucket refill rate, in requests per second, for a key with neither its own "
        "nor a project default.",
    )
    default_burst: int = _setting(
        100, "Token-bucket size (burst) for a key with neither its own nor a project default."
    )
    ratelimit_fail_open: bool = _setting(
        True, "When the Redis limiter is unreachable: admit requests (true) or answer 503 (false)."
    )
    sqlite_synchronous: str = _setting(
        "NORMAL",
        "SQLite `synchronous` pragma in WAL mode: NORMAL survives a killed process, FULL also "
        "survives power loss.",
    )
    sqlite_readers: int = _setting(
        0,
        "Number of SQLite reader connections (threads); 0 means one per CPU core the process "
        "may run on, at most 4 (more readers than cores only contend for the GIL).",
    )
    sqlite_analyze_seconds: int = _setting(
        300,
        "The SQLite writer refreshes planner statistics (a sampled ANALYZE) at most this often "
        "while writes come in; 0 turns it off (statistics are also taken at start).",
    )
    pg_analyze_seconds: int = _setting(
        60,
        "The PostgreSQL store refreshes planner statistics of the records tables (ANALYZE, one "
        "worker at a time) at most this often while writes come in; 0 leaves it to autovacuum.",
    )
    gc_threshold: int = _setting(
        50_000,
        "First-generation threshold of Python's cyclic garbage collector in `recordbase serve` "
        "workers (Python's default: 700); the objects alive once the worker has started are "
        "also frozen out of the collector's walks. 0 leaves the collector as Python sets it.",
    )
    malloc_keep_mb: int = _setting(
        64,
        "Freed heap memory, in MiB, that glibc's malloc keeps for reuse in each `recordbase "
        "serve` worker instead of handing it back to the kernel at once (Linux with glibc). "
        "0 leaves glibc's defaults.",
    )
    group_commit_max: int = _setting(
        256, "Most queued write requests the SQLite writer folds into one transaction."
    )
    sqlite_writer: str = _setting(
        "thread",
        "Who runs SQLite write groups: `thread` (a writer thread) or `loop` (the event loop "
        "runs the writes between requests and a committer thread the COMMIT). Slow writes "
        "(type and key changes) always use the writer thread.",
    )
    sqlite_threads: str = _setting(
        "batch",
        "Scheduling of the SQLite writer, committer and checkpointer threads (Linux): `batch` "
        "(SCHED_BATCH: a woken thread waits for the event loop's next pause instead of "
        "preempting it) or `normal` (the system's default policy).",
    )
    pg_pool_min: int = _setting(2, "PostgreSQL pool: connections kept open per worker.")
    pg_pool_max: int = _setting(10, "PostgreSQL pool: most connections per worker.")
    key_touch_seconds: int = _setting(
        60, "A key's last_used_at is written at most once per this many seconds."
    )
    idempotency_ttl_seconds: int = _setting(
        86400, "How long an Idempotency-Key and its stored response are kept."
    )
    idempotency_lock_seconds: int = _setting(
        60,
        "How long a request holding an Idempotency-Key blocks retries with the same key (409 "
        "idempotency_in_progress); after that a retry may run it again (its process died).",
    )
    job_worker: bool = _setting(
        True, "Run the job worker (asynchronous writes) inside each `recordbase serve` process."
    )
    job_poll_seconds: float = _setting(
        1.0,
        "How often an idle job worker looks for jobs queued by other processes (jobs queued "
        "in its own process wake it at once).",
    )
    job_lease_seconds: int = _setting(
        30,
        "How long a job worker's claim on a running job lasts without progress; after that "
        "(its process died) another worker resumes the job where it stopped.",
    )
    job_max_attempts: int = _setting(
        5, "A job whose worker fails this many times is marked failed."
    )
    job_chunk: int = _setting(
        100, "Most job items applied in one transaction (smaller: finer progress)."
    )
    log_level: str = _setting("info", "Log level: debug, info, warning or error.")
    docs_enabled: bool = _setting(True, "Serve /docs (the OpenAPI page for people).")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, prefix: str = "RECORDBASE_"
    ) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(prefix + f.name.upper())
            if raw is None:
                continue
            values[f.name] = _coerce(f.name, f.type, raw)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _coerce(name: str, kind: Any, raw: str) -> Any:
    kind_name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if kind_name == "int":
            return int(raw)
        if kind_name == "float":
            return float(raw)
        if kind_name == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
    except ValueError as exc:
        raise ValueError(f"RECORDBASE_{name.upper()}: cannot read {raw!r} as {kind_name}") from exc
    return raw


def setting_help() -> dict[str, str]:
    """Name -> help text, for docs and `recordbase --help`."""
    return {f.name: str(f.metadata.get("help", "")) for f in fields(Settings)}
