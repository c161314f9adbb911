"""RecordService: every operation of recordbase, the same for every face.

Each method takes the caller's `Principal` first and checks its scope (house rule 3), loads the
record type from a cache that the store's epoch invalidates (so a revoked key or changed type
takes effect at once, across processes), checks and prepares the input, then makes exactly one
store call whose function runs inside one transaction. Failures are raised as RecordbaseError.

The class is assembled from parts: service_base (state, caches), service_access (keys and
types), service_writes (record writes); reads and jobs are here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson

from recordbase.core import cursor as cursors
from recordbase.core.clock import utc_text
from recordbase.core.filters import check_query
from recordbase.core.jobs import Job
from recordbase.core.query import Filter, Page, Query, SortKey, stable_sort
from recordbase.core.records import OUTPUT_JSON_OPTIONS, Principal, Record, record_from_json
from recordbase.core.service_access import KeysAndTypes
from recordbase.core.service_writes import RecordWrites, UpsertResult
from recordbase.core.store import JsonRows, ReadTx
from recordbase.core.types import RecordType
from recordbase.core.writes import (
    value_at,
)
from recordbase.errors import (
    BadRequest,
    InvalidCursor,
)

__all__ = ["JsonListResult", "ListResult", "RecordService", "UpsertResult"]

T = TypeVar("T")


@dataclass(frozen=True)
class ListResult:
    records: list[Record]
    next_cursor: str | None
    count: int | None = None


@dataclass(frozen=True)
class JsonListResult:
    records: bytes  # the page's records as one JSON array
    next_cursor: str | None
    count: int | None = None


@dataclass(frozen=True)
class _ListPlan:
    """A checked list query: what the store runs (one row more than a page) and the cursor."""

    rtype: RecordType
    query: Query
    page_size: int
    fingerprint: str
    secret: bytes | None  # None: page-number paging, no cursors

    def cursor_after(self, last: Record) -> str | None:
        if self.secret is None:
            return None
        values = tuple(_sort_value(last, k.path) for k in self.query.sort)
        return cursors.encode(self.secret, self.fingerprint, values)

    def trim(self, items: list[T], record_of: Callable[[T], Record]) -> tuple[list[T], str | None]:
        """The page (the store read one row more) and the cursor after it, if more follow."""
        if len(items) <= self.page_size:
            return items, None
        items = items[: self.page_size]
        return items, self.cursor_after(record_of(items[-1]))


class RecordService(KeysAndTypes, RecordWrites):
    # jobs: durable asynchronous writes (core/jobs.py, core/job_runner.py) -------------------

    async def submit_job(
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
        """Accept a write to carry out later; stored durably before this returns.

        `precheck` checks `create` items against the type (schema, naming, shaping) before
        accepting, so bad data is a 400 at once rather than a failed item later."""
        return await self.jobs.submit(
            p, type_key, action, items, options, where=where, precheck=precheck
        )

    async def get_job(self, p: Principal, job_id: str, *, results: bool = True) -> Job:
        return await self.jobs.get(p, job_id, results=results)

    async def run_pending_jobs(self) -> int:
        """Carry out every claimable job now (tests call this; servers run the worker loop)."""
        return await self.jobs.run_pending()

    # reads -------------------------------------------------------------------------------

    async def get_record(self, p: Principal, type_key: str, record_id: str) -> Record:
        p.require("records", "read", type_key)
        rtype = await self.type_for(p, type_key)
        return await self.store.read(lambda tx: self._stored(tx, rtype, record_id, None))

    async def get_records(
        self, p: Principal, type_key: str, column: str, values: Sequence[str]
    ) -> list[Record]:
        """Records whose id, external_id or name is one of `values` (any order)."""
        p.require("records", "read", type_key)
        rtype = await self.type_for(p, type_key)
        return await self.store.read(lambda tx: tx.find_records(rtype, column, values))

    async def list_records(
        self, p: Principal, type_key: str, query: Query, cursor: str | None = None
    ) -> ListResult:
        plan = await self._list_plan(p, type_key, query, cursor)
        rtype, q = plan.rtype, plan.query

        def read(tx: ReadTx) -> Page:
            records = tx.list_records(rtype, q)
            total = tx.count_records(rtype, q.filter, q.text) if q.count else None
            return Page(records, None, total)

        page = await self.store.read(read)
        records, next_cursor = plan.trim(page.records, _same)
        return ListResult(records, next_cursor, page.count)

    async def list_records_json(
        self, p: Principal, type_key: str, query: Query, cursor: str | None = None
    ) -> JsonListResult:
        """`list_records` with the page's records as one JSON array, exactly as the native
        API writes `[r.as_dict() for r in records]`. A store that prints each record's JSON
        itself (SQLite) saves a Record, a dict and two datetimes per row."""
        plan = await self._list_plan(p, type_key, query, cursor)
        rtype, q = plan.rtype, plan.query

        def read(tx: ReadTx) -> tuple[JsonRows | None, list[Record], int | None]:
            texts = tx.list_records_json(rtype, q)
            records = tx.list_records(rtype, q) if texts is None else []
            total = tx.count_records(rtype, q.filter, q.text) if q.count else None
            return texts, records, total

        texts, records, total = await self.store.read(read)
        if texts is not None:
            array, last = texts.head(plan.page_size)
            next_cursor = None if last is None else plan.cursor_after(record_from_json(last))
        else:
            records, next_cursor = plan.trim(records, _same)
            array = orjson.dumps([r.as_dict() for r in records], option=OUTPUT_JSON_OPTIONS)
        return JsonListResult(array, next_cursor, total)

    async def _list_plan(
        self, p: Principal, type_key: str, query: Query, cursor: str | None
    ) -> _ListPlan:
        p.require("records", "read", type_key)
        rtype = await self.type_for(p, type_key)
        query = check_query(query, rtype, self.settings)
        page_size = query.limit
        if not 1 <= page_size <= self.settings.max_page_size:
            from recordbase.errors import PageTooLarge

            raise PageTooLarge(
                f"limit must be between 1 and {self.settings.max_page_size}.",
                extra={"max": self.settings.max_page_size},
            )
        sort = stable_sort(query.sort)
        fp = _fingerprint(rtype, query, sort)
        if cursor and query.offset is not None:
            raise BadRequest("Use either cursor or page, not both.")
        after = cursors.decode(self._cursor_secret, fp, cursor) if cursor else None
        if after is not None and len(after) != len(sort):
            raise InvalidCursor("The cursor does not fit this sort.")
        q = Query(
            filter=query.filter,
            sort=sort,
            limit=page_size + 1,
            after=after,
            offset=query.offset,
            count=query.count,
            text=query.text,
            extra=query.extra,
        )
        # page-number paging: the faces number the pages, no cursor
        secret = None if query.offset is not None else self._cursor_secret
        return _ListPlan(rtype, q, page_size, fp, secret)

    async def count_records(
        self, p: Principal, type_key: str, filter: Filter | None = None, text: str | None = None
    ) -> int:
        p.require("records", "read", type_key)
        rtype = await self.type_for(p, type_key)
        q = check_query(Query(filter=filter, text=text), rtype, self.settings)
        return await self.store.read(lambda tx: tx.count_records(rtype, q.filter, q.text))

    async def cursor_at(self, p: Principal, type_key: str, query: Query, record: Record) -> str:
        """A cursor for `query` positioned just after `record` (faces that page backwards
        ask for one at the first record of a page, under the reversed sort)."""
        p.require("records", "read", type_key)
        rtype = await self.type_for(p, type_key)
        query = check_query(query, rtype, self.settings)
        sort = stable_sort(query.sort)
        fp = _fingerprint(rtype, query, sort)
        values = tuple(_sort_value(record, k.path) for k in sort)
        return cursors.encode(self._cursor_secret, fp, values)


def _fingerprint(rtype: RecordType, query: Query, sort: tuple[SortKey, ...]) -> str:
    """What a cursor is bound to. The type's version is part of it: a cursor made before a
    schema change is stale."""
    return cursors.fingerprint(
        rtype.id, rtype.version, query.filter, [str(s) for s in sort], query.text
    )


def _sort_value(record: Record, path: tuple[str, ...]) -> Any:
    value = value_at(record, path)
    return utc_text(value) if isinstance(value, datetime) else value


def _same(record: Record) -> Record:
    return record
