"""Benchmark ``churnguard features`` on Spark ``local[2]`` against DuckDB, same machine, one run.

Usage: ``python benchmarks/spark.py [--sizes 1M,10M] [--repeats 3] [--repeats-big 1]
[--big 10M] [--threads 2] [--memory-limit 4GB] [--no-compare]
[--out benchmarks/results/spark.json]``.

For each size (transactions; synthetic canonical Parquet cached under benchmarks/.data/,
shared with benchmarks/features.py) and each engine, one child process runs the whole
``churnguard features`` stage (``features.run_features``: 8 labelled cutoffs 30 days apart
+ the as-of snapshot, written to Parquet) ``--repeats`` times (``--repeats-big`` for sizes
from ``--big`` up: one 10 M run takes 10–20 minutes per engine on 2 cores) and reports
every run:

* ``duckdb`` — the production path, ``--threads`` threads and ``--memory-limit``;
* ``spark``  — ``engines.spark.run_features`` on a ``local[--threads]`` session (driver heap
  ``--memory-limit``); the session start (JVM launch) is timed separately, the first run
  includes JVM warm-up (code generation, class loading) and is reported apart.

Seconds are the work only; ``peak_rss_mb`` is the peak resident memory of the child's
whole process tree (Python + JVM + Python workers), sampled every 0.2 s.
Unless ``--no-compare``, the two outputs are compared row by row in DuckDB (rows whose
floats differ by more than 1e-9 or whose other values differ), as a parity check at size.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    DATA_DIR,
    RESULTS_DIR,
    TX_PER_CUSTOMER_DEFAULT,
    child_main,
    ensure_canonical,
    label,
    machine,
    parse_count,
    run_child,
)

SCRIPT = Path(__file__).resolve()


class TreeRSS:
    """Peak RSS of this process and all its descendants (the JVM is a child of Python)."""

    def __init__(self, every: float = 0.2) -> None:
        import psutil

        self.proc, self.every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            with contextlib.suppress(Exception):  # a process may end between listing and reading
                total += p.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.every)

    def __enter__(self) -> TreeRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- child job -------------------------------------------------------------------------------


def job_features(
    engine: str, tx: str, out_dir: str, repeats: int, threads: int, memory_limit: str
) -> dict[str, Any]:
    import pandas  # noqa: F401  (imported before the clock starts)

    from churnguard import features
    from churnguard.config import EngineParams, FeaturesParams

    tmp = DATA_DIR / f"{engine}_tmp"
    params = EngineParams(
        name=engine, threads=threads, memory_limit=memory_limit, temp_directory=str(tmp)
    )
    fp = FeaturesParams(input=tx, output_dir=out_dir)
    result: dict[str, Any] = {"runs_seconds": []}
    with TreeRSS() as rss:
        spark = None
        if engine == "spark":
            os.environ.pop("SPARK_MASTER", None)  # always local[threads] here
            from churnguard.engines import spark as spark_engine

            t0 = time.perf_counter()
            spark = spark_engine.build_session(params, app_name="churnguard-bench")
            result["session_start_seconds"] = round(time.perf_counter() - t0, 3)
            result["spark_version"] = spark.version
        for _ in range(repeats):
            t0 = time.perf_counter()
            summary = features.run_features(fp, params)  # the engine switch picks Spark
            result["runs_seconds"].append(round(time.perf_counter() - t0, 3))
        if spark is not None:
            spark.stop()
    result.update(
        snapshot_rows=summary["snapshot_rows"],
        current_rows=summary["current_rows"],
        cutoffs=len(summary["cutoffs"]),
        tree_peak_rss_mb=round(rss.peak / 2**20, 1),
        output_mb=round(sum(f.stat().st_size for f in Path(out_dir).glob("*.parquet")) / 1e6, 1),
    )
    return result


JOBS = {"features": job_features}


# -- parent ----------------------------------------------------------------------------------


COMPARE_SQL = """
with a as (select * from read_parquet($a)), b as (select * from read_parquet($b))
select
    (select count(*) from a) as rows_duckdb,
    (select count(*) from b) as rows_spark,
    count(*) filter (where b.customer_id is null) as missing_in_spark,
    count(*) filter (where {float_diff}) as float_rows_over_1e9,
    count(*) filter (where {exact_diff}) as exact_rows_differ,
    {per_column}
from a left join b using (cutoff_date, customer_id)
"""


def compare(duck: Path, spark: Path) -> dict[str, Any]:
    """Rows that differ between the DuckDB and Spark outputs (floats beyond 1e-9)."""
    import duckdb
    import pyarrow.parquet as pq

    schema = pq.read_schema(duck)
    floats = [f.name for f in schema if str(f.type) == "double"]
    exact = [
        f.name
        for f in schema
        if f.name not in floats and f.name not in ("cutoff_date", "customer_id")
    ]
    fd = {
        c: f"case when a.{c} is null or b.{c} is null then (a.{c} is null) <> (b.{c} is null) "
        f"else abs(a.{c} - b.{c}) > 1e-9 end"
        for c in floats
    }
    ed = {c: f"a.{c} is distinct from b.{c}" for c in exact}
    sql = COMPARE_SQL.format(
        float_diff=" or ".join(fd.values()),
        exact_diff=" or ".join(ed.values()),
        per_column=", ".join(
            f'count(*) filter (where {cond}) as "{c}"' for c, cond in {**fd, **ed}.items()
        ),
    )
    con = duckdb.connect()
    try:
        cur = con.execute(sql, {"a": str(duck), "b": str(spark)})
        row = cur.fetchone()
        names = [d[0] for d in cur.description]
    finally:
        con.close()
    out = dict(zip(names, row, strict=True))
    head = {
        k: out.pop(k)
        for k in (
            "rows_duckdb",
            "rows_spark",
            "missing_in_spark",
            "float_rows_over_1e9",
            "exact_rows_differ",
        )
    }
    head["columns_that_differ"] = {k: v for k, v in out.items() if v}
    return head


def _summarise(r: dict[str, Any], transactions: int) -> dict[str, Any]:
    if r.get("error") or not r.get("runs_seconds"):
        return {"error": r.get("error", "no runs"), **r}
    runs = r["runs_seconds"]
    steady = runs[1:] if len(runs) > 1 else runs
    med = statistics.median(runs)
    out = {
        "median_seconds": round(med, 3),
        "median_seconds_after_first": round(statistics.median(steady), 3),
        "first_run_seconds": runs[0],
        "runs_seconds": runs,
        "transactions_per_second": round(transactions / med),
        "tree_peak_rss_mb": r["tree_peak_rss_mb"],
        "snapshot_rows": r["snapshot_rows"],
        "current_rows": r["current_rows"],
        "output_mb": r["output_mb"],
    }
    for key in ("session_start_seconds", "spark_version"):
        if key in r:
            out[key] = r[key]
    return out


def bench_size(size: int, repeats: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    n_customers = round(size / TX_PER_CUSTOMER_DEFAULT)
    path = DATA_DIR / f"transactions_{label(size)}.parquet"
    print(f"[{label(size)}] data {path} ({n_customers:,} customers)", file=sys.stderr)
    meta = ensure_canonical(path, n_customers)
    rows = meta["rows"]
    result: dict[str, Any] = {
        "transactions": rows,
        "customers": meta["n_customers"],
        "parquet_mb": meta["file_mb"],
        "repeats": repeats,
    }
    outs = {}
    for engine in ("duckdb", "spark"):
        outs[engine] = work / f"{label(size)}_{engine}"
        spec = {
            "job": "features",
            "engine": engine,
            "tx": str(path),
            "out_dir": str(outs[engine]),
            "repeats": repeats,
            "threads": args.threads,
            "memory_limit": args.memory_limit,
        }
        r = run_child(SCRIPT, spec)
        result[engine] = _summarise(r, rows)
        print(f"[{label(size)}] {engine}: {json.dumps(result[engine])}", file=sys.stderr)
    d, s = result["duckdb"], result["spark"]
    if "median_seconds" in d and "median_seconds" in s:
        result["spark_over_duckdb"] = round(s["median_seconds"] / d["median_seconds"], 2)
        result["spark_over_duckdb_after_first"] = round(
            s["median_seconds_after_first"] / d["median_seconds_after_first"], 2
        )
        if args.compare:
            result["parity"] = {
                name: compare(outs["duckdb"] / name, outs["spark"] / name)
                for name in ("snapshots.parquet", "current.parquet")
            }
    return result


def cost_model(sizes: dict[str, Any]) -> dict[str, Any]:
    """Fit seconds = fixed + per_million × (transactions / 1e6) per engine from two sizes."""
    pts = sorted((v["transactions"], v) for v in sizes.values())
    if len(pts) < 2:
        return {}
    (n1, a), (n2, b) = pts[0], pts[-1]
    out: dict[str, Any] = {}
    for engine in ("duckdb", "spark"):
        if "median_seconds_after_first" not in a.get(
            engine, {}
        ) or "median_seconds_after_first" not in b.get(engine, {}):
            return {}
        t1, t2 = a[engine]["median_seconds_after_first"], b[engine]["median_seconds_after_first"]
        per_m = (t2 - t1) / ((n2 - n1) / 1e6)
        out[engine] = {
            "fixed_seconds": round(t1 - per_m * n1 / 1e6, 2),
            "seconds_per_million_tx": round(per_m, 3),
        }
    if "session_start_seconds" in b.get("spark", {}):
        out["spark"]["session_start_seconds"] = b["spark"]["session_start_seconds"]
    out["note"] = (
        "fitted on 2 cores from the runs after the first; use for orders of magnitude only"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    code = child_main(argv, JOBS)
    if code is not None:
        return code
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1M,10M", help="transactions per size, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--repeats-big", type=int, default=1, help="repeats for sizes >= --big")
    parser.add_argument("--big", default="10M")
    parser.add_argument("--threads", type=int, default=2, help="DuckDB threads = Spark local[N]")
    parser.add_argument(
        "--memory-limit", default="4GB", help="DuckDB memory_limit = Spark driver heap"
    )
    parser.add_argument("--no-compare", dest="compare", action="store_false")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "spark.json")
    args = parser.parse_args(argv)
    sizes = [parse_count(s) for s in args.sizes.split(",") if s]
    DATA_DIR.mkdir(parents=True, exist_ok=True)

    started = time.time()
    result: dict[str, Any] = {
        "benchmark": "spark",
        "command": "python benchmarks/spark.py " + " ".join(argv),
        "started": dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "stage": "churnguard features (8 labelled cutoffs, 30 days apart, + the as-of snapshot)",
        "engines": {
            "duckdb": {"threads": args.threads, "memory_limit": args.memory_limit},
            "spark": {"master": f"local[{args.threads}]", "driver_memory": args.memory_limit},
        },
        "machine": machine(),
        "sizes": {},
    }
    with tempfile.TemporaryDirectory(prefix="cg-bench-spark-", dir=DATA_DIR) as work:
        for size in sizes:
            repeats = args.repeats_big if size >= parse_count(args.big) else args.repeats
            result["sizes"][label(size)] = bench_size(size, repeats, args, Path(work))
    result["cost_model"] = cost_model(result["sizes"])
    result["elapsed_seconds"] = round(time.time() - started, 1)

    from churnguard.io import write_json_atomic

    write_json_atomic(args.out, result)
    print(json.dumps(result, indent=2), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
