"""Time and ids, injected: the service asks these, so tests can fix both (house rule 9)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
NewId = Callable[[], str]


def system_clock() -> datetime:
    return datetime.now(UTC)


# ULID text is Crockford base32 of 130 bits (2 zero bits + 48-bit ms + 80-bit randomness):
# 13 groups of 10 bits, each two characters from this table.
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
_SHIFTS = tuple(range(120, -1, -10))


class _UlidSource:
    """ULIDs, monotonic within a millisecond (as python-ulid's StrictMonotonicPolicy).

    Randomness comes from os.urandom in 4 KiB refills rather than one syscall per id: the
    per-id syscall released the GIL to the store's writer thread and showed as ~9% of the
    event loop's time on single creates (docs/performance.md).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0
        self._last_ms = -1
        self._last_rand = 0

    def __call__(self) -> str:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms <= self._last_ms:
                ms, rand = self._last_ms, self._last_rand + 1
                if rand >> 80:  # randomness exhausted within one millisecond: borrow the next
                    ms, rand = ms + 1, self._random()
            else:
                rand = self._random()
            self._last_ms, self._last_rand = ms, rand
        value = (ms << 80) | rand
        return "".join([_PAIRS[(value >> s) & 1023] for s in _SHIFTS])

    def _random(self) -> int:
        if self._at + 10 > len(self._pool):
            self._pool, self._at = os.urandom(4096), 0
        chunk = self._pool[self._at : self._at + 10]
        self._at += 10
        return int.from_bytes(chunk, "big")


new_ulid: Callable[[], str] = _UlidSource()


_last_text: tuple[datetime | None, str] = (None, "")


def utc_text(value: datetime) -> str:
    """Fixed-width UTC text (microseconds, Z): sorts as the instants do."""
    global _last_text
    # The records of one batch share one timestamp object (and each record two): remember the
    # last answer instead of formatting it again (strftime was 7% of a batch's time).
    last = _last_text
    if last[0] is value:
        return last[1]
    text = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    _last_text = (value, text)
    return text
