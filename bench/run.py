"""The recordbase benchmark: one command, one table of ratios measured in the same run.

    python bench/run.py [--smoke] [--scenarios create,batch,...] [--backends sqlite,postgres]

Starts recordbase, the bare-framework echo and Datasette on 127.0.0.1 (pinned to core 0),
drives them with wrk (pinned to core 1), runs the raw SQLite / psycopg references in-process
on core 0, alternates recordbase with each reference round by round, prints the table and
stops every process it started. See docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _reexec_in_project_venv() -> None:
    """The bench needs recordbase importable: use the project's .venv when this one lacks it."""
    try:
        import recordbase  # noqa: F401
    except ImportError:
        python = ROOT / ".venv" / "bin" / "python"
        if not python.exists():
            raise SystemExit("no project venv: run ./dev.sh setup first") from None
        os.execv(str(python), [str(python), *sys.argv])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds: tiny data, 1 s per measure, one round (CI)",
    )
    p.add_argument(
        "--scenarios",
        default="",
        help="comma list of: create,batch,upsert,filter,indexed,keyset,keywords",
    )
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--seconds", type=float, help="per measurement (default 10; smoke 1)")
    p.add_argument("--rounds", type=int, help="A B rounds per scenario (default 3; smoke 1)")
    p.add_argument("--records", type=int, help="read-set size (default 1,000,000; smoke 2,000)")
    p.add_argument("--connections", type=int, help="wrk connections (default 32; smoke 4)")
    p.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL to create the bench databases in",
    )
    p.add_argument(
        "--no-install",
        action="store_true",
        help="do not install wrk or Datasette; skip what is missing",
    )
    p.add_argument("--workdir", default=str(ROOT / "bench" / ".work"))
    args = p.parse_args(argv)
    smoke = args.smoke
    args.seconds = args.seconds or (1.0 if smoke else 10.0)
    args.rounds = args.rounds or (1 if smoke else 3)
    args.records = args.records or (2_000 if smoke else 1_000_000)
    args.connections = args.connections or (4 if smoke else 32)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _reexec_in_project_venv()
    sys.path.insert(0, str(ROOT / "bench"))
    import procs
    from harness import Bench

    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    if args.no_install:
        if not shutil.which("wrk"):
            raise SystemExit("wrk is not installed (run without --no-install to install it)")
    else:
        procs.ensure_wrk()
    running = procs.Procs(workdir)

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    started = time.monotonic()
    bench = None
    try:
        bench = Bench(args, running, workdir)
        print(bench.run(), flush=True)
    finally:
        running.stop_all()
        if bench is not None:
            bench.drop_databases()
    print(
        f"\n(bench took {time.monotonic() - started:.0f} s; every process it started is stopped)",
        flush=True,
    )
    return 0


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    uname = subprocess.run(["uname", "-srm"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} x {model}; {uname}; Python {sys.version.split()[0]}"


if __name__ == "__main__":
    raise SystemExit(main())
