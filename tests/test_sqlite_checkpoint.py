"""WAL checkpoints run on their own thread (stores/sqlite_checkpoint.py): committed records
reach the database file itself without the writer checkpointing in its commits."""

from __future__ import annotations

import sqlite3
import time

import pytest

from recordbase.stores.sqlite_checkpoint import BACKSTOP_PAGES
from tests.conftest import Api

pytestmark = pytest.mark.backend("sqlite")

R = "/v1/types/contact/records"


def _in_database_file(path: str) -> int:
    """Records in the main database file alone (`immutable`: the WAL is not read), or -1
    when the read met a page the checkpointer was writing at that moment (`immutable` also
    means no locks: such a read can see a torn b-tree and call the file malformed)."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
    except sqlite3.DatabaseError:
        return -1
    finally:
        conn.close()


def test_commits_reach_the_database_file_through_the_checkpointer(api: Api) -> None:
    store = api.service.store
    writer = store._writer  # type: ignore[attr-defined]
    assert writer.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == BACKSTOP_PAGES
    api.make_type()
    path = api.service.settings.database_url.removeprefix("sqlite:///")
    for i in range(5):  # a few small groups: far below the writer's backstop
        body = {"records": [{"data": {"email": f"{i}-{j}@x"}} for j in range(20)]}
        assert api.post(R, json=body).status_code == 201
    deadline = time.monotonic() + 5
    while (found := _in_database_file(path)) != 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert found == 100
    assert store._checkpointer.checkpoints > 0  # type: ignore[attr-defined]


def test_the_checkpointer_stops_with_the_store(api: Api) -> None:
    checkpointer = api.service.store._checkpointer  # type: ignore[attr-defined]
    thread = checkpointer._thread
    assert thread is not None and thread.is_alive()
    api.client.__exit__(None, None, None)  # lifespan shutdown closes the store
    assert not thread.is_alive()
