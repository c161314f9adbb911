"""The benchmark's smoke mode runs end to end (docs/performance.md), so the bench never rots.

It asserts only that the bench ran, printed its table and stopped what it started: speed is
never asserted in tests (this machine's speed drifts; the real figures live in the doc).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(180)
def test_bench_smoke_prints_the_table(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECORDBASE_")}
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=170,
        env=env,
        cwd=ROOT,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert "| scenario | recordbase | reference |" in out
    assert "create 1 (sqlite)" in out and "echo (bare framework)" in out
    assert "validation (T5)" in out
    assert "every process it started is stopped" in out
    for log in tmp_path.glob("recordbase-*.log"):
        assert "Traceback" not in log.read_text(errors="replace"), log.name
