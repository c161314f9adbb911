"""Small helpers shared by the Zendesk routes: the service, the caller, URLs, params, bodies."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.requests import Request

from recordbase.core.clock import utc_text
from recordbase.core.records import Principal
from recordbase.core.service import RecordService
from recordbase.errors import BadRequest, FieldError, UnknownParameter, ValidationFailed
from recordbase.web.http import json_body

# Sent by real clients on every call (mercury-orm adds ?locale=en); they select a language for
# dynamic content, which we don't have, so they are accepted and have no effect.
TOLERATED_PARAMS = ("locale",)


def svc(request: Request) -> RecordService:
    service: RecordService = request.app.state.service
    return service


def who(request: Request) -> Principal:
    p: Principal = request.state.principal
    return p


def now_text(request: Request) -> str:
    return utc_text(svc(request).clock())


def api_url(request: Request, path: str) -> str:
    """An absolute URL on this server, as Zendesk's `url` members are."""
    return str(request.base_url).rstrip("/") + path


def check_params(request: Request, allowed: Iterable[str]) -> None:
    valid = (*allowed, *TOLERATED_PARAMS)
    unknown = [k for k in request.query_params if k not in valid]
    if unknown:
        raise UnknownParameter(
            f"Unknown query parameter(s) {', '.join(map(repr, unknown))}; valid: "
            f"{', '.join(v for v in valid if v not in TOLERATED_PARAMS) or 'none'}.",
            extra={"valid": list(valid)},
        )


def bool_param(request: Request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw.lower() in ("false", "0", ""):
        return False
    if raw.lower() in ("true", "1"):
        return True
    raise BadRequest(f"{name} must be true or false.")


async def wrapped(request: Request, member: str, *, allow_empty: bool = False) -> dict[str, Any]:
    """The object inside `{"<member>": {...}}`; {} for an empty body when allowed."""
    body = await json_body(request, allow_empty=allow_empty)
    if body is None:
        return {}
    if not isinstance(body, dict) or not isinstance(body.get(member), dict):
        raise ValidationFailed(
            f'Expected a body {{"{member}": {{...}}}}.',
            errors=[FieldError(f"/{member}", "required", f"an object under {member!r}")],
        )
    extra = [k for k in body if k != member]
    if extra:
        raise ValidationFailed(
            f"Unknown member(s) {', '.join(extra)}; valid: {member}.",
            errors=[FieldError(f"/{k}", "unknown_member", f"valid: {member}") for k in extra],
        )
    inner: dict[str, Any] = body[member]
    return inner
