"""The one error tree of recordbase.

Every failure is raised as a `RecordbaseError` subclass carrying a stable machine `code` and an
HTTP `status`. Faces never invent their own failures: each face has one renderer that turns
these exceptions into its vendor's error body. docs/errors.md lists every code (a test checks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class FieldError:
    """One problem at one place: `path` is a JSON Pointer such as `/records/3/data/email`."""

    path: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "code": self.code, "message": self.message}

    def under(self, prefix: str) -> FieldError:
        return FieldError(prefix + self.path, self.code, self.message)


class RecordbaseError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[FieldError] = (),
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors)
        self.extra = extra or {}
        self.headers = headers or {}


# 400 family -------------------------------------------------------------------------------


class BadRequest(RecordbaseError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class InvalidJson(BadRequest):
    code = "invalid_json"
    title = "Malformed JSON"


class NestingTooDeep(BadRequest):
    code = "nesting_too_deep"
    title = "JSON nested too deeply"


class UnknownMember(BadRequest):
    code = "unknown_member"
    title = "Unknown member"


class UnknownParameter(BadRequest):
    code = "unknown_parameter"
    title = "Unknown query parameter"


class ValidationFailed(BadRequest):
    code = "validation_failed"
    title = "Validation failed"


class InvalidSchema(BadRequest):
    code = "invalid_schema"
    title = "Invalid JSON Schema"


class InvalidFilter(BadRequest):
    code = "invalid_filter"
    title = "Invalid filter"


class InvalidSort(BadRequest):
    code = "invalid_sort"
    title = "Invalid sort"


class InvalidCursor(BadRequest):
    code = "invalid_cursor"
    title = "Invalid or stale cursor"


class PageTooLarge(BadRequest):
    code = "page_too_large"
    title = "Page size too large"


class ReadOnlyField(BadRequest):
    code = "read_only_field"
    title = "Field is read-only"


class AliasConflict(BadRequest):
    code = "alias_conflict"
    title = "Alias and field disagree"


# 401 / 403 / 404 ----------------------------------------------------------------------------


class Unauthenticated(RecordbaseError):
    status = 401
    code = "unauthenticated"
    title = "Missing or invalid API key"


class Forbidden(RecordbaseError):
    status = 403
    code = "forbidden"
    title = "Missing scope"


class NotFound(RecordbaseError):
    status = 404
    code = "not_found"
    title = "Not found"


class TypeNotFound(NotFound):
    code = "type_not_found"
    title = "Record type not found"


class RecordNotFound(NotFound):
    code = "record_not_found"
    title = "Record not found"


class JobNotFound(NotFound):
    code = "job_not_found"
    title = "Job not found"


class KeyNotFound(NotFound):
    code = "key_not_found"
    title = "API key not found"


class ProjectNotFound(NotFound):
    code = "project_not_found"
    title = "Project not found"


class RouteNotFound(NotFound):
    code = "route_not_found"
    title = "No such route"


class MethodNotAllowed(RecordbaseError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"


# 409 / 412 / 413 / 415 / 422 / 429 / 503 ----------------------------------------------------------


class Conflict(RecordbaseError):
    status = 409
    code = "conflict"
    title = "Conflict"


class TypeExists(Conflict):
    code = "type_exists"
    title = "Record type already exists"


class DuplicateId(Conflict):
    code = "duplicate_id"
    title = "Record id already exists"


class UniqueViolation(Conflict):
    code = "unique_violation"
    title = "Unique key violated"


class SchemaConflict(Conflict):
    code = "schema_conflict"
    title = "Existing records break the new schema"


class NamingFrozen(Conflict):
    code = "naming_frozen"
    title = "Naming rules are frozen once records exist"


class IdempotencyInProgress(Conflict):
    code = "idempotency_in_progress"
    title = "A request with this Idempotency-Key is still running"


class PreconditionFailed(RecordbaseError):
    status = 412
    code = "version_mismatch"
    title = "Record version does not match If-Match"


class PayloadTooLarge(RecordbaseError):
    status = 413
    code = "body_too_large"
    title = "Request body too large"


class BatchTooLarge(PayloadTooLarge):
    code = "batch_too_large"
    title = "Too many records in one batch"


class RecordTooLarge(PayloadTooLarge):
    code = "record_too_large"
    title = "Record too large"


class UnsupportedMediaType(RecordbaseError):
    status = 415
    code = "unsupported_media_type"
    title = "Content-Type must be application/json"


class IdempotencyMismatch(RecordbaseError):
    status = 422
    code = "idempotency_key_reused"
    title = "Idempotency-Key reused with a different request"


class RateLimited(RecordbaseError):
    status = 429
    code = "rate_limited"
    title = "Rate limit exceeded"


class Unavailable(RecordbaseError):
    status = 503
    code = "unavailable"
    title = "Service unavailable"


def all_error_classes() -> list[type[RecordbaseError]]:
    """Every error class, for the docs test and the OpenAPI document."""
    seen: list[type[RecordbaseError]] = []
    stack: list[type[RecordbaseError]] = [RecordbaseError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen
