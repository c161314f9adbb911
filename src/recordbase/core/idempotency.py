"""Idempotency-Key: the same write sent twice is carried out once.

A client that retries a write sends the same `Idempotency-Key` header each time. The first
request claims the key (one row per project and key, holding a fingerprint of the request:
method, path, query and a hash of the body) and, when it has run, stores its response. A retry
with the same fingerprint is answered the stored response without writing again; with a different
fingerprint it is a 422 (`idempotency_key_reused`). A retry that arrives while the first request
is still running is a 409 (`idempotency_in_progress`, with Retry-After): only one ever executes.
A claim whose request died (its process was killed) lapses after `idempotency_lock_seconds`; keys
and their responses expire after `idempotency_ttl_seconds`.

Which responses are kept: successes (2xx, 3xx) and the 4xx answers that depend on the stored
data (404, 409, 410, 412). Any other answer (a malformed request, 5xx) releases the key, so a
corrected request may use it again. The web layer (web/idempotency.py) applies this to every write
route of every face; this module is the sans-IO rule set, run inside one store transaction each.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from recordbase.config import Settings
from recordbase.core.clock import Clock, NewId
from recordbase.core.records import Principal
from recordbase.errors import BadRequest, IdempotencyInProgress, IdempotencyMismatch

if TYPE_CHECKING:  # the store protocol names this module's types
    from recordbase.core.store import Store, WriteTx

KEPT_STATUSES = frozenset({404, 409, 410, 412})
MAX_KEY_LENGTH = 255
PENDING = "pending"
DONE = "done"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class IdempotencyEntry:
    project_id: str
    key: str
    token: str  # who holds the claim: only its holder may store the response or release it
    fingerprint: str
    state: str  # pending | done
    created_at: datetime
    expires_at: datetime
    locked_until: datetime
    response: StoredResponse | None = None


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), query.encode()):
        digest.update(len(part).to_bytes(8, "big") + part)
    digest.update(body)
    return digest.hexdigest()


def check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise BadRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters.",
            extra={"header": "Idempotency-Key"},
        )
    return key


def keeps(status: int) -> bool:
    """Whether a response with this status is stored for retries (see the module docstring)."""
    return 200 <= status < 400 or status in KEPT_STATUSES


class IdempotencyKeys:
    """Claim, complete and release keys; each call is one store transaction."""

    def __init__(self, store: Store, settings: Settings, clock: Clock, new_id: NewId) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.new_id = new_id

    async def begin(self, p: Principal, key: str, fp: str) -> tuple[str, StoredResponse | None]:
        """Claim `key`: (token, None) to go ahead, or (token, response) to replay it."""
        check_key(key)
        now = self.clock()
        mine = IdempotencyEntry(
            project_id=p.project_id,
            key=key,
            token=self.new_id(),
            fingerprint=fp,
            state=PENDING,
            created_at=now,
            expires_at=now + timedelta(seconds=self.settings.idempotency_ttl_seconds),
            locked_until=now + timedelta(seconds=self.settings.idempotency_lock_seconds),
        )

        def write(tx: WriteTx) -> StoredResponse | None:
            found = tx.get_idempotency(p.project_id, key)
            if found is None or found.expires_at <= now:
                claimed = (
                    tx.insert_idempotency(mine)
                    if found is None
                    else tx.replace_idempotency(mine, found.token)
                )
                if not claimed:  # another database client claimed it a moment ago
                    raise _in_progress(key, self.settings.idempotency_lock_seconds)
                return None
            if found.fingerprint != fp:
                raise IdempotencyMismatch(
                    f"Idempotency-Key {key!r} was used with a different request (method, path "
                    "or body); use a new key for a new request.",
                    extra={"header": "Idempotency-Key"},
                )
            if found.state == DONE and found.response is not None:
                return found.response
            if found.locked_until > now:
                left = max(1, int((found.locked_until - now).total_seconds()))
                raise _in_progress(key, min(left, 5))
            # The first request's process died while it held the key: run it again.
            if not tx.replace_idempotency(replace(mine, created_at=found.created_at), found.token):
                raise _in_progress(key, 1)
            return None

        return mine.token, await self.store.write(write)

    async def complete(self, p: Principal, key: str, token: str, response: StoredResponse) -> None:
        if keeps(response.status):
            await self.store.write(
                lambda tx: tx.finish_idempotency(p.project_id, key, token, response)
            )
        else:
            await self.release(p, key, token)

    async def release(self, p: Principal, key: str, token: str) -> None:
        await self.store.write(lambda tx: tx.delete_idempotency(p.project_id, key, token))

    async def purge(self) -> int:
        """Drop expired keys and their responses."""
        now = self.clock()
        return await self.store.write(lambda tx: tx.purge_idempotency(now))


def _in_progress(key: str, retry_after: int) -> IdempotencyInProgress:
    return IdempotencyInProgress(
        f"A request with Idempotency-Key {key!r} is still running; retry in {retry_after} s to "
        "get its response.",
        headers={"Retry-After": str(retry_after)},
        extra={"retry_after": retry_after},
    )
