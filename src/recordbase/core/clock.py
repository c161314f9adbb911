"""Time and ids, injected: the service asks these, so tests can fix both (house rule 9)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from ulid import ULID

Clock = Callable[[], datetime]
NewId = Callable[[], str]


def system_clock() -> datetime:
    return datetime.now(UTC)


def new_ulid() -> str:
    return str(ULID())


def utc_text(value: datetime) -> str:
    """Fixed-width UTC text (microseconds, Z): sorts as the instants do."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
