"""Value if retained, checked against what customers really spent afterwards.

Usage: ``python benchmarks/value.py [--cdnow PATH]`` (``make bench-value``). Writes
``benchmarks/results/value.json`` and the "## Value estimate (backtest)" section of
``docs/benchmarks.md``.

For each data set and each past cutoff c (a snapshot built by the package's feature SQL,
only transactions dated <= c), every estimate predicts each active customer's spend over
the churn horizon (90 days) and over a year, and is compared with what the customers who
were retained (bought within the churn horizon: ``churned`` = 0) really spent in
(c, c + 90] and (c, c + 365]: the total ratio (predicted ÷ realised) and the calibration
by predicted-value decile (``mean_abs_log_ratio``: 0 is perfect, 0.1 ≈ deciles 10% off).

Estimates (churnguard.value): ``own_rate`` (the estimate used before: own spend per day,
tenure floored at 30 days), ``nbd_shrunk`` (the one used now), and the variants that chose
its settings: one pseudo purchase day of spend (``SPEND_PRIOR_DAYS``; ``spend_prior_0``
and ``spend_prior_3``), conditioning on a purchase within the churn horizon
(``unconditional`` leaves it out) and the rate after the horizon taken from the history
alone (``conditioned_after`` raises it by that condition too).

Data: the synthetic default (``params.yaml``'s generate section, 4,000 customers) and CDNOW
(``configs/cdnow.yaml``; its cohort is acquired in Q1 1997, so early cutoffs are the
short-tenure test). Nothing here is timed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnguard import value as V
from churnguard.config import EngineParams, load_params
from churnguard.db import connect, sql_string
from churnguard.features import snapshot_frame
from churnguard.ingest import run_ingest
from churnguard.io import write_json_atomic
from churnguard.synth import run_generate

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, write_docs_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SECTION = "## Value estimate (backtest)"
HORIZON = 90
YEAR = 365
CUTOFFS = {
    "synthetic": [dt.date(2023, 4, 1) + dt.timedelta(days=91 * i) for i in range(9)],
    "cdnow": [dt.date(1997, 3, 31), dt.date(1997, 6, 30), dt.date(1997, 9, 30),
              dt.date(1997, 12, 31), dt.date(1998, 4, 1)],
}  # fmt: skip
ESTIMATES = (
    "own_rate",
    "nbd_shrunk",
    "spend_prior_0",
    "spend_prior_3",
    "unconditional",
    "conditioned_after",
)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def predictions(snap: pd.DataFrame, days: int) -> dict[str, np.ndarray]:
    prior = V.fit_value_prior(snap)
    out = {"own_rate": V.own_rate_value(snap, days).to_numpy()}
    out["nbd_shrunk"] = V.value_if_retained(snap, days, HORIZON, prior).to_numpy()
    for q in (0, 3):
        out[f"spend_prior_{q}"] = V.value_if_retained(
            snap, days, HORIZON, prior, spend_prior_days=q
        ).to_numpy()
    out["unconditional"] = V.value_if_retained(
        snap, days, HORIZON, prior, given_retained=False
    ).to_numpy()
    out["conditioned_after"] = V.value_if_retained(
        snap, days, HORIZON, prior, conditioned_after_horizon=True
    ).to_numpy()
    return out


def realised(con: Any, tx: Path, cutoff: dt.date, days: int) -> pd.Series:
    rows = con.execute(
        f"select customer_id, sum(amount) as spend from read_parquet({sql_string(str(tx))}) "
        "where cast(ts as date) > $c and cast(ts as date) <= $c + to_days($d) "
        "group by customer_id",
        {"c": cutoff, "d": days},
    ).df()
    return rows.set_index("customer_id")["spend"]


def check_dataset(name: str, tx: Path, engine: EngineParams, data_end: dt.date) -> list[dict]:
    out = []
    con = connect(engine)
    try:
        for cutoff in CUTOFFS[name]:
            snap = snapshot_frame(tx, cutoff, 365, engine, horizon_days=HORIZON)
            snap = snap[snap["lapsed"] == 0].reset_index(drop=True)
            retained = (snap["churned"] == 0).to_numpy()
            for days in (HORIZON, YEAR):
                if cutoff + dt.timedelta(days=days) > data_end:
                    continue
                spent = snap["customer_id"].map(realised(con, tx, cutoff, days)).fillna(0.0)
                row: dict[str, Any] = {
                    "data": name,
                    "cutoff": cutoff.isoformat(),
                    "window_days": days,
                    "active": int(len(snap)),
                    "retained": int(retained.sum()),
                    "tenure_median_days": float(snap["tenure_days"].median()),
                    "one_time_buyer_share": round(float(snap["one_time_buyer"].mean()), 4),
                }
                for est, pred in predictions(snap, days).items():
                    summary, _ = V.value_backtest(pred, spent, retained, snap["customer_id"])
                    row[est] = {k: summary[k] for k in ("total_ratio", "mean_abs_log_ratio")}
                    row[est]["predicted_total"] = summary["predicted_total"]
                    row[est]["realised_total"] = summary["realised_total"]
                out.append(row)
                say(
                    f"{name} {cutoff} {days}d: "
                    + ", ".join(
                        f"{e} {row[e]['total_ratio']:.2f}/{row[e]['mean_abs_log_ratio']:.2f}"
                        for e in ESTIMATES
                    )
                )
    finally:
        con.close()
    return out


def synthetic(tmp: Path, engine: EngineParams) -> tuple[Path, dt.date]:
    params = load_params(ROOT / "params.yaml")
    gen = params.generate.model_copy(
        update={"output": str(tmp / "raw.csv"), "truth_output": str(tmp / "truth.parquet")}
    )
    run_generate(gen)
    src = params.ingest.source.model_copy(update={"path": gen.output})
    ing = params.ingest.model_copy(
        update={"source": src, "output_dir": str(tmp / "syn"), "as_of": gen.end_date}
    )
    run_ingest(ing, engine)
    return tmp / "syn" / "transactions.parquet", gen.end_date


def cdnow(tmp: Path, engine: EngineParams, path: Path) -> tuple[Path, dt.date]:
    params = load_params(ROOT / "configs" / "cdnow.yaml")
    src = params.ingest.source.model_copy(update={"path": str(path)})
    ing = params.ingest.model_copy(update={"source": src, "output_dir": str(tmp / "cdnow")})
    run_ingest(ing, engine)
    return tmp / "cdnow" / "transactions.parquet", dt.date(1998, 6, 30)


def aggregate(rows: list[dict]) -> dict[str, Any]:
    """Per data set and window: the median over cutoffs of each estimate's figures."""
    out: dict[str, Any] = {}
    for (data, days), group in pd.DataFrame(rows).groupby(["data", "window_days"], sort=True):
        out[f"{data}_{days}d"] = {
            est: {
                k: round(float(np.median([g[k] for g in group[est] if g[k] is not None])), 4)
                for k in ("total_ratio", "mean_abs_log_ratio")
            }
            for est in ESTIMATES
        }
        out[f"{data}_{days}d"]["cutoffs"] = int(len(group))
    return out


def docs_section(result: dict[str, Any]) -> str:
    lines = [
        SECTION,
        "",
        "Generated by `benchmarks/value.py` (`make bench-value`); the method is in "
        "[value.md](value.md). Each cell: predicted ÷ realised total spend of the customers "
        "retained over the churn horizon (1 = right) / mean |log(predicted ÷ realised)| over "
        "the ten predicted-value deciles (0 = perfect). Median over the cutoffs listed.",
        "",
        "| data, window | cutoffs | own rate (before) | **nbd_shrunk (now)** | spend prior 0 "
        "| spend prior 3 | unconditional | conditioned after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, figures in result["median"].items():
        cells = [
            f"{figures[e]['total_ratio']:.2f} / {figures[e]['mean_abs_log_ratio']:.2f}"
            for e in ESTIMATES
        ]
        cells[1] = f"**{cells[1]}**"
        lines.append(
            f"| {key.replace('_', ', ')} | {figures['cutoffs']} | " + " | ".join(cells) + " |"
        )
    lines += ["", "Per cutoff (total ratio / decile error):", ""]
    lines.append(
        "| data | cutoff | window | active | retained | median tenure | own rate | nbd_shrunk |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in result["rows"]:
        own, new = r["own_rate"], r["nbd_shrunk"]
        lines.append(
            f"| {r['data']} | {r['cutoff']} | {r['window_days']}d | {r['active']:,} | "
            f"{r['retained']:,} | {r['tenure_median_days']:.0f} d | "
            f"{own['total_ratio']:.2f} / {own['mean_abs_log_ratio']:.2f} | "
            f"{new['total_ratio']:.2f} / {new['mean_abs_log_ratio']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cdnow", type=Path, default=ROOT.parent / "shared/data/cdnow/CDNOW_master.txt"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "value.json")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args(argv)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="cg-bench-value-") as tmp_dir:
        tmp = Path(tmp_dir)
        engine = EngineParams(temp_directory=str(tmp / "duck"))
        tx, end = synthetic(tmp, engine)
        rows += check_dataset("synthetic", tx, engine, end)
        if args.cdnow.exists():
            tx, end = cdnow(tmp, engine, args.cdnow)
            rows += check_dataset("cdnow", tx, engine, end)
        else:
            say(f"{args.cdnow} not found: CDNOW skipped")
    result = {
        "machine": machine(),
        "horizon_days": HORIZON,
        "rows": rows,
        "median": aggregate(rows),
    }
    write_json_atomic(args.out, result)
    if not args.no_docs:
        write_docs_section(docs_section(result), SECTION)
    say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
