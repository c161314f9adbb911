"""SQL for jobs and Idempotency-Key rows, shared by the SQLite and PostgreSQL transactions.

A mixin over a DB-API connection (`self.conn`): statements are written with `?` marks and
turned into the driver's style by `_x`. Claiming a job differs per database only in the lock:
SQLite has one writer, so select-then-update inside the write transaction is atomic already;
PostgreSQL adds `FOR UPDATE SKIP LOCKED`, so concurrent workers each take a different job
without waiting on one another.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from recordbase.core.idempotency import DONE, IdempotencyEntry, StoredResponse
from recordbase.core.jobs import QUEUED, RUNNING, ItemResult, Job
from recordbase.stores.common import parse_ts, ts

JOB_COLUMNS = (
    "id, project_id, type_key, action, options, status, total, succeeded, failed, attempts, "
    "created_at, updated_at, started_at, finished_at, error"
)
IDEM_COLUMNS = (
    "project_id, key, token, fingerprint, state, created_at, expires_at, locked_until, "
    "status, headers, body"
)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _load(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


def job_from_row(row: Any) -> Job:
    return Job(
        id=row[0],
        project_id=row[1],
        type_key=row[2],
        action=row[3],
        options=_load(row[4]),
        status=row[5],
        total=int(row[6]),
        succeeded=int(row[7]),
        failed=int(row[8]),
        attempts=int(row[9]),
        created_at=parse_ts(row[10]),
        updated_at=parse_ts(row[11]),
        started_at=parse_ts(row[12]),
        finished_at=parse_ts(row[13]),
        error=_load(row[14]) if row[14] is not None else None,
    )


class JobsSql:
    conn: Any
    placeholder = "?"
    skip_locked = ""

    def _x(self, sql: str, params: Sequence[Any] = ()) -> Any:
        if self.placeholder != "?":
            sql = sql.replace("?", self.placeholder)
        return self.conn.execute(sql, tuple(params))

    # jobs ----------------------------------------------------------------------------------

    def insert_job(self, job: Job, principal: dict[str, Any], items: Sequence[Any]) -> None:
        self._x(
            f"INSERT INTO jobs ({JOB_COLUMNS}, principal) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.id,
                job.project_id,
                job.type_key,
                job.action,
                _json(job.options),
                job.status,
                job.total,
                job.succeeded,
                job.failed,
                job.attempts,
                ts(job.created_at),
                ts(job.updated_at),
                ts(job.started_at),
                ts(job.finished_at),
                None if job.error is None else _json(job.error),
                _json(principal),
            ),
        )
        sql = "INSERT INTO job_items (job_id, idx, payload) VALUES (?, ?, ?)"
        if self.placeholder != "?":
            sql = sql.replace("?", self.placeholder)
        # A cursor's executemany: both sqlite3 and psycopg connections hand one out.
        self.conn.cursor().executemany(
            sql, [(job.id, i, _json(item)) for i, item in enumerate(items)]
        )

    def get_job(self, project_id: str, job_id: str) -> Job | None:
        row = self._x(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ? AND project_id = ?",
            (job_id, project_id),
        ).fetchone()
        return None if row is None else job_from_row(row)

    def job_results(self, job_id: str) -> list[ItemResult]:
        rows = self._x(
            "SELECT result FROM job_items WHERE job_id = ? AND done = 1 ORDER BY idx", (job_id,)
        ).fetchall()
        return [ItemResult.from_dict(_load(r[0])) for r in rows]

    def pending_job_items(self, job_id: str, limit: int) -> list[tuple[int, Any]]:
        rows = self._x(
            "SELECT idx, payload FROM job_items WHERE job_id = ? AND done = 0 "
            f"ORDER BY idx LIMIT {int(limit)}",
            (job_id,),
        ).fetchall()
        return [(int(r[0]), _load(r[1])) for r in rows]

    def claim_job(
        self, worker: str, now: datetime, lease_until: datetime
    ) -> tuple[Job, dict[str, Any]] | None:
        # Queued jobs first (oldest first), then running jobs whose worker's lease ran out.
        row = self._x(
            "SELECT id FROM jobs WHERE status = ? ORDER BY created_at, id LIMIT 1"
            + self.skip_locked,
            (QUEUED,),
        ).fetchone()
        if row is None:
            row = self._x(
                "SELECT id FROM jobs WHERE status = ? AND lease_until < ? "
                "ORDER BY lease_until, id LIMIT 1" + self.skip_locked,
                (RUNNING, ts(now)),
            ).fetchone()
        if row is None:
            return None
        claimed = self._x(
            "UPDATE jobs SET status = ?, claimed_by = ?, lease_until = ?, attempts = attempts + 1, "
            "started_at = COALESCE(started_at, ?), updated_at = ? WHERE id = ? "
            f"RETURNING {JOB_COLUMNS}, principal",
            (RUNNING, worker, ts(lease_until), ts(now), ts(now), row[0]),
        ).fetchone()
        return job_from_row(claimed), _load(claimed[15])

    def record_job_items(
        self,
        job_id: str,
        worker: str,
        results: Sequence[ItemResult],
        now: datetime,
        lease_until: datetime,
    ) -> bool:
        ok = sum(1 for r in results if r.ok)
        held = self._x(
            "UPDATE jobs SET succeeded = succeeded + ?, failed = failed + ?, lease_until = ?, "
            "updated_at = ? WHERE id = ? AND claimed_by = ? AND status = ?",
            (ok, len(results) - ok, ts(lease_until), ts(now), job_id, worker, RUNNING),
        ).rowcount
        if held != 1:
            return False
        for result in results:
            changed = self._x(
                "UPDATE job_items SET done = 1, result = ? WHERE job_id = ? AND idx = ? "
                "AND done = 0",
                (_json(result.as_dict()), job_id, result.index),
            ).rowcount
            if changed != 1:
                return False
        return True

    def finish_job(
        self, job_id: str, worker: str, status: str, error: dict[str, Any] | None, now: datetime
    ) -> bool:
        changed = self._x(
            "UPDATE jobs SET status = ?, error = ?, finished_at = ?, updated_at = ?, "
            "lease_until = NULL WHERE id = ? AND claimed_by = ? AND status = ?",
            (
                status,
                None if error is None else _json(error),
                ts(now),
                ts(now),
                job_id,
                worker,
                RUNNING,
            ),
        ).rowcount
        return bool(changed == 1)

    def release_jobs(self, worker: str, now: datetime) -> int:
        changed = self._x(
            "UPDATE jobs SET status = ?, claimed_by = NULL, lease_until = NULL, updated_at = ? "
            "WHERE claimed_by = ? AND status = ?",
            (QUEUED, ts(now), worker, RUNNING),
        ).rowcount
        return int(changed)

    # idempotency keys ------------------------------------------------------------------------

    def get_idempotency(self, project_id: str, key: str) -> IdempotencyEntry | None:
        row = self._x(
            f"SELECT {IDEM_COLUMNS} FROM idempotency_keys WHERE project_id = ? AND key = ?",
            (project_id, key),
        ).fetchone()
        if row is None:
            return None
        response = None
        if row[4] == DONE:
            headers = [(str(k), str(v)) for k, v in _load(row[9])]
            response = StoredResponse(int(row[8]), headers, bytes(row[10]))
        return IdempotencyEntry(
            project_id=row[0],
            key=row[1],
            token=row[2],
            fingerprint=row[3],
            state=row[4],
            created_at=parse_ts(row[5]),
            expires_at=parse_ts(row[6]),
            locked_until=parse_ts(row[7]),
            response=response,
        )

    def insert_idempotency(self, entry: IdempotencyEntry) -> bool:
        changed = self._x(
            "INSERT INTO idempotency_keys (project_id, key, token, fingerprint, state, "
            "created_at, expires_at, locked_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (project_id, key) DO NOTHING",
            _entry_params(entry),
        ).rowcount
        return bool(changed == 1)

    def replace_idempotency(self, entry: IdempotencyEntry, old_token: str) -> bool:
        changed = self._x(
            "UPDATE idempotency_keys SET token = ?, fingerprint = ?, state = ?, created_at = ?, "
            "expires_at = ?, locked_until = ?, status = NULL, headers = NULL, body = NULL "
            "WHERE project_id = ? AND key = ? AND token = ?",
            (*_entry_params(entry)[2:], entry.project_id, entry.key, old_token),
        ).rowcount
        return bool(changed == 1)

    def finish_idempotency(
        self, project_id: str, key: str, token: str, response: StoredResponse
    ) -> bool:
        changed = self._x(
            "UPDATE idempotency_keys SET state = ?, status = ?, headers = ?, body = ? "
            "WHERE project_id = ? AND key = ? AND token = ?",
            (
                DONE,
                response.status,
                _json(response.headers),
                response.body,
                project_id,
                key,
                token,
            ),
        ).rowcount
        return bool(changed == 1)

    def delete_idempotency(self, project_id: str, key: str, token: str) -> None:
        self._x(
            "DELETE FROM idempotency_keys WHERE project_id = ? AND key = ? AND token = ?",
            (project_id, key, token),
        )

    def purge_idempotency(self, now: datetime) -> int:
        return int(
            self._x("DELETE FROM idempotency_keys WHERE expires_at <= ?", (ts(now),)).rowcount
        )


def _entry_params(e: IdempotencyEntry) -> tuple[Any, ...]:
    return (
        e.project_id,
        e.key,
        e.token,
        e.fingerprint,
        e.state,
        ts(e.created_at),
        ts(e.expires_at),
        ts(e.locked_until),
    )
