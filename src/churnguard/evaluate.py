"""The evaluate stage (``churnguard evaluate``): the model and the baselines on the test cutoff.

Reads ``<model_dir>/eval/predictions.parquet`` (written by train) and, when
``evaluate.transactions`` is set, each test customer's realised spend; computes the
metrics and plot tables (:mod:`churnguard.metrics`, in memory); writes ``metrics.json``,
``headline.json``, the wide plot tables for DVC and PNG figures for MLflow.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from churnguard.config import EvaluateParams, FeaturesParams
from churnguard.errors import DataError
from churnguard.io import atomic_path, write_json_atomic, write_text_atomic
from churnguard.metrics import (
    DECIMALS,
    PLOT_FILES,
    REALISED,
    VALUE_BASELINE,
    evaluate_predictions,
    headline,
    ranking_scorers,
)
from churnguard.value import METHOD as VALUE_METHOD

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"  # every metric of every scorer (a DVC output)
HEADLINE_FILE = "headline.json"  # the comparison that matters (the DVC metric)
FLOAT_FORMAT = "%.6f"


def table_to_csv(table: pd.DataFrame) -> str:
    """Deterministic CSV text: fixed 6-decimal floats, empty cells for NaN, no -0."""
    out = table.copy()
    for col in out.columns:
        if pd.api.types.is_float_dtype(out[col]):
            out[col] = out[col].round(DECIMALS) + 0.0
    return out.to_csv(index=False, float_format=FLOAT_FORMAT, na_rep="", lineterminator="\n")


def eval_dir(model_dir: str | Path) -> Path:
    return Path(model_dir) / "eval"


def png_paths(model_dir: str | Path) -> list[Path]:
    """Where :func:`run_evaluate` writes the PNG figures (for MLflow artifacts)."""
    return [eval_dir(model_dir) / "png" / f"{name}.png" for name in PLOT_FILES]


def write_pngs(
    tables: Mapping[str, pd.DataFrame], scorers: Sequence[str], out_dir: str | Path
) -> list[Path]:
    """Draw the five plot tables as PNGs (Agg backend; not byte-stable).

    Ranking figures leave out uncalibrated duplicates (:func:`ranking_scorers`); the
    calibration figure shows every scorer.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    layout = {
        "roc": ("fpr", "tpr_", "False positive rate", "True positive rate", "ROC"),
        "pr": ("recall", "precision_", "Recall", "Precision (interpolated)", "Precision-recall"),
        "calibration": (
            "bin_mid", "observed_", "Predicted churn probability", "Observed churn rate",
            "Calibration",
        ),
        "gain": ("share_contacted", "gain_", "Share contacted", "Share of churners", "Gain"),
        "profit": ("k", "profit_", "Customers contacted", "Profit", "Profit by list size"),
    }  # fmt: skip
    out_dir = Path(out_dir)
    ranked = ranking_scorers(scorers)
    written: list[Path] = []
    for name in PLOT_FILES:
        table = tables[name]
        x, prefix, x_label, y_label, title = layout[name]
        fig = Figure(figsize=(6, 4.5), dpi=100)
        ax = fig.add_subplot()
        if name in ("roc", "gain"):
            ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="random")
        if name == "calibration":
            ax.plot(table[x], table["perfect"], linestyle=":", color="grey", label="perfect")
        for s in scorers if name == "calibration" else ranked:
            col = f"{prefix}{s}"
            if col in table.columns:
                marker = "o" if name == "calibration" else None
                ax.plot(table[x], table[col], marker=marker, label=s)
        ax.set(title=f"{title} (test cutoff)", xlabel=x_label, ylabel=y_label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        fig.subplots_adjust(left=0.13, right=0.97, bottom=0.12, top=0.92)
        target = out_dir / f"{name}.png"
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png")
        written.append(target)
    return written


def _trained_horizon(model_dir: Path) -> int | None:
    """The label horizon in the model's metadata.json (None when it cannot be read)."""
    try:
        meta = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    horizon = meta.get("horizon_days") if isinstance(meta, dict) else None
    return horizon if isinstance(horizon, int) and not isinstance(horizon, bool) else None


_REALISED_SQL = """
select
    cast(p.cutoff_date as date) as cutoff_date,
    p.customer_id,
    coalesce(sum(t.amount), 0) as realised_spend
from wanted as p
left join read_parquet($transactions) as t
    on t.customer_id = p.customer_id
    and cast(t.ts as date) > cast(p.cutoff_date as date)
    and cast(t.ts as date) <= cast(p.cutoff_date as date) + to_days(cast($horizon as integer))
group by all
"""


def _with_realised_spend(
    frame: pd.DataFrame, transactions: Path, horizon: int | None
) -> pd.DataFrame:
    """``frame`` plus ``realised_spend``: each customer's net spend in (cutoff, cutoff +
    horizon], read from the canonical transactions."""
    import duckdb

    if not transactions.exists():
        raise DataError(
            f"{transactions} not found (evaluate.transactions: the canonical transactions the "
            "value backtest reads; run `churnguard ingest`, or set it to null to skip the check)"
        )
    wanted = frame[["cutoff_date", "customer_id"]].drop_duplicates()
    con = duckdb.connect()
    try:
        con.register("wanted", wanted)
        spent = con.execute(
            _REALISED_SQL,
            {
                "transactions": str(transactions),
                "horizon": horizon or FeaturesParams().horizon_days,
            },
        ).df()
    finally:
        con.close()
    spent["cutoff_date"] = pd.to_datetime(spent["cutoff_date"])
    keyed = frame.assign(cutoff_date=pd.to_datetime(frame["cutoff_date"]))
    out = keyed.merge(spent, on=["cutoff_date", "customer_id"], how="left", validate="many_to_one")
    out["cutoff_date"] = frame["cutoff_date"].to_numpy()
    out[REALISED] = out[REALISED].fillna(0.0).round(4)
    return out


def run_evaluate(params: EvaluateParams) -> dict[str, Any]:
    """Read predictions, write metrics.json, plot CSVs and PNGs; return the metrics."""
    folder = eval_dir(params.model_dir)
    source = folder / "predictions.parquet"
    if not source.exists():
        raise DataError(f"{source} not found; run the train stage first (it writes predictions)")
    frame = pd.read_parquet(source)
    horizon = _trained_horizon(Path(params.model_dir))
    if params.transactions is not None:
        frame = _with_realised_spend(frame, Path(params.transactions), horizon)
    result = evaluate_predictions(frame, params, horizon)
    write_json_atomic(folder / METRICS_FILE, result.metrics)
    write_json_atomic(folder / HEADLINE_FILE, headline(result.metrics))
    for name, table in result.tables.items():
        write_text_atomic(folder / "plots" / f"{name}.csv", table_to_csv(table))
    write_pngs(result.tables, result.scorers, folder / "png")
    backtest = result.metrics.get("value_backtest") or {}
    if backtest.get("checked"):
        mine, before = backtest[VALUE_METHOD], backtest[VALUE_BASELINE]
        log.info(
            "value backtest (%s days after the test cutoff, %s retained customers): predicted "
            "%s vs realised %s (ratio %s; the previous own-rate estimate: %s)",
            backtest["window_days"],
            f"{mine['customers_retained']:,}",
            f"{mine['predicted_total']:,.0f}",
            f"{mine['realised_total']:,.0f}",
            mine["total_ratio"],
            before["total_ratio"],
        )
    log.info(
        "evaluated %d scorer(s) on %d test customers (cutoff %s) → %s",
        len(result.scorers),
        result.metrics["n_test"],
        result.metrics["test_cutoff"],
        folder,
    )
    return result.metrics
