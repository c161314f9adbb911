"""The base of RecordService: its state, life cycle, caches and the type lookup.

The service is split by concern (house limit on module size): this base holds what every part
needs — the store, settings, injected clock and ids, the key and type caches that the store's
epoch invalidates — and `service_access` (keys, types), `service_writes` (record writes) and
`service` (reads, jobs, the assembled class) build on it.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from recordbase.config import Settings
from recordbase.core.clock import Clock, NewId, new_ids, new_ulid, system_clock
from recordbase.core.idempotency import IdempotencyKeys
from recordbase.core.job_runner import JobRunner
from recordbase.core.records import (
    ApiKey,
    Principal,
)
from recordbase.core.store import Store, WriteTx
from recordbase.core.types import RecordType
from recordbase.core.validation import ValidatorCache
from recordbase.errors import (
    TypeNotFound,
)

if TYPE_CHECKING:
    from recordbase.core.service import RecordService

T = TypeVar("T")
_KEY_CACHE_MAX = 100_000
# The epoch (bumped by every key or type change) is read from the store at most once per this
# many seconds: it was a fifth of the event loop's time when read twice per request (see
# docs/performance.md). Changes made through any RecordService of this process count at once
# (_LOCAL_BUMPS); another process's change is seen within this window.
EPOCH_WINDOW = 0.002
_LOCAL_BUMPS = [0]


class _TypeChanged(Exception):
    """The type changed between the cache and the transaction: reload and retry once."""


class ServiceBase:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        clock: Clock = system_clock,
        new_id: NewId = new_ulid,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.new_id = new_id
        # new_ids(new_id, n) without its look-up, for the usual source (core/clock.py)
        many: Callable[[int], list[str]] | None = getattr(new_id, "many", None)
        self.new_ids: Callable[[int], list[str]] = many or functools.partial(new_ids, new_id)
        self.validators = ValidatorCache()
        self._epoch = -1
        self._epoch_read_at = -1.0
        self._epoch_bumps = -1
        self._keys: dict[str, ApiKey | None] = {}
        # by digest: the key, its Principal, and until when it answers unchecked (authenticate)
        self._principals: dict[str, tuple[ApiKey, Principal, datetime]] = {}
        self._types: dict[tuple[str, str], RecordType] = {}
        # (type id, version) -> its data check when its records can be usual (RecordWrites)
        self._usual_types: dict[tuple[str, int], Any] = {}
        self._touched: dict[str, datetime] = {}  # key id -> next last-used write (_touch)
        self._cursor_secret = b""
        self._tasks: set[asyncio.Task[Any]] = set()
        # The runner applies items through the whole service (this object, once assembled).
        self.jobs = JobRunner(cast("RecordService", self))
        self.idempotency = IdempotencyKeys(store, settings, clock, new_id)

    # lifecycle and caches -----------------------------------------------------------------

    async def start(self) -> None:
        await self.store.open()

        def secret(tx: WriteTx) -> str:
            found = tx.get_meta("cursor_secret")
            if found is None:
                found = secrets.token_hex(32)
                tx.set_meta("cursor_secret", found)
            return found

        self._cursor_secret = bytes.fromhex(await self.store.write(secret))

    async def close(self) -> None:
        await self.jobs.stop()
        await self.settle()
        await self.store.close()

    def _stale(self) -> bool:
        """Whether the caches must be checked against the store's epoch (`_sync`) first."""
        return (
            self._epoch_bumps != _LOCAL_BUMPS[0]
            or time.monotonic() - self._epoch_read_at >= EPOCH_WINDOW
        )

    async def _sync(self) -> None:
        if not self._stale():
            return
        now = time.monotonic()
        self._epoch_bumps = _LOCAL_BUMPS[0]
        self._epoch_read_at = now
        epoch = await self.store.epoch()
        if epoch != self._epoch:
            self._keys.clear()
            self._principals.clear()
            self._types.clear()
            self._epoch = epoch

    async def _write_bumping(self, fn: Callable[[WriteTx], T]) -> T:
        """A write that bumps the epoch: once committed, every service here re-reads it.

        Such writes are rare and may build indexes, so the store runs them off the loop."""
        try:
            return await self.store.write(fn, slow=True)
        finally:
            _LOCAL_BUMPS[0] += 1

    async def settle(self) -> None:
        """Wait for the background writes started so far (e.g. last_used_at touches)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # the type cache ------------------------------------------------------------------------

    def cached_type(self, p: Principal, key: str) -> RecordType | None:
        """The type from the cache when the cache is known fresh, without awaiting anything
        (a hit answers as `type_for` would; None: ask `type_for`)."""
        if (  # _stale(), inline: asked on every write
            self._epoch_bumps != _LOCAL_BUMPS[0]
            or time.monotonic() - self._epoch_read_at >= EPOCH_WINDOW
        ):
            return None
        return self._types.get((p.project_id, key))

    async def type_for(self, p: Principal, key: str) -> RecordType:
        await self._sync()
        cached = self._types.get((p.project_id, key))
        if cached is not None:
            return cached
        found = await self.store.read(lambda tx: tx.get_type(p.project_id, key))
        if found is None:
            raise TypeNotFound(f"No record type {key!r} in this project.")
        self._types[(p.project_id, key)] = found
        return found
