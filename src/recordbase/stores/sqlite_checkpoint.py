"""WAL checkpoints on their own thread and connection, off the writer's commits.

SQLite's automatic checkpoint runs inside the COMMIT that crosses `wal_autocheckpoint` pages:
the writer copies the WAL's pages into the database file and fsyncs both while every write
request queued behind that group waits. With 32 connections of single creates that was most
of the p99 latency once the garbage collector's pauses were gone (9 ms; with no automatic
checkpoint at all, 6 ms). Here a thread runs a PASSIVE checkpoint (it neither waits for nor
blocks the writer or the readers) every `INTERVAL` seconds when groups were committed since
the last one; the writer keeps its automatic checkpoint only as a backstop
(`BACKSTOP_PAGES`) for when this thread falls behind. Measured intervals (p99 of single
creates): 1 s 18 ms (big checkpoints), 0.2 s 7-8 ms, 0.1 s 6.3 ms, 0.05 s 5.5 ms, 0.02 s
5.6-5.9 ms; throughput alike within noise, batches of 100 alike (their p99 a little higher).
Round 12, on another machine, with responses sent in one write (the p99 then lower, and the
checkpoints a larger part of it), alternated three times: 0.05 s 4.3-5.0 ms, 0.02 s
3.8-4.3 ms, 0.01 s 3.7-3.9 ms, single creates and batches of 100 as fast with each; with no
checkpointer 26 ms. Round 13, on a third machine: 0.05 s took the checkpointer's CPU per
single create from 7.5-9 to 2.8-3.7 µs (hot pages copied once, fewer syncs), while the
bench's single-create ratio moved within its noise (39% median at 0.01 s, 41% at 0.05 s);
kept at 0.01 s for round 12's p99. A checkpoint that takes longer than the interval makes the next one wait
(the thread runs one at a time), so a slow disk only spaces them out.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger("recordbase")

INTERVAL = 0.01  # seconds between checks
BACKSTOP_PAGES = 10_000  # the writer's own automatic checkpoint (~40 MB of WAL)


class Checkpointer:
    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        progress: Callable[[], int],
        on_thread_start: Callable[[], None] = lambda: None,
    ):
        self._connect = connect
        self._on_thread_start = on_thread_start  # the thread runs it first
        self._progress = progress  # committed groups so far: nothing new, nothing to do
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.checkpoints = 0

    def start(self) -> None:
        conn = self._connect()  # made here: a database that cannot be opened fails open()
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="recordbase-checkpoint", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self, conn: sqlite3.Connection) -> None:
        self._on_thread_start()
        done = self._progress()
        try:
            while not self._stop.wait(INTERVAL):
                now = self._progress()
                if now == done:
                    continue
                done = now
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # the backstop still checkpoints
                    log.warning("WAL checkpoint failed: %s", exc)
        finally:
            conn.close()
