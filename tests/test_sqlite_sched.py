"""The SQLite store's own threads run under SCHED_BATCH (stores/sqlite_sched.py), the event loop
and the readers under the system's default policy; `sqlite_threads=normal` leaves them all
there, and an unknown value is refused at start. Real threads of a real store, read back from
the kernel."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest

from recordbase.config import Settings
from recordbase.stores.sqlite import SqliteStore
from recordbase.stores.sqlite_sched import thread_policy

pytestmark = pytest.mark.skipif(
    not hasattr(os, "SCHED_BATCH"), reason="scheduling policies are Linux's"
)


def _policies(store: SqliteStore) -> dict[str, int]:
    """Each thread this store started (by its Python name) -> its kernel policy."""
    ours = [*store._writer._threads, store._checkpointer._thread, *store._readers._threads]  # type: ignore[union-attr]
    return {t.name: os.sched_getscheduler(t.native_id) for t in ours if t and t.native_id}


def _open_and_read(tmp_path: Path, **settings: str) -> tuple[dict[str, int], int]:
    async def run() -> tuple[dict[str, int], int]:
        store = SqliteStore(Settings(database_url=str(tmp_path / "s.db"), **settings))  # type: ignore[arg-type]
        await store.open()
        try:
            # The threads set their policy first thing; a write proves the writer is running.
            await store.write(lambda tx: None)
            for _ in range(200):
                found = _policies(store)
                if "recordbase-checkpoint" in found and "recordbase-writer" in found:
                    break
                await asyncio.sleep(0.01)
            return found, os.sched_getscheduler(threading.get_native_id())
        finally:
            await store.close()

    return asyncio.run(run())


@pytest.mark.parametrize("writer", ["thread", "loop"])
def test_the_stores_threads_run_under_sched_batch(tmp_path: Path, writer: str) -> None:
    found, loop = _open_and_read(tmp_path, sqlite_writer=writer)
    expected = {"recordbase-writer", "recordbase-checkpoint"}
    if writer == "loop":
        expected.add("recordbase-commit")
    assert expected <= set(found)
    for name in expected:
        assert found[name] == os.SCHED_BATCH, (name, found)
    assert loop == os.SCHED_OTHER  # the event loop's thread keeps the default
    readers = {n: p for n, p in found.items() if n not in expected}
    assert all(p == os.SCHED_OTHER for p in readers.values()), readers


def test_normal_leaves_the_default_policy(tmp_path: Path) -> None:
    found, _loop = _open_and_read(tmp_path, sqlite_threads="normal")
    assert found["recordbase-writer"] == os.SCHED_OTHER
    assert found["recordbase-checkpoint"] == os.SCHED_OTHER


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="sqlite_threads must be batch or normal"):
        thread_policy("fifo")
