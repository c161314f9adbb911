"""Median / min-max req/s and median p99 (ms) per candidate from results.csv."""

import csv
import statistics
import sys
from collections import defaultdict

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def to_ms(v: str) -> float:
    for unit in ("us", "ms", "s"):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * UNITS[unit]
    raise ValueError(v)


rows = defaultdict(list)
with open(sys.argv[1]) as f:
    for row in csv.DictReader(f):
        rows[row["candidate"]].append(row)

print("| candidate | median req/s | min\u2013max req/s | median p99 (ms) | idle RSS (MiB) |")
print("|---|---:|---:|---:|---:|")
for name, rs in sorted(
    rows.items(), key=lambda kv: -statistics.median(float(r["rps"]) for r in kv[1])
):
    rps = [float(r["rps"]) for r in rs]
    p99 = statistics.median(to_ms(r["p99"]) for r in rs)
    rss = statistics.median(int(r["idle_rss_kb"]) for r in rs) / 1024
    print(
        f"| {name} | {statistics.median(rps):,.0f} | {min(rps):,.0f}\u2013{max(rps):,.0f} | {p99:.2f} | {rss:.0f} |"
    )
