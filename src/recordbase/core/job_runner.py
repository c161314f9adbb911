"""The job runner: accepts jobs, reports them, and carries them out exactly once per item.

`submit` checks a job (scope, type, action, every item's shape) and stores it with all its items
in one transaction: once it returns, the job survives a crash. A worker (`run_pending`, or the
background loop every `recordbase serve` process runs) claims one job at a time with a lease and
applies its items in chunks through the RecordService's own write methods, so jobs get exactly
the semantics of synchronous writes. Each chunk's per-item results are recorded by the service's
after-write hook (AFTER_WRITE) inside the chunk's own transaction: a chunk and its "done" marks
commit together or not at all, so an item is never applied twice, whatever moment the process
dies. The same statement renews the lease and fails when another worker has taken the job over
(its lease ran out), rolling the chunk back. A chunk that fails is retried one item at a time,
so each item's result names its own error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from recordbase.core.jobs import (
    AFTER_WRITE,
    COMPLETED,
    FAILED,
    QUEUED,
    ItemResult,
    Job,
    JobLeaseLost,
    check_items,
    check_options,
    principal_from_dict,
    principal_to_dict,
    record_input,
)
from recordbase.core.records import Principal, Record, parse_record_input
from recordbase.core.store import WriteTx
from recordbase.errors import (
    FieldError,
    Forbidden,
    JobNotFound,
    RecordbaseError,
    TypeNotFound,
    ValidationFailed,
)

if TYPE_CHECKING:
    from recordbase.core.service import RecordService, UpsertResult

log = logging.getLogger("recordbase.jobs")

# Errors that stop the whole job (they would fail every item alike), not one item.
_JOB_FATAL = (TypeNotFound, Forbidden)
_PURGE_EVERY = 60.0  # seconds between sweeps of expired Idempotency-Key rows


class JobRunner:
    def __init__(self, service: RecordService) -> None:
        self.service = service
        self.store = service.store
        self.settings = service.settings
        self.worker_id = service.new_id()
        self.wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # accepting and reporting --------------------------------------------------------------

    async def submit(
        self,
        p: Principal,
        type_key: str,
        action: str,
        items: Sequence[Any],
        options: dict[str, Any] | None = None,
        *,
        where: str = "/items",
        precheck: bool = False,
    ) -> Job:
        p.require("records", "write", type_key)
        opts = check_options(action, options)
        rtype = await self.service.type_for(p, type_key)
        if action == "upsert":
            self.service._upsert_matcher(rtype, opts["on"])  # 400 listing the valid keys
        check_items(action, opts, items, self.settings.max_batch, where)
        now = self.service.clock()
        if precheck and action == "create":
            self._precheck(p, rtype, items, where, now)
        job = Job(
            id=self.service.new_id(),
            project_id=p.project_id,
            type_key=type_key,
            action=action,
            options=opts,
            status=QUEUED,
            total=len(items),
            succeeded=0,
            failed=0,
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        stored = list(items)
        await self.store.write(lambda tx: tx.insert_job(job, principal_to_dict(p), stored))
        self.wake.set()
        return job

    def _precheck(
        self, p: Principal, rtype: Any, items: Sequence[Any], where: str, now: datetime
    ) -> None:
        """The checks a synchronous create makes before its transaction, on every item."""
        errors: list[FieldError] = []
        for i, item in enumerate(items):
            parsed = parse_record_input(item, f"{where}/{i}", errors)
            self.service._new_record(p, rtype, parsed, f"{where}/{i}", errors, now)
        if errors:
            raise ValidationFailed(
                f"{len(errors)} problem(s); first at {errors[0].path}: {errors[0].message}",
                errors=errors,
            )

    async def get(self, p: Principal, job_id: str, *, results: bool = True) -> Job:
        def read(tx: Any) -> Job:
            job: Job | None = tx.get_job(p.project_id, job_id)
            if job is None:
                raise JobNotFound(f"No job {job_id!r} in this project.")
            return replace(job, results=tx.job_results(job.id)) if results else job

        job = await self.store.read(read)
        p.require("records", "read", job.type_key)
        return job

    # carrying out -------------------------------------------------------------------------

    async def run_pending(self) -> int:
        """Carry out every job that can be claimed now; returns how many were claimed."""
        count = 0
        while (claim := await self._claim()) is not None:
            count += 1
            await self._run(*claim)
        return count

    async def _claim(self) -> tuple[Job, dict[str, Any]] | None:
        now = self.service.clock()
        lease = self._lease(now)
        return await self.store.write(lambda tx: tx.claim_job(self.worker_id, now, lease))

    def _lease(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.settings.job_lease_seconds)

    async def _run(self, job: Job, submitter: dict[str, Any]) -> None:
        if job.attempts > self.settings.job_max_attempts:
            await self._finish(
                job,
                FAILED,
                {
                    "code": "job_gave_up",
                    "message": f"The job's worker failed {job.attempts - 1} times.",
                },
            )
            return
        p = principal_from_dict(submitter)
        try:
            chunk = max(1, self.settings.job_chunk)
            while items := await self.store.read(lambda tx: tx.pending_job_items(job.id, chunk)):
                await self._apply_chunk(job, p, items)
            await self._finish(job, COMPLETED, None)
        except JobLeaseLost:
            log.warning("job %s: lease lost; another worker carries on", job.id)
        except _JOB_FATAL as exc:
            await self._finish(job, FAILED, {"code": exc.code, "message": exc.detail})
        except Exception:  # left claimed: once the lease runs out, a worker retries the job
            log.exception("job %s: worker failed; the job will be retried", job.id)

    async def _finish(self, job: Job, status: str, error: dict[str, Any] | None) -> None:
        now = self.service.clock()
        await self.store.write(lambda tx: tx.finish_job(job.id, self.worker_id, status, error, now))

    async def _apply_chunk(self, job: Job, p: Principal, items: list[tuple[int, Any]]) -> None:
        if len(items) > 1 and job.action in ("create", "upsert"):
            try:
                await self._apply(job, p, items)
                return
            except _JOB_FATAL:
                raise
            except RecordbaseError:
                pass  # some item failed: apply them one at a time to tell which
        for item in items:
            try:
                await self._apply(job, p, [item])
            except _JOB_FATAL:
                raise
            except RecordbaseError as exc:
                await self._record(job, [ItemResult.failure(item[0], exc)])

    async def _record(self, job: Job, results: list[ItemResult]) -> None:
        now = self.service.clock()
        lease = self._lease(now)

        def write(tx: WriteTx) -> None:
            if not tx.record_job_items(job.id, self.worker_id, results, now, lease):
                raise JobLeaseLost(job.id)

        await self.store.write(write)

    async def _apply(self, job: Job, p: Principal, items: list[tuple[int, Any]]) -> None:
        indexes = [i for i, _ in items]
        now = self.service.clock()
        lease = self._lease(now)

        def after(tx: WriteTx, outcome: Any) -> None:
            results = _results(job.action, indexes, outcome)
            if not tx.record_job_items(job.id, self.worker_id, results, now, lease):
                raise JobLeaseLost(job.id)  # rolls this chunk's writes back

        token = AFTER_WRITE.set(after)
        try:
            await self._call(job, p, [payload for _, payload in items])
        finally:
            AFTER_WRITE.reset(token)

    async def _call(self, job: Job, p: Principal, payloads: list[Any]) -> Any:
        s, t, o = self.service, job.type_key, job.options
        if job.action == "create":
            return await s.create_records(p, t, [record_input(x) for x in payloads])
        if job.action == "upsert":
            inputs = [record_input(x) for x in payloads]
            return await s.upsert_records(p, t, o["on"], inputs, merge=o["merge"])
        (item,) = payloads
        if job.action == "update":
            return await s.update_record(
                p, t, item["id"], record_input(item), if_match=o["if_match"], merge=o["merge"]
            )
        if job.action == "delete":
            return await s.delete_record(p, t, item["id"], if_match=o["if_match"])
        return await s.delete_by(p, t, o["on"], item[o["on"]])

    # the background worker ----------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        """Stop the worker and hand its running jobs back to the queue (a clean shutdown)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        now = self.service.clock()
        await self.store.write(lambda tx: tx.release_jobs(self.worker_id, now))

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        purged = loop.time()
        while True:
            self.wake.clear()
            try:
                await self.run_pending()
                if loop.time() - purged >= _PURGE_EVERY:
                    purged = loop.time()
                    await self.service.idempotency.purge()
            except Exception:
                log.exception("job worker: unexpected error; carrying on")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.job_poll_seconds)


def _results(action: str, indexes: list[int], outcome: Any) -> list[ItemResult]:
    if action == "create":
        records: list[Record] = outcome
        return [_ok(i, "create", r) for i, r in zip(indexes, records, strict=True)]
    if action == "upsert":
        upserted: UpsertResult = outcome
        created = set(upserted.created)
        return [
            _ok(i, "create" if r.id in created else "update", r)
            for i, r in zip(indexes, upserted.records, strict=True)
        ]
    return [_ok(indexes[0], "update" if action == "update" else "delete", outcome)]


def _ok(index: int, action: str, r: Record) -> ItemResult:
    return ItemResult(index, True, action, r.id, r.external_id, r.name, r.version)
