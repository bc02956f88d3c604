"""Benchmark the point-in-time feature build against a pandas RFM summary, side by side.

Usage: ``python benchmarks/features.py [--sizes 1M,10M,50M] [--repeats 3] [--repeats-big 1]
[--memory-limit 4GB] [--threads 2] [--max-temp 30GB] [--proposed-sql PATH] [--loop]
[--out PATH]``.

For each size (transactions; synthetic canonical Parquet cached under benchmarks/.data/):

* ``duckdb_full``    — churnguard's full feature build for one cutoff (``build_snapshot`` →
  Parquet, labelled, every feature of sql/features.sql), DuckDB with ``--threads`` and
  ``--memory-limit``;
* ``duckdb_full_proposed`` — the same with a modified copy of features.sql
  (``--proposed-sql``), measured in the same run;
* ``pandas_summary`` — a straightforward pandas groupby recency/frequency/monetary/tenure
  summary (lifetimes' ``summary_data_from_transaction_data`` done by hand), read from the
  same Parquet, same cutoff;
* ``duckdb_basic``   — the same basic summary as one DuckDB query (reference point);
* ``six_cutoffs``    — the full build for 6 cutoffs (30 days apart): the package SQL in
  one query, the proposed SQL in one query, and (``--loop``) one query per cutoff.

Every measurement runs in its own child process; peak RSS is that child's ``ru_maxrss``.
Seconds are the work only (read + compute + write), not interpreter start-up.
``--sql`` replaces the package SQL itself (for profiling a variant on its own).
``--max-temp`` caps DuckDB's spill folder (max_temp_directory_size) so a run on a shared
machine fails rather than filling the disk; the package itself sets no cap.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    DATA_DIR,
    RESULTS_DIR,
    TX_PER_CUSTOMER_DEFAULT,
    DirSizeSampler,
    child_main,
    ensure_canonical,
    label,
    machine,
    parse_count,
    run_child,
    update_docs,
)

SCRIPT = Path(__file__).resolve()
HORIZON_DAYS = 90
LOST_AFTER_DAYS = 365
STEP_DAYS = 30

BASIC_SQL = """
with daily as (
    select customer_id, cast(ts as date) as day, sum(amount) as amount
    from read_parquet($path)
    where cast(ts as date) <= $cutoff
    group by customer_id, cast(ts as date)
),
firsts as (
    select customer_id, min(day) as first_day from daily group by customer_id
)
select
    d.customer_id,
    count(*) - 1 as frequency,
    date_diff('day', min(d.day), max(d.day)) as recency,
    date_diff('day', min(d.day), $cutoff) as T,
    date_diff('day', max(d.day), $cutoff) as recency_days,
    count(*) as purchase_days,
    sum(d.amount) as monetary_total,
    coalesce(avg(d.amount) filter (where d.day > f.first_day), 0) as monetary_value
from daily d join firsts f using (customer_id)
group by d.customer_id
"""


# -- child jobs (run in a fresh process each) ----------------------------------------------


def _connect(memory_limit: str, threads: int, temp_dir: str, max_temp: str | None) -> Any:
    from churnguard.config import EngineParams
    from churnguard.db import connect

    con = connect(EngineParams(memory_limit=memory_limit, threads=threads, temp_directory=temp_dir))
    if max_temp:  # guard for a shared machine: fail instead of filling the disk with spill
        con.execute("SET max_temp_directory_size = ?", [max_temp])
    return con


def job_duckdb_full(
    tx: str,
    cutoffs: list[str],
    memory_limit: str,
    threads: int,
    temp_dir: str,
    sql: str | None = None,
    max_temp: str | None = None,
    loop: bool = False,
    per_query: int | None = None,
) -> dict[str, Any]:
    """``build_snapshot`` for ``cutoffs``: all in one query, or ``per_query`` cutoffs per
    query (``loop``: one per cutoff), the parts concatenated in cutoff order by the package
    (what ``run_features`` does with ``features.cutoffs_per_query``)."""
    import pandas  # noqa: F401  (imported before the clock starts, as in every job)

    from churnguard import features

    if sql:
        text = Path(sql).read_text(encoding="utf-8")
        import churnguard.engines.duckdb as duck

        duck.feature_sql = lambda: text  # the benchmark's modified copy; src/ untouched
    cut = [dt.date.fromisoformat(c) for c in cutoffs]
    if loop:
        per_query = 1
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="cg-bench-feat-", dir=DATA_DIR) as out:
            target = Path(out) / "snapshots.parquet"
            with DirSizeSampler(Path(temp_dir)) as spill:
                t0 = time.perf_counter()
                con = _connect(memory_limit, threads, temp_dir, max_temp)
                rows = features.build_snapshot(
                    con, tx, cut, HORIZON_DAYS, LOST_AFTER_DAYS, target, per_query
                )
                con.close()
                seconds = time.perf_counter() - t0
            out_mb = target.stat().st_size / 1e6
    except Exception as exc:  # e.g. DuckDB out of memory: report it, do not crash the benchmark
        return {
            "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}",
            "seconds_until_error": time.perf_counter() - t0,
        }
    return {
        "seconds": seconds,
        "rows": rows,
        "output_mb": round(out_mb, 1),
        "spill_peak_mb": round(spill.peak / 1e6, 1),
    }


def job_duckdb_basic(
    tx: str,
    cutoff: str,
    memory_limit: str,
    threads: int,
    temp_dir: str,
    max_temp: str | None = None,
) -> dict[str, Any]:
    import pandas  # noqa: F401  (imported before the clock starts, as in every job)

    t0 = time.perf_counter()
    con = _connect(memory_limit, threads, temp_dir, max_temp)
    frame = con.execute(BASIC_SQL, {"path": tx, "cutoff": dt.date.fromisoformat(cutoff)}).df()
    con.close()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rows": len(frame), "check": _checksum(frame)}


def job_pandas_summary(tx: str, cutoff: str) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    import pyarrow.parquet  # noqa: F401  (imports happen before the clock starts)

    t0 = time.perf_counter()
    end = pd.Timestamp(cutoff)
    df = pd.read_parquet(tx, columns=["customer_id", "ts", "amount"])
    df["day"] = df["ts"].dt.floor("D")
    df = df.loc[df["day"] <= end]
    # one row per customer and purchase day (lifetimes: period "D", monetary summed)
    daily = df.groupby(["customer_id", "day"], sort=False, as_index=False)["amount"].sum()
    del df
    first = daily.groupby("customer_id", sort=False)["day"].transform("min")
    daily["repeat_amount"] = daily["amount"].where(daily["day"] > first)
    g = daily.groupby("customer_id", sort=True)
    out = g.agg(
        first=("day", "min"),
        last=("day", "max"),
        purchase_days=("day", "count"),
        monetary_total=("amount", "sum"),
        monetary_value=("repeat_amount", "mean"),
    )
    day = np.timedelta64(1, "D")
    out["frequency"] = out["purchase_days"] - 1
    out["recency"] = (out["last"] - out["first"]) / day
    out["T"] = (end - out["first"]) / day
    out["recency_days"] = (end - out["last"]) / day
    out["monetary_value"] = out["monetary_value"].fillna(0.0)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rows": len(out), "check": _checksum(out.reset_index())}


def _checksum(frame: Any) -> dict[str, float]:
    """Totals that must agree between the pandas and DuckDB summaries."""
    return {
        "customers": int(len(frame)),
        "frequency": int(frame["frequency"].sum()),
        "recency": int(frame["recency"].sum()),
        "T": int(frame["T"].sum()),
        "monetary_total": round(float(frame["monetary_total"].sum()), 2),
        "monetary_value": round(float(frame["monetary_value"].sum()), 2),
    }


JOBS = {
    "duckdb_full": job_duckdb_full,
    "duckdb_basic": job_duckdb_basic,
    "pandas_summary": job_pandas_summary,
}


# -- parent ---------------------------------------------------------------------------------


def _cutoffs(tx: Path, n: int) -> tuple[list[dt.date], dict[str, Any]]:
    import duckdb

    from churnguard.config import FeaturesParams
    from churnguard.features import plan_cutoffs

    con = duckdb.connect()
    lo, hi = con.execute(
        "select min(cast(ts as date)), max(cast(ts as date)) from read_parquet(?)", [str(tx)]
    ).fetchone()
    con.close()
    params = FeaturesParams(
        horizon_days=HORIZON_DAYS,
        cutoff_step_days=STEP_DAYS,
        n_cutoffs=n,
        lost_after_days=LOST_AFTER_DAYS,
    )
    _, cutoffs = plan_cutoffs(lo, hi, params)
    return cutoffs, {"data_min": str(lo), "data_max": str(hi)}


def _summarise(runs: list[dict[str, Any]], transactions: int) -> dict[str, Any]:
    ok = [r for r in runs if not r.get("error")]
    if not ok:
        bad = runs[-1]
        return {
            "error": bad.get("error"),
            "seconds_until_error": round(
                bad.get("seconds_until_error", bad.get("child_wall_seconds", 0)), 1
            ),
            "peak_rss_mb": bad.get("peak_rss_mb"),
        }
    med = statistics.median(r["seconds"] for r in ok)
    out = {
        "median_seconds": round(med, 3),
        "transactions_per_second": round(transactions / med),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in ok),
        "runs_seconds": [round(r["seconds"], 3) for r in ok],
        "runs_peak_rss_mb": [r["peak_rss_mb"] for r in ok],
        "output_rows": ok[0].get("rows"),
    }
    for key in ("spill_peak_mb", "output_mb"):
        if key in ok[0]:
            out[key] = max(r[key] for r in ok)
    return out


def _log(size: int, what: str, r: dict[str, Any]) -> None:
    if r.get("error"):
        print(
            f"[{label(size)}] {what}: ERROR {r['error']} (peak RSS {r['peak_rss_mb']:.0f} MB)",
            file=sys.stderr,
        )
        return
    spill = f", spill {r['spill_peak_mb']:.0f} MB" if "spill_peak_mb" in r else ""
    print(
        f"[{label(size)}] {what}: {r['seconds']:.2f} s, peak RSS {r['peak_rss_mb']:.0f} MB{spill}",
        file=sys.stderr,
    )


def _ratio(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    if "median_seconds" in a and "median_seconds" in b:
        return round(a["median_seconds"] / b["median_seconds"], 2)
    return None


def bench_size(size: int, repeats: int, args: argparse.Namespace) -> dict[str, Any]:
    n_customers = round(size / TX_PER_CUSTOMER_DEFAULT)
    path = DATA_DIR / f"transactions_{label(size)}.parquet"
    print(f"[{label(size)}] data {path} ({n_customers:,} customers)", file=sys.stderr)
    meta = ensure_canonical(path, n_customers)
    rows = meta["rows"]
    one, span = _cutoffs(path, 1)
    six, _ = _cutoffs(path, 6)
    engine = {
        "memory_limit": args.memory_limit,
        "threads": args.threads,
        "temp_dir": str(DATA_DIR / "duckdb_tmp_features"),
        "max_temp": args.max_temp or None,
    }
    full = {"job": "duckdb_full", "tx": str(path), "cutoffs": [str(one[0])], **engine}
    specs: dict[str, dict[str, Any]] = {"duckdb_full": {**full, "sql": args.sql}}
    if args.proposed_sql:
        specs["duckdb_full_proposed"] = {**full, "sql": args.proposed_sql}
    specs["pandas_summary"] = {"job": "pandas_summary", "tx": str(path), "cutoff": str(one[0])}
    specs["duckdb_basic"] = {
        "job": "duckdb_basic",
        "tx": str(path),
        "cutoff": str(one[0]),
        **engine,
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in specs}
    checks: dict[str, Any] = {}
    for i in range(repeats):
        # the measurements alternate within each repeat, so load on the machine hits all of them
        for name, spec in specs.items():
            r = run_child(SCRIPT, spec)
            runs[name].append(r)
            if "check" in r:
                checks[name] = r.pop("check")
            _log(size, f"run {i + 1}/{repeats} {name}", r)
    oc = {name: _summarise(r, rows) for name, r in runs.items()}
    result: dict[str, Any] = {
        "transactions": rows,
        "customers": meta["n_customers"],
        "parquet_mb": meta["file_mb"],
        "data": str(path.relative_to(DATA_DIR.parent.parent)),
        **span,
        "cutoff": str(one[0]),
        "repeats": repeats,
        "one_cutoff": oc,
        "summaries_agree": bool(checks.get("pandas_summary") == checks.get("duckdb_basic")),
        "summary_check": checks.get("pandas_summary"),
        "ratio_pandas_summary_over_duckdb_full": _ratio(oc["pandas_summary"], oc["duckdb_full"]),
        "ratio_pandas_summary_over_duckdb_basic": _ratio(oc["pandas_summary"], oc["duckdb_basic"]),
    }
    if args.proposed_sql:
        result["ratio_pandas_summary_over_duckdb_full_proposed"] = _ratio(
            oc["pandas_summary"], oc["duckdb_full_proposed"]
        )
        result["speedup_proposed_over_package"] = _ratio(
            oc["duckdb_full"], oc["duckdb_full_proposed"]
        )
    if size in args.six_cutoff_sizes:
        six_specs: dict[str, dict[str, Any]] = {}
        base = {"job": "duckdb_full", "tx": str(path), "cutoffs": [str(c) for c in six], **engine}
        if not args.skip_package_six:
            six_specs["package_one_query"] = {**base, "sql": args.sql}
        if args.proposed_sql:
            if size <= args.proposed_one_query_max:
                six_specs["proposed_one_query"] = {**base, "sql": args.proposed_sql}
            if args.loop:
                six_specs["proposed_per_cutoff"] = {**base, "sql": args.proposed_sql, "loop": True}
                for limit in args.loop_memory_limits:
                    six_specs[f"proposed_per_cutoff_{limit}"] = {
                        **base,
                        "sql": args.proposed_sql,
                        "loop": True,
                        "memory_limit": limit,
                    }
        elif args.loop:
            six_specs["package_per_cutoff"] = {**base, "sql": args.sql, "loop": True}
        from churnguard.features import cutoffs_per_query

        auto = cutoffs_per_query("auto", rows, args.memory_limit)
        if 1 < auto < len(six) and not args.proposed_sql:
            six_specs[f"package_{auto}_per_query"] = {**base, "sql": args.sql, "per_query": auto}
        result["six_cutoffs"] = {"cutoffs": [str(c) for c in six], "auto_cutoffs_per_query": auto}
        for name, spec in six_specs.items():
            r = run_child(SCRIPT, spec)
            _log(size, f"6 cutoffs {name}", r)
            summary = _summarise([r], rows)
            if "median_seconds" in summary:
                summary["seconds_per_cutoff"] = round(summary["median_seconds"] / len(six), 3)
            summary["within_4GB_rss"] = bool(
                "median_seconds" in summary and summary["peak_rss_mb"] <= 4096
            )
            result["six_cutoffs"][name] = summary
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    code = child_main(argv, JOBS)
    if code is not None:
        return code
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="1M,10M,50M", help="transactions per size, comma-separated"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--repeats-big", type=int, default=1, help="repeats for sizes >= --big")
    parser.add_argument("--big", default="50M")
    parser.add_argument(
        "--six-cutoffs", default="1M,10M,50M", help="sizes that also run 6 cutoffs ('' = none)"
    )
    parser.add_argument("--memory-limit", default="4GB")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--max-temp",
        default="30GB",
        help="DuckDB max_temp_directory_size guard ('' = DuckDB default)",
    )
    parser.add_argument(
        "--sql", default=None, help="run the package build with this copy of features.sql instead"
    )
    parser.add_argument(
        "--proposed-sql", default=None, help="also measure this modified features.sql, side by side"
    )
    parser.add_argument(
        "--loop", action="store_true", help="6 cutoffs: also one query per cutoff, concatenated"
    )
    parser.add_argument(
        "--skip-package-six",
        action="store_true",
        help="6 cutoffs: skip the package SQL in one query",
    )
    parser.add_argument(
        "--proposed-one-query-max",
        default="50M",
        help="6 cutoffs: run the proposed SQL in one query only up to this size",
    )
    parser.add_argument(
        "--loop-memory-limits",
        default="",
        help="6 cutoffs: also run the proposed per-cutoff loop at these memory limits (e.g. 3GB)",
    )
    parser.add_argument(
        "--no-docs", action="store_true", help="do not rewrite the docs/benchmarks.md section"
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="only rewrite the docs/benchmarks.md section from the existing results",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "features.json")
    args = parser.parse_args(argv)
    if args.render_only:
        update_docs()
        return 0
    args.proposed_one_query_max = parse_count(args.proposed_one_query_max)
    args.loop_memory_limits = [m for m in args.loop_memory_limits.split(",") if m]
    sizes = [parse_count(s) for s in args.sizes.split(",") if s]
    args.six_cutoff_sizes = {parse_count(s) for s in args.six_cutoffs.split(",") if s}
    for key in ("sql", "proposed_sql"):
        if getattr(args, key):
            setattr(args, key, str(Path(getattr(args, key)).resolve()))
    big = parse_count(args.big)
    DATA_DIR.mkdir(parents=True, exist_ok=True)

    started = time.time()
    result: dict[str, Any] = {
        "benchmark": "features",
        "command": "python benchmarks/features.py " + " ".join(argv),
        "started": dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "engine": {
            "name": "duckdb",
            "threads": args.threads,
            "memory_limit": args.memory_limit,
            "max_temp_directory_size": args.max_temp,
        },
        "sql": args.sql or "src/churnguard/sql/features.sql",
        "proposed_sql": args.proposed_sql,
        "notes": [
            "peak_rss_mb: the measuring child's ru_maxrss in MiB (4 GB target = 4096 MiB)",
            "DuckDB '4GB' memory_limit = 4e9 bytes = 3815 MiB (buffer manager only)",
        ],
        "horizon_days": HORIZON_DAYS,
        "lost_after_days": LOST_AFTER_DAYS,
        "machine": machine(),
        "sizes": {},
    }
    for size in sizes:
        result["sizes"][label(size)] = bench_size(
            size, args.repeats_big if size >= big else args.repeats, args
        )
    result["targets"] = _targets(result["sizes"])
    result["elapsed_seconds"] = round(time.time() - started, 1)

    from churnguard.io import write_json_atomic

    write_json_atomic(args.out, result)
    if not args.no_docs and args.out.resolve() == (RESULTS_DIR / args.out.name).resolve():
        update_docs()
    print(json.dumps(result, indent=2), file=sys.stderr)
    return 0


def _targets(sizes: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    ten = sizes.get("10M", {})
    for key, what in (
        ("ratio_pandas_summary_over_duckdb_full", "package"),
        ("ratio_pandas_summary_over_duckdb_full_proposed", "proposed"),
    ):
        if ten.get(key) is not None:
            out[f"10M_full_build_10x_faster_than_pandas ({what} SQL)"] = {
                "ratio": ten[key],
                "met": ten[key] >= 10,
            }
    six = sizes.get("50M", {}).get("six_cutoffs", {})
    for name, r in six.items():
        if isinstance(r, dict):
            out[f"50M_6_cutoffs_within_4GB_rss ({name})"] = {
                "peak_rss_mb": r.get("peak_rss_mb"),
                "error": r.get("error"),
                "met": r.get("within_4GB_rss", False),
            }
    return out


if __name__ == "__main__":
    sys.exit(main())
