"""Jobs: durable asynchronous writes, as plain data (the runner is core/job_runner.py).

A job is one write request accepted now and carried out later: a record type, an action, its
options and a list of items (native record objects). Its status moves queued -> running ->
completed (every item was tried; each item's result says whether it succeeded) or failed (the
job as a whole could not go on: its type is gone, its key lost the scope, or its worker failed
`job_max_attempts` times). This module checks a job's items at submission, so a malformed job is
a 400 before it is accepted, and turns jobs, results and principals into JSON and back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from recordbase.core.records import Principal, RecordInput, Scope, parse_record_input
from recordbase.errors import (
    BadRequest,
    BatchTooLarge,
    FieldError,
    RecordbaseError,
    ValidationFailed,
)

if TYPE_CHECKING:  # the store protocol names this module's types
    from recordbase.core.store import WriteTx

QUEUED: Final = "queued"
RUNNING: Final = "running"
COMPLETED: Final = "completed"
FAILED: Final = "failed"
STATUSES: Final = (QUEUED, RUNNING, COMPLETED, FAILED)

# action -> the options it takes, with their defaults.
ACTIONS: Final[dict[str, dict[str, Any]]] = {
    "create": {},
    "upsert": {"on": "external_id", "merge": False},
    "update": {"merge": True, "if_match": None},
    "delete": {"if_match": None},
    "delete_by": {"on": "external_id"},
}


# The job runner's hook into RecordService._write: when set (in the runner's task), it is called
# with the transaction and the write's result right after the write, inside the same
# transaction, to record the items' results: they commit with the write or not at all.
AFTER_WRITE: ContextVar[Callable[[WriteTx, Any], None] | None] = ContextVar(
    "recordbase_after_write", default=None
)


class JobLeaseLost(Exception):
    """This worker's claim on a job ran out and another worker holds it now: stop, roll back."""


@dataclass(frozen=True)
class ItemResult:
    """What became of one item: `ok` with the record it wrote, or the error it met."""

    index: int
    ok: bool
    action: str | None = None  # create | update | delete
    id: str | None = None
    external_id: str | None = None
    name: str | None = None
    version: int | None = None
    error: dict[str, Any] | None = None  # {code, status, message, errors: [{path, code, message}]}

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "ok": self.ok}
        if self.ok:
            out.update(
                action=self.action,
                id=self.id,
                external_id=self.external_id,
                name=self.name,
                version=self.version,
            )
        else:
            out["error"] = self.error
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ItemResult:
        return cls(
            index=d["index"],
            ok=d["ok"],
            action=d.get("action"),
            id=d.get("id"),
            external_id=d.get("external_id"),
            name=d.get("name"),
            version=d.get("version"),
            error=d.get("error"),
        )

    @classmethod
    def failure(cls, index: int, exc: RecordbaseError) -> ItemResult:
        # Error paths are made relative to the item: "/records/0/data/x" -> "/data/x".
        errors = [{**e.as_dict(), "path": _relative(e.path)} for e in exc.errors]
        return cls(
            index,
            False,
            error={"code": exc.code, "status": exc.status, "message": exc.detail, "errors": errors},
        )


def _relative(path: str) -> str:
    if path.startswith("/records/"):
        rest = path[len("/records/") :]
        _, _, tail = rest.partition("/")
        return "/" + tail if tail else ""
    return path


@dataclass(frozen=True)
class Job:
    id: str
    project_id: str
    type_key: str
    action: str
    options: dict[str, Any]
    status: str
    total: int
    succeeded: int
    failed: int
    attempts: int
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: dict[str, Any] | None = None
    results: list[ItemResult] | None = field(default=None, compare=False)

    @property
    def processed(self) -> int:
        return self.succeeded + self.failed

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "type": self.type_key,
            "action": self.action,
            "options": self.options,
            "status": self.status,
            "total": self.total,
            "processed": self.processed,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "progress": round(self.processed / self.total, 4) if self.total else 1.0,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
        }
        if self.results is not None:
            out["results"] = [r.as_dict() for r in self.results]
        return out


# principals ---------------------------------------------------------------------------------


def principal_to_dict(p: Principal) -> dict[str, Any]:
    """The submitter, stored with the job: the job runs with the scopes it had at submission."""
    return {
        "project_id": p.project_id,
        "project_name": p.project_name,
        "key_id": p.key_id,
        "scopes": [str(s) for s in p.scopes],
        "user": p.user,
        "extra": p.extra,
    }


def principal_from_dict(d: dict[str, Any]) -> Principal:
    return Principal(
        project_id=d["project_id"],
        project_name=d["project_name"],
        key_id=d["key_id"],
        scopes=tuple(Scope.parse(s) for s in d["scopes"]),
        user=d.get("user"),
        extra=d.get("extra") or {},
    )


# submission checks --------------------------------------------------------------------------


def check_options(action: str, options: dict[str, Any] | None) -> dict[str, Any]:
    """The action's options with defaults filled in; unknown actions or options are 400s."""
    if action not in ACTIONS:
        raise BadRequest(
            f"Unknown job action {action!r}; valid: {', '.join(ACTIONS)}.",
            extra={"valid": list(ACTIONS)},
        )
    allowed = ACTIONS[action]
    given = options or {}
    unknown = [k for k in given if k not in allowed]
    if unknown:
        raise BadRequest(
            f"Job action {action!r} takes no option(s) {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(allowed) or 'none'}.",
            extra={"valid": list(allowed)},
        )
    merged = {**allowed, **given}
    if action == "delete_by" and merged["on"] not in ("external_id", "name"):
        raise BadRequest(
            f"delete_by cannot match on {merged['on']!r}; valid: external_id, name.",
            extra={"valid": ["external_id", "name"]},
        )
    if "merge" in merged and not isinstance(merged["merge"], bool):
        raise BadRequest("The job option merge must be true or false.")
    if merged.get("if_match") is not None and not isinstance(merged["if_match"], int):
        raise BadRequest("The job option if_match must be a record version (an integer).")
    return merged


def check_items(
    action: str, options: dict[str, Any], items: Sequence[Any], max_items: int, where: str
) -> None:
    """Check every item's shape for `action`; all problems at once, with paths under `where`."""
    if not items:
        raise ValidationFailed(
            "A job needs at least one item.",
            errors=[FieldError(where, "min_items", "at least one item")],
        )
    if len(items) > max_items:
        raise BatchTooLarge(
            f"{len(items)} items in one job; the limit is {max_items}.",
            extra={"limit": max_items},
        )
    errors: list[FieldError] = []
    for i, item in enumerate(items):
        path = f"{where}/{i}"
        if action in ("create", "upsert", "update"):
            parse_record_input(item, path, errors)
            if action == "update" and not _has_str(item, "id"):
                errors.append(FieldError(f"{path}/id", "required", "the id of the record"))
        else:
            member = "id" if action == "delete" else str(options["on"])
            if not _has_str(item, member) or len(item) != 1:
                errors.append(FieldError(path, "invalid", f'expected {{"{member}": "<value>"}}'))
    if errors:
        raise ValidationFailed(f"{len(errors)} problem(s) in the job's items.", errors=errors)


def _has_str(item: Any, member: str) -> bool:
    return isinstance(item, dict) and isinstance(item.get(member), str) and bool(item[member])


def record_input(item: dict[str, Any]) -> RecordInput:
    """A stored item (already checked at submission) as a RecordInput."""
    errors: list[FieldError] = []
    parsed = parse_record_input(item, "", errors)
    if errors:
        raise ValidationFailed("The stored job item no longer parses.", errors=errors)
    return parsed
