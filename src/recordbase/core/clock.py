"""Time and ids, injected: the service asks these, so tests can fix both (house rule 9)."""

from __future__ import annotations

import functools
import itertools
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import orjson

Clock = Callable[[], datetime]
NewId = Callable[[], str]


# datetime.now(UTC), called from C: no Python frame per read (the service reads it on every
# write and every authenticated request)
system_clock: Clock = functools.partial(datetime.now, UTC)


# ULID text is Crockford base32 of 130 bits (2 zero bits + 48-bit ms + 80-bit randomness):
# 13 groups of 10 bits, each two characters from this table.
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]
_HEAD_SHIFTS = tuple(range(110, -1, -10))  # all but the last pair


class _UlidSource:
    """ULIDs, monotonic within a millisecond (as python-ulid's StrictMonotonicPolicy).

    Randomness comes from os.urandom in 4 KiB refills rather than one syscall per id: the
    per-id syscall released the GIL to the store's writer thread and showed as ~9% of the
    event loop's time on single creates (docs/performance.md). `many(n)` takes n consecutive
    values under one lock and one clock read (a batch's ids), and ids that share all but
    their last 10 bits share the text of those bits: an id is one look-up and one
    concatenation instead of 13 (docs/performance.md, "Batch path, round 4").
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = b""
        self._at = 0
        self._last_ms = -1
        self._last_rand = 0
        self._head_of = -1  # the value >> 10 whose text is self._head
        self._head = ""

    def __call__(self) -> str:
        with self._lock:
            value = self._take(1)
            high = value >> 10
            head = self._head if high == self._head_of else self._head_text(high)
            return head + _PAIRS[value & 1023]

    def many(self, n: int) -> list[str]:
        """n new ULIDs, ascending, each greater than every id this source gave before."""
        if n == 1:  # __call__'s body: a call less for a single create
            with self._lock:
                value = self._take(1)
                high = value >> 10
                head = self._head if high == self._head_of else self._head_text(high)
                return [head + _PAIRS[value & 1023]]
        out: list[str] = []
        with self._lock:
            value = self._take(n)
            end = value + n
            while value < end:
                low = value & 1023
                stop = min(end, value - low + 1024)  # the ids that share value >> 10
                head = self._head_text(value >> 10)
                out += [head + pair for pair in _PAIRS[low : low + stop - value]]
                value = stop
        return out

    def _take(self, n: int) -> int:
        """The first of n consecutive 128-bit values (48-bit ms, 80-bit randomness)."""
        ms = time.time_ns() // 1_000_000
        if ms <= self._last_ms:
            ms, rand = self._last_ms, self._last_rand + 1
        else:
            rand = self._random()
        while (rand + n - 1) >> 80:  # randomness exhausted in this millisecond: borrow the next
            ms, rand = ms + 1, self._random()
        self._last_ms, self._last_rand = ms, rand + n - 1
        return (ms << 80) | rand

    def _head_text(self, high: int) -> str:
        """The first 24 characters, for the value whose top 118 bits are `high`."""
        if high != self._head_of:
            self._head_of = high
            self._head = "".join([_PAIRS[(high >> s) & 1023] for s in _HEAD_SHIFTS])
        return self._head

    def _random(self) -> int:
        if self._at + 10 > len(self._pool):
            self._pool, self._at = os.urandom(4096), 0
        chunk = self._pool[self._at : self._at + 10]
        self._at += 10
        return int.from_bytes(chunk, "big")


new_ulid: Callable[[], str] = _UlidSource()


class _RequestIds:
    """Request ids: a 16-character prefix made once per process (a fresh ULID's time and 30
    random bits) and a 10-digit counter, so an id is 26 characters of the ULID alphabet.

    A request id only has to be unique; making a ULID per request (a lock, the clock, random
    bits) was ~1.3 µs of the event loop per request, a counter ~0.15 (docs/performance.md,
    round 12). Processes differ by their prefix (the start millisecond and 30 random bits),
    a forked child makes its own, and the counter starts again under a new prefix when it
    runs out. Ids of one process count up, as chi's RequestID middleware does."""

    def __init__(self) -> None:
        self._renew()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self._prefix = new_ulid()[:16]
        self._next = itertools.count().__next__

    def __call__(self) -> str:
        n = self._next()
        if n >= 10_000_000_000:
            self._renew()
            n = self._next()
        return f"{self._prefix}{n:010d}"


new_request_id: Callable[[], str] = _RequestIds()


def new_ids(source: NewId, n: int) -> list[str]:
    """n ids from `source`: one call of its `many` when it has one (new_ulid), else n calls."""
    many = getattr(source, "many", None)
    if many is None:
        return [source() for _ in range(n)]
    ids: list[str] = many(n)
    return ids


_last_text: tuple[datetime | None, str] = (None, "")


def utc_text(value: datetime) -> str:
    """Fixed-width UTC text (microseconds, Z): sorts as the instants do."""
    global _last_text
    # The records of one batch share one timestamp object (and each record two): remember the
    # last answer instead of formatting it again (strftime was 7% of a batch's time).
    last = _last_text
    if last[0] is value:
        return last[1]
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    if utc.microsecond:
        # orjson writes a UTC instant with a fraction as the text below, in a quarter of
        # its time: ~0.27 against ~1.1 µs, once per new record on the writer thread.
        text = orjson.dumps(utc, option=orjson.OPT_UTC_Z)[1:-1].decode()
    else:  # orjson leaves a whole second's fraction out: keep the width fixed
        # isoformat with a fixed fraction, its "+00:00" made "Z": the text strftime's
        # "%Y-%m-%dT%H:%M:%S.%fZ" gives (but a four-digit year always).
        text = utc.isoformat(timespec="microseconds")[:-6] + "Z"
    _last_text = (value, text)
    return text
