"""The Store protocol: the one small interface every database backend implements.

The service hands the store a plain function that runs inside one transaction against a
`ReadTx` or `WriteTx`; the store decides where it runs (SQLite: the group-committing writer
thread or a reader thread; PostgreSQL: a pooled connection in a thread). So each request is one
store call, semantics stay in the core, and the store only persists (DESIGN.md rules 4 and 7).
Exceptions raised by the function roll its work back and travel to the caller unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from recordbase.core.idempotency import IdempotencyEntry, StoredResponse
from recordbase.core.jobs import ItemResult, Job
from recordbase.core.query import Filter, Query
from recordbase.core.records import ApiKey, Project, Record
from recordbase.core.types import RecordType

T = TypeVar("T")

# A unique-key row: (record id, key name, canonical value). Key names starting with "__" are
# the built-in ones: "__name" for unique names.
KeyRow = tuple[str, str, str]


# Between two records' texts in a JsonRows: U+001E never occurs in JSON text (control
# characters are escaped there) nor inside a multi-byte UTF-8 sequence.
JSON_ROW_SEP = b"\x1e"


class JsonRows:
    """Records' output JSON texts as the database printed them, in order, joined by
    JSON_ROW_SEP into one UTF-8 byte string, with their count.

    A page is cut out with `head` without a Python object per record: splitting a 50 KB page
    of 101 records on a one-character separator walks it character by character in Python
    (~30 µs per page, more than the rest of the page's Python put together); `rfind` and
    `replace` go through the bytes in C.
    """

    __slots__ = ("count", "text")

    def __init__(self, text: bytes, count: int) -> None:
        self.text = text
        self.count = count

    def head(self, n: int) -> tuple[bytes, bytes | None]:
        """The first `n` records as one JSON array, and the text of the n-th record when
        more records follow it (where the next page's cursor starts), else None."""
        text, count = self.text, self.count
        if count <= n:
            return b"[" + text.replace(JSON_ROW_SEP, b",") + b"]", None
        cut = len(text)
        for _ in range(count - n):
            cut = text.rfind(JSON_ROW_SEP, 0, cut)
        page = text[:cut]
        last = page[page.rfind(JSON_ROW_SEP) + 1 :]
        return b"[" + page.replace(JSON_ROW_SEP, b",") + b"]", last


class UniqueClash(Exception):
    """Raised by a store when a unique constraint fires (e.g. a concurrent writer won)."""

    def __init__(self, key_name: str, value: str | None = None) -> None:
        super().__init__(key_name)
        self.key_name = key_name
        self.value = value


class ReadTx(Protocol):
    def project_by_name(self, name: str) -> Project | None: ...
    def key_by_hash(self, digest: str) -> ApiKey | None: ...
    def get_key(self, key_id: str) -> ApiKey | None: ...
    def list_keys(self, project_id: str | None) -> list[ApiKey]: ...
    def list_projects(self) -> list[Project]: ...
    def get_type(self, project_id: str, key: str) -> RecordType | None: ...
    def next_number(self, rtype: RecordType) -> int: ...
    def type_version(self, type_id: str) -> int | None: ...
    def list_types(self, project_id: str) -> list[RecordType]: ...
    def get_records(self, rtype: RecordType, ids: Sequence[str]) -> list[Record]: ...
    def find_records(
        self, rtype: RecordType, column: str, values: Sequence[str]
    ) -> list[Record]: ...
    def find_keys(
        self, rtype: RecordType, key_name: str, values: Sequence[str]
    ) -> dict[str, str]: ...
    def list_records(self, rtype: RecordType, query: Query) -> list[Record]: ...
    def list_records_json(self, rtype: RecordType, query: Query) -> JsonRows | None:
        """`list_records` as each record's output JSON text (`records.record_json`), made by
        the database; None when this store does not (then use `list_records`)."""
        ...

    def count_records(self, rtype: RecordType, filter: Filter | None, text: str | None) -> int: ...
    def iter_records(self, rtype: RecordType) -> Iterator[Record]: ...
    def get_meta(self, name: str) -> str | None: ...
    # jobs and idempotency keys (core/jobs.py, core/idempotency.py)
    def get_job(self, project_id: str, job_id: str) -> Job | None: ...
    def job_results(self, job_id: str) -> list[ItemResult]: ...
    def pending_job_items(self, job_id: str, limit: int) -> list[tuple[int, Any]]: ...
    def get_idempotency(self, project_id: str, key: str) -> IdempotencyEntry | None: ...


class WriteTx(ReadTx, Protocol):
    def insert_project(self, project: Project) -> None: ...
    def set_project_limits(
        self, project_id: str, rate: float | None, burst: int | None
    ) -> None: ...
    def insert_key(self, key: ApiKey, digest: str) -> None: ...
    def revoke_key(self, key_id: str, at: datetime) -> None: ...
    def touch_keys(self, touched: Sequence[tuple[str, datetime]]) -> None: ...
    def insert_type(self, rtype: RecordType, next_number: int) -> None: ...
    def update_type(self, rtype: RecordType, next_number: int | None) -> None: ...
    def delete_type(self, rtype: RecordType) -> int: ...
    def allocate_numbers(self, rtype: RecordType, count: int) -> int: ...
    def insert_records(
        self, rtype: RecordType, records: Sequence[Record], keys: Sequence[KeyRow]
    ) -> None: ...
    def update_records(
        self,
        rtype: RecordType,
        records: Sequence[Record],
        keys: Sequence[KeyRow],
        before: Mapping[str, Record] | None = None,
    ) -> None: ...
    def delete_records(self, rtype: RecordType, ids: Sequence[str]) -> None: ...
    def replace_key_rows(
        self, rtype: RecordType, key_name: str, rows: Sequence[KeyRow]
    ) -> None: ...
    def set_meta(self, name: str, value: str) -> None: ...
    def bump_epoch(self) -> None: ...
    def sync_indexes(self, rtype: RecordType) -> None:
        """Make the type's declared `indexes` real database indexes (create/drop to match);
        deleting a type drops its indexes too."""
        ...

    # jobs: claims carry a lease; record_job_items and finish_job return False (and change
    # nothing) when `worker` no longer holds the job or an item was already done.
    def insert_job(self, job: Job, principal: dict[str, Any], items: Sequence[Any]) -> None: ...
    def claim_job(
        self, worker: str, now: datetime, lease_until: datetime
    ) -> tuple[Job, dict[str, Any]] | None: ...
    def record_job_items(
        self,
        job_id: str,
        worker: str,
        results: Sequence[ItemResult],
        now: datetime,
        lease_until: datetime,
    ) -> bool: ...
    def finish_job(
        self, job_id: str, worker: str, status: str, error: dict[str, Any] | None, now: datetime
    ) -> bool: ...
    def release_jobs(self, worker: str, now: datetime) -> int: ...
    # idempotency keys: insert/replace/finish return False when another claim got there first.
    def insert_idempotency(self, entry: IdempotencyEntry) -> bool: ...
    def replace_idempotency(self, entry: IdempotencyEntry, old_token: str) -> bool: ...
    def finish_idempotency(
        self, project_id: str, key: str, token: str, response: StoredResponse
    ) -> bool: ...
    def delete_idempotency(self, project_id: str, key: str, token: str) -> None: ...
    def purge_idempotency(self, now: datetime) -> int: ...


class Store(Protocol):
    dialect: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def read(self, fn: Callable[[ReadTx], T]) -> T: ...
    def write(self, fn: Callable[[WriteTx], T], *, slow: bool = False) -> Awaitable[T]:
        """Run `fn` in one write transaction. `slow`: it may take long (type changes that
        build indexes); a store may then run it where it holds up nothing else. A coroutine
        or a future: the caller awaits it (SQLite's is its writer's future)."""
        ...

    async def epoch(self) -> int:
        """A number that changes whenever keys or types change (cache invalidation)."""
        ...

    def info(self) -> dict[str, Any]: ...
