"""The running event loop, without a system call per look-up.

CPython 3.11's `asyncio.get_running_loop()` calls `getpid()` every time (a loop must not be
used across a fork), and `getpid` is a real system call: glibc has not cached it since 2.25.
The SQLite writer and readers look the loop up once per request: `strace` counted one
`getpid` per single create, each ~0.3-1 µs on a virtual machine (docs/performance.md,
round 15). `running_loop()` remembers the loop per thread and asks asyncio again only when
the remembered one is not running; a forked child forgets it.

Why the remembered loop is the right one while it runs: a thread runs at most one event loop
at a time (asyncio refuses to start one inside another), so if the loop this thread last saw
is running, it is the loop running this code. When that loop stops, the next look-up on
the thread asks asyncio, which raises outside a loop as before.
"""

from __future__ import annotations

import asyncio
import os
import threading


class _Seen(threading.local):
    loop: asyncio.AbstractEventLoop | None = None


_seen = _Seen()


def running_loop() -> asyncio.AbstractEventLoop:
    """`asyncio.get_running_loop()`, remembered per thread (see the module docstring)."""
    loop = _seen.loop
    if loop is None or not loop.is_running():
        loop = _seen.loop = asyncio.get_running_loop()
    return loop


def _forget() -> None:
    _seen.loop = None


os.register_at_fork(after_in_child=_forget)
