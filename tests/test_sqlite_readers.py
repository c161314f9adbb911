"""SQLite reader threads follow the cores the process may use when `sqlite_readers` is 0
(stores/sqlite.py reader_count; docs/performance.md), and an explicit count is kept."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from recordbase.config import Settings
from recordbase.stores.sqlite import MAX_AUTO_READERS, reader_count
from tests.conftest import Api


def test_an_explicit_reader_count_is_kept() -> None:
    assert reader_count(1) == 1 and reader_count(7) == 7
    assert Settings().sqlite_readers == 0


def test_the_automatic_count_follows_the_usable_cores() -> None:
    cores = len(os.sched_getaffinity(0))
    assert reader_count(0) == max(1, min(MAX_AUTO_READERS, cores))


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux only")
def test_a_process_pinned_to_one_core_gets_one_reader() -> None:
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
        "from recordbase.stores.sqlite import reader_count; print(reader_count(0))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_reads_work_with_the_automatic_count(api: Api) -> None:
    api.make_type()
    for i in range(3):
        made = api.post("/v1/types/contact/records", json={"record": {"data": {"age": i}}})
        assert made.status_code == 201
    listed = api.get("/v1/types/contact/records?data.age__gte=1").json()["records"]
    assert sorted(r["data"]["age"] for r in listed) == [1, 2]
