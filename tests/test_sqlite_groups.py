"""The SQLite writer (stores/sqlite_writer.py): groups commit once without savepoints, a
failing write still fails alone, slow writes and other event loops use the writer thread, a
database locked by another process never blocks the event loop, and checkpoints run off the
writer. Runs on a real SQLite file through the store's own write path."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

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


def _store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(Settings(database_url=f"sqlite:///{tmp_path / 'g.db'}"))


def test_a_failing_single_write_leaves_nothing_and_the_next_works(tmp_path: Path) -> None:
    async def main() -> None:
        store = _store(tmp_path)
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


def _group(store: SqliteStore, fns: list[Any]) -> Any:
    # Tasks started together queue their writes in the same loop turn: one group.
    return asyncio.gather(*(store.write(fn) for fn in fns), return_exceptions=True)


def test_a_group_commits_once_without_savepoints(tmp_path: Path) -> None:
    async def main() -> None:
        store = _store(tmp_path)
        await store.open()
        statements: list[str] = []
        try:
            await store.write(_trace(statements))
            statements.clear()
            results = await _group(store, [_put("t-1"), _put("t-2"), _put("t-3")])
            assert results == ["t-1", "t-2", "t-3"]
            assert _keys(store) == ["t-1", "t-2", "t-3"]
            assert statements.count("BEGIN IMMEDIATE") == 1
            assert statements.count("COMMIT") == 1
            assert not [s for s in statements if "SAVEPOINT" in s]
        finally:
            await store.close()

    asyncio.run(main())


def test_a_failure_in_a_group_is_replayed_with_savepoints(tmp_path: Path) -> None:
    async def main() -> None:
        store = _store(tmp_path)
        await store.open()
        statements: list[str] = []
        try:
            await store.write(_trace(statements))
            statements.clear()
            results = await _group(store, [_put("t-1"), _put("t-2", fail=True), _put("t-3")])
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


def _where(tx: Any) -> str:
    return threading.current_thread().name


def test_slow_writes_and_other_event_loops_use_the_writer_thread(tmp_path: Path) -> None:
    async def main() -> None:
        store = _store(tmp_path)
        await store.open()
        try:
            assert await store.write(_where) == threading.current_thread().name
            assert await store.write(_where, slow=True) == "recordbase-writer"
            # a write from another event loop, in another thread
            found: list[str] = []
            other = threading.Thread(target=lambda: found.append(asyncio.run(store.write(_where))))
            loop = asyncio.get_running_loop()
            other.start()
            await loop.run_in_executor(None, other.join, 30)
            assert found == ["recordbase-writer"]
            assert await store.write(_put("t-after")) == "t-after"
        finally:
            await store.close()

    asyncio.run(main())


def test_a_database_locked_elsewhere_never_blocks_the_loop(tmp_path: Path) -> None:
    async def main() -> None:
        store = _store(tmp_path)
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
            assert await store.write(_put("t-next")) == "t-next"  # the loop lane again
        finally:
            other.close()
            await store.close()

    asyncio.run(main())


def test_checkpoints_copy_the_wal_into_the_database_file(tmp_path: Path) -> None:
    def in_main_file(path: str) -> int:
        # immutable=1 reads the database file alone, ignoring the WAL
        conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
        try:
            row = conn.execute("SELECT count(*) FROM meta WHERE k LIKE 't-%'").fetchone()
            return int(row[0])
        finally:
            conn.close()

    async def main() -> None:
        store = _store(tmp_path)
        await store.open()
        try:
            auto = await store.write(lambda tx: tx.conn.execute("PRAGMA wal_autocheckpoint"))
            assert auto.fetchone()[0] == 0  # commits never checkpoint on the loop
            await _group(store, [_put(f"t-{i:03d}") for i in range(200)])
            deadline = time.monotonic() + 10
            while in_main_file(store.path) < 200 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert in_main_file(store.path) == 200
        finally:
            await store.close()

    asyncio.run(main())
