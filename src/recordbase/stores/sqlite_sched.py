"""How the SQLite store's own threads are scheduled: SCHED_BATCH, off the event loop's way.

The writer thread, the committer and the checkpointer are woken by the event loop (a write
handed over) or by a timer, and then need the GIL the loop holds. Under Linux's default
policy a woken thread preempts the running one: on a loaded core the loop was taken off the
CPU for a writer that could only wait for the GIL and go back to sleep, two context switches
that did nothing, and the caches of both threads cooled in between. Under `SCHED_BATCH` a
woken thread does not preempt; it runs at the loop's next pause (the loop gives up the GIL
and the core while it waits for sockets) or at the scheduler's tick, with the same share of
the CPU as before. An idle core runs it at once, so a lone write waits no longer.

Measured on one core, single creates at 32 connections, ten pairs alternated: +16% req/s,
17 µs less CPU per create, p99 lower (docs/performance.md, round 15). `SCHED_IDLE` for the
checkpointer gave more throughput still but let the WAL grow under load (p99 2-3x): not used.

Setting `sqlite_threads`: `batch` (the default) or `normal` (the system's default policy).
Elsewhere than Linux, or where the policy cannot be set, the threads keep the default.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger("recordbase")

CHOICES = ("batch", "normal")


def thread_policy(setting: str) -> Callable[[], None]:
    """What each of the store's threads runs first, for the `sqlite_threads` setting."""
    if setting not in CHOICES:
        raise ValueError(f"sqlite_threads must be batch or normal, not {setting!r}")
    return batch_this_thread if setting == "batch" else _leave


def batch_this_thread() -> None:
    """Put the calling thread (alone: Linux schedules threads one by one) under SCHED_BATCH."""
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None or not hasattr(os, "sched_setscheduler"):
        return
    try:
        os.sched_setscheduler(0, policy, os.sched_param(0))
    except OSError as exc:  # a sandbox that refuses it: the default policy stays
        log.info("SCHED_BATCH not set for %s: %s", threading.current_thread().name, exc)


def _leave() -> None:
    return None
