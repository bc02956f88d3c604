"""Benchmark the synthetic generator: generate_tables + CSV write, at a given size.

Usage: ``python benchmarks/generate.py [--customers 1000000] [--repeats 3] [--out PATH]``.
Writes median wall-clock seconds, rows, rows/s and peak RSS to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from churnguard.config import GenerateParams
from churnguard.io import write_json_atomic
from churnguard.synth import generate_tables

ROOT = Path(__file__).resolve().parent


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MB (ru_maxrss is KiB on Linux, B on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def run(customers: int, repeats: int) -> dict[str, object]:
    """Time ``repeats`` runs of generate + CSV write; return the figures."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    timings: list[dict[str, float]] = []
    rows = 0
    with tempfile.TemporaryDirectory(prefix="churnguard-bench-") as tmp:
        target = Path(tmp) / "transactions.csv"
        cfg = GenerateParams(n_customers=customers, output=str(target))
        for i in range(repeats):
            t0 = time.perf_counter()
            transactions, truth = generate_tables(cfg)
            t1 = time.perf_counter()
            with pa.OSFile(str(target), "wb") as sink:
                pacsv.write_csv(transactions, sink)
            t2 = time.perf_counter()
            rows = transactions.num_rows
            csv_mb = target.stat().st_size / 1e6
            del transactions, truth
            timings.append({"generate_s": t1 - t0, "write_csv_s": t2 - t1, "total_s": t2 - t0})
            print(
                f"run {i + 1}/{repeats}: generate {t1 - t0:.2f} s, write CSV {t2 - t1:.2f} s, "
                f"{rows:,} rows, {csv_mb:.0f} MB",
                file=sys.stderr,
            )
    median = statistics.median(t["total_s"] for t in timings)
    return {
        "benchmark": "generate",
        "customers": customers,
        "repeats": repeats,
        "rows": rows,
        "csv_mb": round(csv_mb, 1),
        "median_seconds": round(median, 3),
        "median_generate_seconds": round(statistics.median(t["generate_s"] for t in timings), 3),
        "median_write_csv_seconds": round(statistics.median(t["write_csv_s"] for t in timings), 3),
        "rows_per_second": round(rows / median),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "runs": [{k: round(v, 3) for k, v in t.items()} for t in timings],
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "generate.json")
    args = parser.parse_args(argv)
    result = run(args.customers, args.repeats)
    write_json_atomic(args.out, result)
    print(json.dumps(result, indent=2), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
