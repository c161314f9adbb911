"""The SQLite writer's groups (stores/sqlite.py): a write alone in its group runs without a
SAVEPOINT and a failure rolls all of it back; in a group of several each write still fails
alone. Runs on a real SQLite file through the store's own write queue."""

from __future__ import annotations

import asyncio
import threading
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


def test_a_group_of_several_still_isolates_a_failure(tmp_path: Path) -> None:
    async def main() -> None:
        store = _store(tmp_path)
        await store.open()
        started, go = threading.Event(), threading.Event()

        statements: list[str] = []

        def hold(tx: Any) -> str:
            tx.conn.set_trace_callback(statements.append)
            # Keeps the writer busy while the next writes queue up, so they form one group.
            started.set()
            go.wait(30)
            return "held"

        try:
            loop = asyncio.get_running_loop()
            first = asyncio.ensure_future(store.write(hold))
            await loop.run_in_executor(None, started.wait, 30)
            rest = [
                asyncio.ensure_future(store.write(_put(key, fail=key == "t-2")))
                for key in ("t-1", "t-2", "t-3")
            ]
            await asyncio.sleep(0)  # let the three tasks queue their writes (no waiting)
            assert store._queue.qsize() == 3
            go.set()
            assert await first == "held"
            results = await asyncio.gather(*rest, return_exceptions=True)
            assert results[0] == "t-1" and results[2] == "t-3"
            assert isinstance(results[1], ValueError)
            assert _keys(store) == ["t-1", "t-3"]
            assert statements.count("SAVEPOINT w") == 3 and statements.count("COMMIT") == 2
        finally:
            go.set()
            await store.close()

    asyncio.run(main())
