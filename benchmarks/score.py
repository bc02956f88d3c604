"""Benchmark end-to-end batch scoring: 1M customers from ~20M transactions.

Usage: ``python benchmarks/score.py [--customers 1M] [--train-customers 100k] [--repeats 1]
[--memory-limit 2GB] [--threads 2] [--proposed-sql PATH] [--proposed PATCHES.py]
[--explain-max shipped,all] [--skip-package] [--out PATH]``.

Data: synthetic canonical transactions (cached under benchmarks/.data/), generated with
``orders_per_year`` raised so ~1M customers make ~20M lines. A model is trained first
(not timed) with :func:`churnguard.train.train_model` on rolling snapshots of a separate
100k-customer sample and saved to a temporary folder. Then ``run_score(..., model=<folder>,
output_dir=<tmp>, force=True)`` runs in a child process with the shipped params.yaml
(playbook, bands, capacity, explain_top) and the engine settings given here; the child's
peak RSS comes from ``os.wait4``. Phases are the ones the code times itself
(``@churnguard.timing.timed``, collected with ``timing.collect()``; nothing is patched):
hashing inputs, snapshot (feature SQL), predict, actions, SHAP contributions, reason texts,
list building, CRR, writing files.

Variant ``package`` is the code and params.yaml as shipped. ``--explain-max`` adds
variants ``package_explain_<N|all>`` that change only ``score.explain_max_customers`` (how
many listed customers get SHAP reasons; ``all`` = every listed customer), to show what
reasons cost. Variant ``proposed`` (when ``--proposed-sql`` or ``--proposed`` is given) runs
the snapshot with a modified copy of features.sql and/or a Python file that patches
proposed changes into the scoring process (in memory; the package is not modified). All
variants run in the same benchmark, alternating within each repeat.
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
    child_main,
    ensure_canonical,
    label,
    machine,
    parse_count,
    run_child,
    update_docs,
)

SCRIPT = Path(__file__).resolve()
PROJECT = SCRIPT.parent.parent
ORDERS_PER_YEAR_20 = 16.35  # synthetic: ~20 lines per customer (6.0 gives ~8)

# the phases the code times itself (``@timed`` in churnguard; read with timing.collect),
# in report order; an indented name runs inside the one above it
PHASES: tuple[str, ...] = (
    "data_range (as-of)",
    "hash inputs (md5)",
    "load model",
    "snapshot (feature SQL)",
    "score_frame total",
    "  predict",
    "  actions (playbook, capacity)",
    "  reasons: SHAP contributions",
    "  reasons: texts",
    "compare with previous",
    "present columns",
    "manager lists",
    "CRR trend",
    "write outputs total",
    "  write CSVs",
    "  render report.html",
    "  write workbooks",
    "  render manager pages",
    "swap folder in",
)


# -- child job ------------------------------------------------------------------------------


def job_score(
    tx: str,
    model: str,
    memory_limit: str,
    threads: int,
    temp_dir: str,
    sql: str | None = None,
    proposed: str | None = None,
    explain_max: str | None = None,
) -> dict[str, Any]:
    import runpy

    import pandas  # noqa: F401  (imports before the clock starts)

    from churnguard import score as score_mod
    from churnguard.config import load_params

    if sql:
        text = Path(sql).read_text(encoding="utf-8")
        from churnguard.engines import duckdb as duck

        duck.feature_sql = lambda: text  # the benchmark's modified copy; src/ untouched
    if proposed:
        runpy.run_path(proposed)  # what-if patches, in this process's memory only
    params = load_params(PROJECT / "params.yaml")
    score_params = params.score
    if explain_max not in (None, "shipped"):
        limit = None if explain_max == "all" else int(explain_max)
        score_params = score_params.model_copy(update={"explain_max_customers": limit})
    engine = params.engine.model_copy(
        update={"memory_limit": memory_limit, "threads": threads, "temp_directory": temp_dir}
    )
    from churnguard import timing

    with (
        timing.collect() as timed,
        tempfile.TemporaryDirectory(prefix="cg-bench-score-", dir=DATA_DIR) as tmp,
    ):
        out = Path(tmp) / "scores"
        t0 = time.perf_counter()
        summary = score_mod.run_score(
            score_params,
            params.features,
            params.report,
            engine,
            model=model,
            output_dir=out,
            transactions=Path(tx),
            force=True,
        )
        seconds = time.perf_counter() - t0
        files = sorted(p for p in out.rglob("*") if p.is_file())
        sizes = {str(p.relative_to(out)): round(p.stat().st_size / 1e6, 2) for p in files}
    return {
        "seconds": seconds,
        "phases": {name.strip(): round(timed.seconds[name.strip()], 3) for name in PHASES},
        "calls": dict(timed.calls),
        "customers_scored": summary["customers_scored"],
        "customers_on_lists": summary["customers_on_lists"],
        "customers_explained": summary["customers_explained"],
        "explain_max_customers": score_params.explain_max_customers,
        "manual_actions": summary["manual_actions"],
        "automated_actions": summary["automated_actions"],
        "files": len(files),
        "output_mb": round(sum(sizes.values()), 1),
        "largest_files_mb": dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:3]),
    }


JOBS = {"score": job_score}


# -- parent ---------------------------------------------------------------------------------


def train_model_folder(
    train_tx: Path, folder: Path, engine_kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Snapshots of the training sample → train_model → save (not timed as scoring)."""
    from churnguard.config import EngineParams, load_params
    from churnguard.features import run_features
    from churnguard.train import load_training_frame, train_model

    params = load_params(PROJECT / "params.yaml")
    engine = EngineParams(**engine_kwargs)
    t0 = time.perf_counter()
    fp = params.features.model_copy(
        update={"input": str(train_tx), "output_dir": str(folder / "features")}
    )
    run_features(fp, engine)
    frame, horizon, step = load_training_frame(folder / "features")
    trained = train_model(frame, horizon, params.train, step)
    model, summary = trained.model, trained.summary
    model.save(folder / "model")
    return {
        "seconds": round(time.perf_counter() - t0, 1),
        "snapshot_rows": len(frame),
        "rows": summary["rows"],
        "best_iteration": summary["best_iteration"],
        "calibration": summary["calibration"],
    }


def _summarise(runs: list[dict[str, Any]], customers: int) -> dict[str, Any]:
    ok = [r for r in runs if not r.get("error")]
    if not ok:
        return {
            "errors": [r.get("error") for r in runs],
            "peak_rss_mb": runs[-1].get("peak_rss_mb"),
        }
    med = statistics.median(r["seconds"] for r in ok)
    best = min(ok, key=lambda r: abs(r["seconds"] - med))
    return {
        "median_seconds": round(med, 3),
        "customers_per_second": round(customers / med),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in ok),
        "runs_seconds": [round(r["seconds"], 3) for r in ok],
        "phases_seconds": best.get("phases"),
        "customers_scored": best.get("customers_scored"),
        "customers_on_lists": best.get("customers_on_lists"),
        "customers_explained": best.get("customers_explained"),
        "explain_max_customers": best.get("explain_max_customers"),
        "manual_actions": best.get("manual_actions"),
        "automated_actions": best.get("automated_actions"),
        "output_files": best.get("files"),
        "output_mb": best.get("output_mb"),
        "largest_files_mb": best.get("largest_files_mb"),
        "under_2_minutes": med < 120,
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    code = child_main(argv, JOBS)
    if code is not None:
        return code
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", default="1M")
    parser.add_argument("--orders-per-year", type=float, default=ORDERS_PER_YEAR_20)
    parser.add_argument("--train-customers", default="100k")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--memory-limit", default=None, help="DuckDB memory_limit (default: params.yaml engine)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="DuckDB threads (default: params.yaml engine)"
    )
    parser.add_argument(
        "--proposed-sql", default=None, help="variant 'proposed': this copy of features.sql"
    )
    parser.add_argument(
        "--proposed",
        default=None,
        help="variant 'proposed': a Python file run in the scoring process first (patches)",
    )
    parser.add_argument(
        "--explain-max",
        default="shipped",
        help="comma-separated score.explain_max_customers values, one variant each: "
        "'shipped' (params.yaml), 'all' (every listed customer) or a number",
    )
    parser.add_argument("--skip-package", action="store_true", help="run only the proposed variant")
    parser.add_argument(
        "--no-docs", action="store_true", help="do not rewrite the docs/benchmarks.md section"
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="only rewrite the docs/benchmarks.md section from the existing results",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "score.json")
    args = parser.parse_args(argv)
    if args.render_only:
        update_docs()
        return 0
    for key in ("proposed_sql", "proposed"):
        if getattr(args, key):
            setattr(args, key, str(Path(getattr(args, key)).resolve()))

    from churnguard.config import load_params
    from churnguard.io import write_json_atomic

    shipped = load_params(PROJECT / "params.yaml").engine
    engine = {
        "memory_limit": args.memory_limit or shipped.memory_limit,
        "threads": args.threads or shipped.threads,
        "temp_dir": str(DATA_DIR / "duckdb_tmp_score"),
    }
    n_customers = parse_count(args.customers)
    n_train = parse_count(args.train_customers)
    overrides = {"orders_per_year": args.orders_per_year}
    started = time.time()
    load_at_start = machine()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    tx = DATA_DIR / f"score_transactions_{label(n_customers)}_customers.parquet"
    train_tx = DATA_DIR / f"score_train_{label(n_train)}_customers.parquet"
    print(f"data {tx}", file=sys.stderr)
    meta = ensure_canonical(tx, n_customers, seed=4242, overrides=overrides)
    train_meta = ensure_canonical(train_tx, n_train, seed=777, overrides=overrides)

    variants: dict[str, dict[str, Any]] = {}
    for value in (v.strip() for v in args.explain_max.split(",") if v.strip()):
        if value not in ("shipped", "all") and not value.isdigit():
            parser.error(f"--explain-max: {value!r} is not 'shipped', 'all' or a number")
        if args.skip_package and value == "shipped":
            continue
        name = "package" if value == "shipped" else f"package_explain_{value}"
        variants[name] = {"explain_max": value}
    if args.proposed_sql or args.proposed:
        variants["proposed"] = {"sql": args.proposed_sql, "proposed": args.proposed}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="cg-bench-model-", dir=DATA_DIR) as tmp:
        folder = Path(tmp)
        print(
            f"training on {train_meta['rows']:,} lines ({n_train:,} customers) …", file=sys.stderr
        )
        trained = train_model_folder(
            train_tx,
            folder,
            {
                "memory_limit": engine["memory_limit"],
                "threads": engine["threads"],
                "temp_directory": engine["temp_dir"],
            },
        )
        print(
            f"trained in {trained['seconds']} s (best iteration {trained['best_iteration']})",
            file=sys.stderr,
        )
        for i in range(args.repeats):
            for name, extra in variants.items():  # variants alternate within each repeat
                spec = {"job": "score", "tx": str(tx), "model": str(folder / "model"), **engine}
                r = run_child(SCRIPT, {**spec, **extra})
                runs[name].append(r)
                err = f"  ERROR {r['error']}" if r.get("error") else ""
                print(
                    f"run {i + 1}/{args.repeats} {name}: {r.get('seconds', float('nan')):.1f} s, "
                    f"peak RSS {r['peak_rss_mb']:.0f} MB{err}",
                    file=sys.stderr,
                )
                for phase, sec in r.get("phases", {}).items():
                    print(f"    {phase:32s} {sec:8.2f} s", file=sys.stderr)
    results = {name: _summarise(r, meta["n_customers"]) for name, r in runs.items()}
    result: dict[str, Any] = {
        "benchmark": "score",
        "command": "python benchmarks/score.py " + " ".join(argv),
        "started": dt.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "engine": {
            "name": "duckdb",
            "threads": engine["threads"],
            "memory_limit": engine["memory_limit"],
        },
        "data": {
            "path": str(tx.relative_to(PROJECT)),
            "customers": meta["n_customers"],
            "transactions": meta["rows"],
            "parquet_mb": meta["file_mb"],
            "orders_per_year": args.orders_per_year,
        },
        "training": {"customers": n_train, "transactions": train_meta["rows"], **trained},
        "repeats": args.repeats,
        "variants": {
            name: {
                "sql": extra.get("sql") or "src/churnguard/sql/features.sql",
                "patches": extra.get("proposed"),
                **results[name],
            }
            for name, extra in variants.items()
        },
        "target_seconds": 120,
        "machine": load_at_start,
        "elapsed_seconds": round(time.time() - started, 1),
    }
    for name, b in results.items():
        a = results.get("package", {})
        if name != "package" and "median_seconds" in a and "median_seconds" in b:
            result[f"speedup_{name}_over_package"] = round(
                a["median_seconds"] / b["median_seconds"], 2
            )
    write_json_atomic(args.out, result)
    if not args.no_docs and args.out.resolve() == (RESULTS_DIR / args.out.name).resolve():
        update_docs()
    print(json.dumps(result, indent=2), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
