"""The SQLite writer (stores/sqlite_writer.py), on both lanes: groups commit once without
savepoints, a failing write still fails alone, slow writes and other event loops use the
writer thread, a database locked by another process never blocks the event loop, and on the
loop lane the COMMIT runs on the committer thread. Runs on a real SQLite file through the
store's own write path."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from recordbase.config import Settings
from recordbase.stores.sqlite import SqliteStore


def _put(key: str, fail: bool = False) -> Any:
    def fn(tx: Any) -> str:
        tx.conn.execute("INSERT INTO meta (k, v) VALUES (?, 'x')", (key,))
        if fail:
            raise ValueError(f"{key} failed after writing")
        return key

    return fn


def _trace(statements: list[str]) -> Any:
    # Installed from inside a write: the writer's connection reports every statement after it.
    def fn(tx: Any) -> str:
        tx.conn.set_trace_callback(statements.append)
        return "traced"

    return fn


def _keys(store: SqliteStore) -> list[str]:
    rows = store._epoch_conn.execute("SELECT k FROM meta WHERE k LIKE 't-%' ORDER BY k")  # type: ignore[union-attr]
    return [row[0] for row in rows]


LANES = pytest.mark.parametrize("lane", ["thread", "loop"])


def _store(tmp_path: Path, lane: str = "thread") -> SqliteStore:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    return SqliteStore(Settings(database_url=url, sqlite_writer=lane))


@LANES
def test_a_failing_single_write_leaves_nothing_and_the_next_works(
    tmp_path: Path, lane: str
) -> None:
    async def main() -> None:
        store = _store(tmp_path, lane)
        await store.open()
        statements: list[str] = []
        try:
            await store.write(_trace(statements))
            try:
                await store.write(_put("t-a", fail=True))
            except ValueError as exc:
                assert "t-a failed" in str(exc)
            else:
                raise AssertionError("the failing write did not raise")
            assert _keys(store) == []
            assert await store.write(_put("t-b")) == "t-b"
            assert _keys(store) == ["t-b"]
            assert not [s for s in statements if "SAVEPOINT" in s or "RELEASE" in s]
            assert statements.count("ROLLBACK") == 1
        finally:
            await store.close()

    asyncio.run(main())


def _from_group(statements: list[str]) -> list[str]:
    """The statements from the BEGIN of the group's first write on (the thread lane's
    holding write commits just before)."""
    first = next(i for i, s in enumerate(statements) if s.startswith("INSERT INTO meta"))
    begin = max(i for i, s in enumerate(statements[:first]) if s == "BEGIN IMMEDIATE")
    return statements[begin:]


async def _group(store: SqliteStore, fns: list[Any]) -> list[Any]:
    """Run `fns` as one group: on the loop lane, writes queued in the same loop turn; on the
    thread lane, writes queued while the writer is held busy by another one."""
    if store.settings.sqlite_writer == "loop":
        return await asyncio.gather(*(store.write(fn) for fn in fns), return_exceptions=True)
    started, go = threading.Event(), threading.Event()

    def hold(tx: Any) -> str:
        started.set()
        go.wait(30)
        return "held"

    loop = asyncio.get_running_loop()
    first = asyncio.ensure_future(store.write(hold))
    try:
        await loop.run_in_executor(None, started.wait, 30)
        rest = [asyncio.ensure_future(store.write(fn)) for fn in fns]
        await asyncio.sleep(0)  # let the tasks queue their writes (no waiting)
    finally:
        go.set()
    assert await first == "held"
    return await asyncio.gather(*rest, return_exceptions=True)


@LANES
def test_a_group_commits_once_without_savepoints(tmp_path: Path, lane: str) -> None:
    async def main() -> None:
        store = _store(tmp_path, lane)
        await store.open()
        statements: list[str] = []
        try:
            await store.write(_trace(statements))
            statements.clear()
            results = await _group(store, [_put("t-1"), _put("t-2"), _put("t-3")])
            statements = _from_group(statements)
            assert results == ["t-1", "t-2", "t-3"]
            assert _keys(store) == ["t-1", "t-2", "t-3"]
            assert statements.count("BEGIN IMMEDIATE") == 1
            assert statements.count("COMMIT") == 1
            assert not [s for s in statements if "SAVEPOINT" in s]
        finally:
            await store.close()

    asyncio.run(main())


@LANES
def test_a_failure_in_a_group_is_replayed_with_savepoints(tmp_path: Path, lane: str) -> None:
    async def main() -> None:
        store = _store(tmp_path, lane)
        await store.open()
        statements: list[str] = []
        try:
            await store.write(_trace(statements))
            statements.clear()
            results = await _group(store, [_put("t-1"), _put("t-2", fail=True), _put("t-3")])
            statements = _from_group(statements)
            assert results[0] == "t-1" and results[2] == "t-3"
            assert isinstance(results[1], ValueError)
            assert _keys(store) == ["t-1", "t-3"]
            # the optimistic run is undone whole, then each write runs in its own savepoint
            assert statements.count("ROLLBACK") == 1
            assert statements.count("SAVEPOINT w") == 3
            assert statements.count("ROLLBACK TO w") == 1
            assert statements.count("COMMIT") == 1
        finally:
            await store.close()

    asyncio.run(main())


def test_on_the_thread_lane_one_loop_turn_is_one_group(tmp_path: Path) -> None:
    """The writes an event loop's turn queues reach the writer thread together (one wake-up,
    one transaction), not one by one (docs/performance.md, round 6)."""

    async def main() -> None:
        store = _store(tmp_path, "thread")
        await store.open()
        statements: list[str] = []
        try:
            await store.write(_trace(statements))

            async def put(key: str) -> Any:
                # Other work in the same turn lets go of the GIL: a writer thread woken by
                # the first write would take it alone.
                time.sleep(0.002)
                return await store.write(_put(key))

            for attempt in range(3):
                statements.clear()
                keys = [f"t-{attempt}-{i:02d}" for i in range(40)]
                results = await asyncio.gather(*(put(k) for k in keys))
                assert results == keys
                assert statements.count("BEGIN IMMEDIATE") == 1
                assert statements.count("COMMIT") == 1
            assert len(_keys(store)) == 120
        finally:
            await store.close()

    asyncio.run(main())


def _where(tx: Any) -> str:
    return threading.current_thread().name


def test_slow_writes_and_other_event_loops_use_the_writer_thread(tmp_path: Path) -> None:
    async def main() -> None:
        store = _store(tmp_path, "loop")
        await store.open()
        try:
            assert await store.write(_where) == threading.current_thread().name
            assert await store.write(_where, slow=True) == "recordbase-writer"
            # a write from another event loop, in another thread
            found: list[str] = []

            async def elsewhere() -> str:
                return await store.write(_where)

            other = threading.Thread(target=lambda: found.append(asyncio.run(elsewhere())))
            loop = asyncio.get_running_loop()
            other.start()
            await loop.run_in_executor(None, other.join, 30)
            assert found == ["recordbase-writer"]
            assert await store.write(_put("t-after")) == "t-after"
        finally:
            await store.close()

    asyncio.run(main())


@LANES
def test_a_database_locked_elsewhere_never_blocks_the_loop(tmp_path: Path, lane: str) -> None:
    async def main() -> None:
        store = _store(tmp_path, lane)
        await store.open()
        other = sqlite3.connect(store.path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process's write transaction
            pending = asyncio.ensure_future(store.write(_put("t-waits")))
            before = time.monotonic()
            for _ in range(5):
                await asyncio.sleep(0.01)  # the loop keeps turning meanwhile
            assert time.monotonic() - before < 2.0
            assert not pending.done()
            other.execute("COMMIT")
            assert await asyncio.wait_for(pending, 30) == "t-waits"
            assert _keys(store) == ["t-waits"]
            assert await store.write(_put("t-next")) == "t-next"  # its usual lane again
        finally:
            other.close()
            await store.close()

    asyncio.run(main())


def test_on_the_loop_lane_writes_run_on_the_loop_and_commits_on_the_committer(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        store = _store(tmp_path, "loop")
        await store.open()
        seen: list[tuple[str, str]] = []

        def trace(tx: Any) -> str:
            tx.conn.set_trace_callback(lambda s: seen.append((threading.current_thread().name, s)))
            return "traced"

        try:
            await store.write(trace)
            seen.clear()
            results = await _group(store, [_put(f"t-{i}") for i in range(3)])
            assert results == ["t-0", "t-1", "t-2"]
            here = threading.current_thread().name
            inserts = {name for name, s in seen if s.startswith("INSERT INTO meta")}
            assert inserts == {here}
            assert [name for name, s in seen if s == "COMMIT"] == ["recordbase-commit"]
            assert _keys(store) == ["t-0", "t-1", "t-2"]
        finally:
            await store.close()

    asyncio.run(main())
