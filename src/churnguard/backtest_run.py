"""``churnguard backtest``: the whole pipeline at past as-of dates, against the baselines.

At each as-of date D with a target window W: the features stage runs on the canonical
transactions with every line after D hidden (no ingest change), train fits the plan, the
model and its calibration exactly as in production (refit included), every scorer
scores the customers active at D as ``churnguard score`` does (chained when the plan
chains), and the outcome is no purchase in (D, D + W]. The model is compared with days
since last purchase, RFM, logistic regression, BG/NBD and Pareto/NBD with paired
bootstrap intervals (:mod:`churnguard.backtest` holds the pure comparison logic); the
results are written as JSON, Markdown and a PNG and logged as one MLflow run.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnguard import baselines
from churnguard.backtest import (
    BOOTSTRAP_SEED,
    LABELS,
    METRICS,
    RESULTS_JSON,
    RESULTS_MD,
    RESULTS_PNG,
    DateRun,
    _console_line,
    _rounded,
    compare_date,
    markdown,
    pooled_leads,
)
from churnguard.config import Params
from churnguard.errors import ConfigError, DataError
from churnguard.stats import resample_counts

log = logging.getLogger(__name__)


def _labels(
    transactions: Path, as_of: dt.date, window: int, lost_after_days: int, engine: Any
) -> pd.Series:
    from churnguard.engines.duckdb import snapshot_frame

    lab = snapshot_frame(transactions, as_of, lost_after_days, engine, horizon_days=window)
    lab = lab[lab["lapsed"] == 0]
    return lab.set_index("customer_id")["churned"].astype(int).sort_index()


def _score(scorer: Any, transactions: Path, as_of: dt.date, lost: int, engine: Any) -> pd.Series:
    """P(churn) at ``as_of`` exactly as ``churnguard score`` computes it (chained when the
    scorer's plan chains), by customer id, active customers only."""
    from churnguard.engines import get_engine
    from churnguard.modeling import LoadedModel

    loaded = LoadedModel(model=scorer, ref="backtest", version="backtest", digest="")
    snap, stand_in = get_engine(engine).score_snapshot(transactions, as_of, lost, loaded)
    snap = snap[snap["lapsed"] == 0]
    return pd.Series(stand_in.predict(snap), index=snap["customer_id"].to_numpy()).sort_index()


def require_btyd() -> None:
    """BG/NBD and Pareto/NBD need pymc-marketing (the ``bench`` extra)."""
    try:
        import pymc_marketing  # noqa: F401
    except ImportError:
        raise ConfigError(
            "the BG/NBD and Pareto/NBD baselines need pymc-marketing, which is not installed: "
            "`make install-bench` (or pip install 'churnguard[bench]'), or run without them "
            "(--no-btyd, or backtest.btyd: false in params.yaml)"
        ) from None


def btyd_scores(current: pd.DataFrame, active: pd.Index, window_days: int, seed: int) -> dict:
    """BG/NBD and Pareto/NBD fitted (MAP) on every customer's history at the as-of date,
    scored for the active customers over the window (weeks)."""
    import logging
    import warnings

    from churnguard import btyd

    warnings.filterwarnings("ignore", module="pymc.*")
    warnings.filterwarnings("ignore", module="pytensor.*")
    for name in ("pymc", "pytensor", "pymc_marketing"):
        logging.getLogger(name).setLevel(logging.ERROR)
    everyone = current.set_index("customer_id").sort_index()
    data = btyd.btyd_summary(everyone, btyd.WEEK_DAYS)
    bg, pn = btyd.fit_bgnbd(data), btyd.fit_paretonbd(data)
    keep = everyone.index.get_indexer(active)
    sub = data.iloc[keep].reset_index(drop=True)
    sub["customer_id"] = np.arange(len(sub))
    scores, checks = btyd.score_btyd(bg, pn, sub, {"w": window_days / btyd.WEEK_DAYS}, seed)
    out = {k: v for k, v in scores["w"].items() if k != "bg_one_minus_palive"}
    return {
        "scores": out,
        "params": {
            "bg": btyd.point_params(bg, btyd.BG_PARAMS),
            "pn": btyd.point_params(pn, btyd.PN_PARAMS),
        },
        "checks": checks["w"],
    }


def evaluate_date(
    params: Params,
    transactions: str | Path,
    as_of: dt.date,
    window_days: int,
    work: Path,
    *,
    with_baselines: bool = True,
    with_btyd: bool = True,
    seed: int = BOOTSTRAP_SEED,
) -> DateRun:
    """Run the pipeline as of ``as_of`` (features, train, score) and score every method on
    the customers active then; the outcome is no purchase in (as_of, as_of + window]."""
    from churnguard.engines import get_engine
    from churnguard.engines.duckdb import data_range as duck_range
    from churnguard.feature_defs import CURRENT_FILE, SNAPSHOTS_FILE
    from churnguard.train import load_plan, train_model

    tx = Path(transactions)
    t0 = time.perf_counter()
    from churnguard.db import connect

    con = connect(params.engine)
    try:
        data_min, data_max, _ = duck_range(con, tx)
    finally:
        con.close()
    end = as_of + dt.timedelta(days=window_days)
    if end > data_max:
        raise DataError(
            f"as-of {as_of} + {window_days} days ends on {end}, after the last transaction "
            f"({data_max}): the outcome is not known yet. Choose an as-of date on or before "
            f"{data_max - dt.timedelta(days=window_days)} or a shorter --window"
        )
    folder = work / f"{as_of}_{window_days}d"
    fp = params.features.model_copy(
        update={
            "input": str(tx),
            "output_dir": str(folder / "features"),
            "as_of": as_of,
            "horizon_days": window_days,
        }
    )
    fsum = get_engine(params.engine).build_features(fp)
    frame = pd.read_parquet(folder / "features" / SNAPSHOTS_FILE)
    plan, chain = load_plan(folder / "features", frame)
    trained = train_model(frame, int(fsum["horizon_days"]), params.train, None, plan, chain)
    t_train = time.perf_counter()
    lost = fp.lost_after_days
    y = _labels(tx, as_of, window_days, lost, params.engine)
    scores: dict[str, pd.Series] = {"model": _score(trained.model, tx, as_of, lost, params.engine)}
    if params.train.refit and trained.evaluated is not None:
        scores["model_evaluated"] = _score(trained.evaluated, tx, as_of, lost, params.engine)
    current = pd.read_parquet(folder / "features" / CURRENT_FILE)
    active = current[current["lapsed"] == 0].set_index("customer_id").sort_index()
    info: dict[str, Any] = {
        "as_of": str(as_of),
        "window_days": window_days,
        "data": {"first": str(data_min), "last": str(data_max)},
        "plan": trained.summary["plan"],
        "best_iteration": trained.summary["best_iteration"],
        "calibration": trained.summary["calibration"],
        "calibration_dates": trained.summary["calibration_dates"],
        "shipped_fit": trained.summary["shipped_fit"]["fit"],
        "chain_calibration": trained.summary.get("chain_calibration"),
        "features_excluded": trained.summary["features_excluded"],
        "train_seconds": round(t_train - t0, 1),
    }
    if with_baselines:
        scores["logreg"] = _score(trained.baselines["logreg"], tx, as_of, lost, params.engine)
        scores["recency"] = pd.Series(
            baselines.recency_rank_score(active), index=active.index, dtype=float
        )
        scores["rfm"] = pd.Series(
            baselines.rfm_baseline_score(active), index=active.index, dtype=float
        )
        if with_btyd:
            t1 = time.perf_counter()
            bt = btyd_scores(current, active.index, window_days, seed)
            for name, values in bt["scores"].items():
                scores[name] = pd.Series(values, index=active.index, dtype=float)
            info["btyd"] = {
                "params": bt["params"],
                "checks": bt["checks"],
                "seconds": round(time.perf_counter() - t1, 1),
            }
    ids = y.index
    for name, s in scores.items():
        if not s.index.equals(ids):
            raise DataError(
                f"{name} scored {len(s)} customers at {as_of}, the outcome has {len(ids)}: the "
                "scoring and label snapshots disagree"
            )
    info["customers"] = int(len(ids))
    info["churn_rate"] = round(float(y.mean()), 6)
    return DateRun(
        as_of,
        window_days,
        ids.to_numpy(),
        y.to_numpy(dtype=int),
        {k: v.to_numpy(dtype=float) for k, v in scores.items()},
        info,
    )


def run_backtest(
    params: Params,
    dates: Sequence[dt.date],
    window_days: int,
    output_dir: Path,
    *,
    transactions: str | Path | None = None,
    btyd: bool | None = None,
    log_mlflow: bool = True,
    resamples: int | None = None,
    work_dir: Path | None = None,
) -> dict[str, Any]:
    """``churnguard backtest``: every date through :func:`evaluate_date`, paired-bootstrap
    comparisons per date and pooled, written to ``output_dir`` (JSON, Markdown, PNG) and
    logged as one MLflow run."""
    import tempfile

    from churnguard.io import write_json_atomic, write_text_atomic

    bp = params.backtest
    use_btyd = bp.btyd if btyd is None else btyd
    if use_btyd:
        require_btyd()
    n_boot = resamples or bp.resamples
    tx = Path(transactions or params.features.input)
    if not tx.exists():
        raise DataError(f"{tx}: transactions not found (features.input; run `churnguard ingest`)")
    t0 = time.perf_counter()
    tables, boots = [], []
    with tempfile.TemporaryDirectory(prefix="churnguard-backtest-", dir=work_dir) as tmp:
        for as_of in sorted(dates):
            log.info("backtest as of %s, %d-day window", as_of, window_days)
            run = evaluate_date(params, tx, as_of, window_days, Path(tmp), with_btyd=use_btyd)
            counts = resample_counts(run.y.size, n_boot, BOOTSTRAP_SEED)
            table, boot = compare_date(run, counts, bp.confidence)
            tables.append(table)
            boots.append(boot)
            log.info("%s", _console_line(table))
    result = {
        "backtest": {
            "dates": [str(d) for d in sorted(dates)],
            "window_days": window_days,
            "transactions": tx.name,
            "resamples": n_boot,
            "confidence": bp.confidence,
            "btyd": use_btyd,
            "horizon_mode": params.features.horizon_mode,
            "refit": params.train.refit,
            "calibration_cutoffs": params.features.calibration_cutoffs,
            "features_excluded": sorted(params.train.exclude_features),
        },
        "dates": tables,
        "pooled": pooled_leads(tables, boots, bp.confidence),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    result = _rounded(result)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output_dir / RESULTS_JSON, result)
    write_text_atomic(output_dir / RESULTS_MD, markdown(result))
    plot(result, output_dir / RESULTS_PNG)
    if log_mlflow:
        result["mlflow_run_id"] = _log_mlflow(result, output_dir, bp.experiment_name)
    return result


def plot(result: Mapping[str, Any], target: Path) -> None:
    """ROC-AUC of every method per date, and churnguard's lead over the best baseline."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from churnguard.io import atomic_path

    dates = [t["as_of"] for t in result["dates"]]
    x = np.arange(len(dates))
    fig = Figure(figsize=(10, 4.2), dpi=100)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for name in result["dates"][0]["scorers"]:
        ys = [t["scorers"][name]["roc_auc"] for t in result["dates"]]
        style = {"linewidth": 2.5, "color": "black"} if name == "model" else {"alpha": 0.7}
        ax1.plot(x, ys, marker="o", label=LABELS.get(name, name), **style)
    ax1.set(title="ROC-AUC per as-of date", ylabel="ROC-AUC", xticks=x)
    ax1.set_xticklabels(dates, rotation=30, fontsize="small")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize="x-small")
    for offset, metric in ((-0.1, "roc_auc"), (0.1, "brier")):
        leads = [t["leads"].get(metric, {}).get("best_baseline") for t in result["dates"]]
        ys = [lead["lead"] if lead else np.nan for lead in leads]
        err = np.array(
            [
                [lead["lead"] - lead["lead_ci"][0], lead["lead_ci"][1] - lead["lead"]]
                if lead
                else [0, 0]
                for lead in leads
            ]
        ).T
        ax2.errorbar(x + offset, ys, yerr=err, fmt="o", capsize=3, label=f"{metric} lead")
    ax2.axhline(0, color="grey", linestyle=":")
    ax2.set(title="churnguard lead over the best baseline", ylabel="lead (> 0: churnguard better)")
    ax2.set_xticks(x)
    ax2.set_xticklabels(dates, rotation=30, fontsize="small")
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize="small")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.2, top=0.9, wspace=0.25)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")


def _log_mlflow(result: Mapping[str, Any], output_dir: Path, experiment: str) -> str:
    """One MLflow run: the settings as params, every metric per date, the three files."""
    import mlflow

    from churnguard import tracking

    tracking.init_tracking()
    bt = result["backtest"]
    name = f"backtest-{bt['dates'][0]}-{bt['window_days']}d"
    with tracking.training_run(experiment, run_name=name) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in bt.items()})
        metrics = {}
        for t in result["dates"]:
            for scorer, row in t["scorers"].items():
                for m in METRICS:
                    if row.get(m) is not None:
                        metrics[f"{t['as_of']}.{scorer}.{m}"] = float(row[m])
        for metric, leads in result["pooled"]["leads"].items():
            for key, p in leads.items():
                metrics[f"pooled.lead_over_{key}.{metric}"] = float(p["mean_lead"])
                metrics[f"pooled.lead_over_{key}.{metric}.lo"] = float(p["mean_lead_ci"][0])
        mlflow.log_metrics(metrics)
        mlflow.set_tags({**tracking.git_state(), "churnguard.kind": "backtest"})
        for fname in (RESULTS_JSON, RESULTS_MD, RESULTS_PNG):
            mlflow.log_artifact(str(output_dir / fname))
        return str(run.info.run_id)
