"""Backtest logic: split rules, the chained-horizon method and the head-to-head table.

Pure functions on dates, arrays and frames (no disk, database or MLflow), so the CDNOW
benchmark (``benchmarks/cdnow.py``) and a future ``churnguard backtest`` command share them.

**Split rules.** ``train_model`` splits labelled cutoffs by time: test = the latest cutoff
(as_of − h), validation = the one before (test − step), training = cutoffs whose h-day
label window ends by the validation cutoff. So the latest training cutoff is
``as_of − 2h − step``: a long horizon may not fit the history at all.

**Chained horizon.** When the holdout H is too long to train on directly, train on a short
base horizon h and chain it::

    P(no purchase in (c, c+H]) = prod_k P(no purchase in (c+kh, c+(k+1)h] | none in (c, c+kh])

Each factor is the h-day model applied to the snapshot at c+kh built from the transactions
up to c only — exactly the customer's snapshot there if they do not buy in between — so
the product is the chain rule, not a guess. A final partial step of r < h days contributes
p^(r/h) (constant hazard within a step).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from churnguard import baselines
from churnguard.config import FeaturesParams, Params
from churnguard.evaluate import lift_at
from churnguard.feature_defs import plan_cutoffs
from churnguard.horizon import (  # noqa: F401 - re-exported
    P_FLOOR,
    chain_cutoffs,
    chain_no_purchase,
    chain_step_weights,
    chain_steps,
)
from churnguard.stats import (
    bootstrap_metric,
    percentile_ci,
    point_metric,
    rank01,
    resample_counts,
)
from churnguard.train import plan_split

HorizonFit = Literal["no_fit", "acquisition_only", "fits"]
log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- split rules


@dataclass(frozen=True)
class BacktestSplit:
    """The cutoff grid for training at ``as_of`` on an h-day label, and how train splits it."""

    as_of: dt.date
    horizon_days: int
    step_days: int
    cutoffs: list[dt.date]  # every labelled cutoff, oldest first (what the snapshots hold)
    train_cutoffs: list[dt.date]
    valid_cutoff: dt.date
    test_cutoff: dt.date


def latest_training_cutoff(as_of: dt.date, horizon_days: int, step_days: int) -> dt.date:
    """The latest cutoff train can fit on: test = as_of − h, validation = test − step,
    training label windows end by validation, so training cutoffs are ≤ as_of − 2h − step."""
    return as_of - dt.timedelta(days=2 * horizon_days + step_days)


def horizon_fit(
    as_of: dt.date,
    horizon_days: int,
    step_days: int,
    data_start: dt.date,
    acquisition_end: dt.date | None = None,
) -> tuple[HorizonFit, dt.date]:
    """Whether an h-day model can be trained at ``as_of`` on data from ``data_start``.

    ``no_fit``: the latest training cutoff is on or before the first day of data.
    ``acquisition_only``: it is on or before ``acquisition_end`` (the cohort is still being
    acquired, so training tenures are unlike the scored ones). Returns (status, latest).
    """
    latest = latest_training_cutoff(as_of, horizon_days, step_days)
    if latest <= data_start:
        return "no_fit", latest
    if acquisition_end is not None and latest <= acquisition_end:
        return "acquisition_only", latest
    return "fits", latest


def plan_backtest_split(
    data_min: dt.date, as_of: dt.date, horizon_days: int, step_days: int
) -> BacktestSplit:
    """As many ``step_days``-spaced labelled cutoffs as fit in ``(data_min, as_of − h]``, split
    as ``train_model`` splits them. Raises :class:`~churnguard.errors.DataError` when the grid
    or the split does not fit (too few cutoffs, no training label window before validation).
    """
    last = as_of - dt.timedelta(days=horizon_days)
    n = max(1, ((last - data_min).days - 1) // step_days + 1)
    fp = FeaturesParams(
        as_of=as_of,
        horizon_days=horizon_days,
        cutoff_step_days=step_days,
        n_cutoffs=n,
        horizon_mode="direct",
    )
    cutoffs = plan_cutoffs(data_min, as_of, fp)[1]
    split = plan_split(cutoffs, horizon_days, step_days)
    return BacktestSplit(
        as_of=as_of,
        horizon_days=horizon_days,
        step_days=step_days,
        cutoffs=cutoffs,
        train_cutoffs=split.train_cutoffs,
        valid_cutoff=split.valid_cutoff,
        test_cutoff=split.test_cutoff,
    )


def check_pseudo_splits(splits: Sequence[tuple[dt.date, int]], cal_end: dt.date) -> None:
    """Raise ValueError if a pseudo-split (end, horizon) reads past ``cal_end``: design
    choices are made inside the calibration period, never on the holdout."""
    for end, horizon in splits:
        if end + dt.timedelta(days=horizon) > cal_end:
            raise ValueError(
                f"pseudo-split {end} + {horizon} days ends after the calibration end {cal_end}"
            )


# --------------------------------------------------------------------------- chaining
# (the chain lives in churnguard.horizon, which scoring uses; re-exported here)

# --------------------------------------------------------------------------- comparing scorers


def point_metrics(y: np.ndarray, score: np.ndarray, probability: bool) -> dict[str, float | None]:
    """ROC-AUC, PR-AUC and (for probabilities only) Brier on the sample."""
    return {
        "roc_auc": point_metric("roc_auc", score, y),
        "pr_auc": point_metric("pr_auc", score, y),
        "brier": point_metric("brier", score, y) if probability else None,
    }


def compare_scorers(
    y: np.ndarray,
    scores: Mapping[str, np.ndarray],
    probability: Mapping[str, bool],
    counts: Sequence[np.ndarray],
    baselines: Sequence[str],
    model: str = "churnguard",
) -> dict[str, Any]:
    """Every scorer's metrics with bootstrap intervals, and ``model`` against the best baseline.

    ``counts`` are shared resamples (:func:`churnguard.stats.resample_counts`), so the
    differences are paired. The best baseline is chosen per metric on the sample (Brier:
    among the baselines that give probabilities; first listed wins a tie). Non-probability
    scores get a lift through their rank (:func:`churnguard.stats.rank01`).
    """
    rows: dict[str, dict[str, Any]] = {}
    boot: dict[str, dict[str, np.ndarray]] = {}
    for name, s in scores.items():
        prob = probability[name]
        b_auc = bootstrap_metric("roc_auc", s, y, counts)
        b_ap = bootstrap_metric("pr_auc", s, y, counts)
        boot[name] = {"roc_auc": b_auc, "pr_auc": b_ap}
        row: dict[str, Any] = {
            "roc_auc": point_metric("roc_auc", s, y),
            "roc_auc_ci95": list(percentile_ci(b_auc)),
            "pr_auc": point_metric("pr_auc", s, y),
            "pr_auc_ci95": list(percentile_ci(b_ap)),
            "brier": None,
            "lift_top10": lift_at(y, s if prob else rank01(s), 0.1),
        }
        if prob:
            row["brier"] = point_metric("brier", s, y)
            b_br = bootstrap_metric("brier", s, y, counts)
            boot[name]["brier"] = b_br
            row["brier_ci95"] = list(percentile_ci(b_br))
            row["mean_prediction"] = float(s.mean())
        rows[name] = row
    best: dict[str, Any] = {}
    for metric, better in (("roc_auc", max), ("pr_auc", max), ("brier", min)):
        pool = [n for n in baselines if rows[n][metric] is not None]
        if not pool or rows[model][metric] is None:
            continue
        winner = better(pool, key=lambda n, m=metric: rows[n][m])
        diff = boot[model][metric] - boot[winner][metric]
        wins = diff > 0 if metric != "brier" else diff < 0
        best[metric] = {
            "baseline": winner,
            "baseline_value": rows[winner][metric],
            "churnguard_value": rows[model][metric],
            "difference": rows[model][metric] - rows[winner][metric],
            "difference_ci95": list(percentile_ci(diff)),
            "share_of_resamples_churnguard_better": float(wins.mean()),
        }
    return {
        "n": int(y.size),
        "churn_rate": float(y.mean()),
        "base_rate_brier_oracle": float(y.mean() * (1 - y.mean())),
        "scorers": rows,
        "vs_best_baseline": best,
    }


def select_variant(
    splits: Sequence[Mapping[str, Mapping[str, Any]]], prefix: str = "chain_"
) -> tuple[dict[str, float], str]:
    """Mean ROC-AUC (4 decimals) of every ``prefix`` variant scored on every pseudo-split,
    and the best one (ties: the larger name). ``splits[i]`` maps scorer → its metrics."""
    variants = sorted({k for s in splits for k in s if k.startswith(prefix)})
    mean_auc = {
        v: round(float(np.mean([s[v]["roc_auc"] for s in splits])), 4)
        for v in variants
        if all(v in s for s in splits)
    }
    if not mean_auc:
        raise ValueError(f"no '{prefix}' variant was scored on every pseudo-split")
    return mean_auc, max(mean_auc, key=lambda v: (mean_auc[v], v))


# --------------------------------------------------------------------------- churnguard backtest
#
# The whole pipeline at a past as-of date D and a target window W: features from the
# canonical transactions with every line after D hidden (no ingest change), the plan, the
# model and its calibration exactly as `features` + `train` fit them, scoring as `score`
# scores (chained when the plan chains), and the realised outcome: no purchase in (D, D+W].

PROBABILITY = {
    "model": True,
    "model_evaluated": True,
    "logreg": True,
    "recency": False,
    "rfm": False,
    "bg_expected": False,
    "bg_no_purchase": True,
    "pn_expected": False,
    "pn_no_purchase": True,
}
LABELS = {
    "model": "churnguard (LightGBM, as shipped)",
    "model_evaluated": "churnguard, evaluated fit (before the refit)",
    "logreg": "logistic regression, same features",
    "recency": "days since last purchase",
    "rfm": "RFM quintile sum (15 − R − F − M)",
    "bg_expected": "BG/NBD, expected purchases in the window",
    "bg_no_purchase": "BG/NBD, P(no purchase in the window)",
    "pn_expected": "Pareto/NBD, expected purchases in the window",
    "pn_no_purchase": "Pareto/NBD, P(no purchase in the window)",
}
BASELINE_NAMES = (
    "logreg",
    "recency",
    "rfm",
    "bg_expected",
    "bg_no_purchase",
    "pn_expected",
    "pn_no_purchase",
)
PARETO = ("pn_expected", "pn_no_purchase")
METRICS = ("roc_auc", "pr_auc", "brier")
BOOTSTRAP_SEED = 20250
RESULTS_JSON, RESULTS_MD, RESULTS_PNG = "backtest.json", "backtest.md", "backtest.png"


@dataclass
class DateRun:
    """One as-of date: the customers scored (active at D), the outcome and every score."""

    as_of: dt.date
    window_days: int
    customers: np.ndarray
    y: np.ndarray
    scores: dict[str, np.ndarray]
    info: dict[str, Any]


def parse_window(text: str) -> int:
    """``273d``, ``39w`` or ``273`` → days (ConfigError-free: ValueError on anything else)."""
    t = text.strip().lower()
    mult = 7 if t.endswith("w") else 1
    t = t[:-1] if t[-1:] in ("d", "w") else t
    if not t.isdigit() or int(t) < 1:
        raise ValueError(f"window {text!r} is not a number of days (273d) or weeks (39w)")
    return int(t) * mult


def parse_dates(text: str) -> list[dt.date]:
    """``D1,D2,...`` or a grid ``START..END/STEP`` (STEP in days or weeks, END included)."""
    text = text.strip()
    if ".." in text:
        span, _, step = text.partition("/")
        start, _, end = span.partition("..")
        first, last = dt.date.fromisoformat(start.strip()), dt.date.fromisoformat(end.strip())
        days = parse_window(step or "30d")
        if last < first:
            raise ValueError(f"grid {text!r} ends before it starts")
        out, d = [], first
        while d <= last:
            out.append(d)
            d += dt.timedelta(days=days)
        return out
    return sorted({dt.date.fromisoformat(p.strip()) for p in text.split(",") if p.strip()})


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
    from churnguard.errors import ConfigError

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
    import time

    from churnguard.engines import get_engine
    from churnguard.engines.duckdb import data_range as duck_range
    from churnguard.errors import DataError
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
            info["btyd"] = {"params": bt["params"], "seconds": round(time.perf_counter() - t1, 1)}
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


def _best(rows: Mapping[str, Mapping[str, Any]], names: Sequence[str], metric: str) -> str | None:
    pool = [n for n in names if n in rows and rows[n].get(metric) is not None]
    if not pool:
        return None
    sign = -1.0 if metric == "brier" else 1.0
    return max(pool, key=lambda n: (sign * rows[n][metric], -list(names).index(n)))


def compare_date(
    run: DateRun, counts: Sequence[np.ndarray], confidence: float, model: str = "model"
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Every scorer's metrics with intervals, and the model's paired leads at one date:
    over the best baseline, over Pareto/NBD (best of its two scores) and over each
    baseline. Returns (table, bootstrap values per scorer and metric)."""
    boot: dict[str, dict[str, np.ndarray]] = {}
    rows: dict[str, dict[str, Any]] = {}
    for name, s in run.scores.items():
        prob = PROBABILITY.get(name, True)
        row: dict[str, Any] = {"label": LABELS.get(name, name), "probability": prob}
        boot[name] = {}
        for metric in METRICS:
            if metric == "brier" and not prob:
                row[metric] = None
                continue
            values = bootstrap_metric(metric, s, run.y, counts)
            boot[name][metric] = values
            row[metric] = point_metric(metric, s, run.y)
            row[f"{metric}_ci"] = list(percentile_ci(values, confidence))
        row["lift_top10"] = lift_at(run.y, s if prob else rank01(s), 0.1)
        if prob:
            row["mean_prediction"] = float(np.mean(s))
        rows[name] = row
    leads: dict[str, Any] = {}
    present = [b for b in BASELINE_NAMES if b in rows]
    for metric in METRICS:
        if rows.get(model, {}).get(metric) is None:
            continue
        targets = {"best_baseline": _best(rows, present, metric)}
        targets["pareto_nbd"] = _best(rows, [b for b in PARETO if b in rows], metric)
        for b in present:
            targets[b] = b
        out = {}
        for key, other in targets.items():
            if other is None or metric not in boot[other]:
                continue
            diff = boot[model][metric] - boot[other][metric]
            sign = -1.0 if metric == "brier" else 1.0  # lead > 0: the model is better
            lo, hi = percentile_ci(sign * diff, confidence)
            out[key] = {
                "baseline": other,
                "lead": sign * (rows[model][metric] - rows[other][metric]),
                "lead_ci": [lo, hi],
                "share_better": float(np.mean(sign * diff > 0)),
            }
        leads[metric] = out
    table = {
        **run.info,
        "n": int(run.y.size),
        "scorers": rows,
        "leads": leads,
        "model_best_brier": _model_best_brier(rows, model),
    }
    return table, boot


def _model_best_brier(rows: Mapping[str, Mapping[str, Any]], model: str) -> bool | None:
    others = [r["brier"] for n, r in rows.items() if n != model and n != "model_evaluated"]
    others = [b for b in others if b is not None]
    if rows.get(model, {}).get("brier") is None or not others:
        return None
    return bool(rows[model]["brier"] < min(others))


def pooled_leads(
    dates: Sequence[dict[str, Any]],
    boots: Sequence[dict[str, dict[str, np.ndarray]]],
    confidence: float,
    model: str = "model",
) -> dict[str, Any]:
    """The model's lead averaged over the dates, with a paired interval: resample r of
    every date is drawn with the same seed index, and the mean over dates of the per-date
    differences on resample r is one draw of the mean lead. Baselines are named per
    date (the best baseline may differ between dates)."""
    out: dict[str, Any] = {}
    for metric in METRICS:
        per_key: dict[str, list[np.ndarray]] = {}
        point: dict[str, list[float]] = {}
        for table, boot in zip(dates, boots, strict=True):
            for key, lead in table["leads"].get(metric, {}).items():
                diff = boot[model][metric] - boot[lead["baseline"]][metric]
                sign = -1.0 if metric == "brier" else 1.0
                per_key.setdefault(key, []).append(sign * diff)
                point.setdefault(key, []).append(lead["lead"])
        out[metric] = {
            key: {
                "mean_lead": float(np.mean(point[key])),
                "mean_lead_ci": list(percentile_ci(np.mean(np.vstack(v), axis=0), confidence)),
                "dates": len(v),
            }
            for key, v in per_key.items()
            if len(v) == len(dates)
        }
    means = {}
    for name in dates[0]["scorers"]:
        means[name] = {
            m: float(np.mean([d["scorers"][name][m] for d in dates]))
            if all(d["scorers"].get(name, {}).get(m) is not None for d in dates)
            else None
            for m in METRICS
        }
    return {"leads": out, "mean_metrics": means}


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
    import time

    from churnguard.io import write_json_atomic, write_text_atomic

    bp = params.backtest
    use_btyd = bp.btyd if btyd is None else btyd
    if use_btyd:
        require_btyd()
    n_boot = resamples or bp.resamples
    tx = Path(transactions or params.features.input)
    if not tx.exists():
        from churnguard.errors import DataError

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


def _rounded(obj: Any, digits: int = 6) -> Any:
    if isinstance(obj, dict):
        return {str(k): _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_rounded(v, digits) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, float | np.floating):
        x = float(obj)
        return None if not np.isfinite(x) else round(x, digits) + 0.0
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _console_line(table: Mapping[str, Any]) -> str:
    m = table["scorers"]["model"]
    lead = table["leads"].get("roc_auc", {}).get("best_baseline")
    txt = f"{table['as_of']}: model ROC-AUC {m['roc_auc']:.4f}, Brier {m['brier']:.4f}"
    if lead:
        lo, hi = lead["lead_ci"]
        txt += f"; lead over {lead['baseline']} {lead['lead']:+.4f} [{lo:+.4f}, {hi:+.4f}]"
    return txt


def _f(x: float | None, d: int = 3) -> str:
    return "–" if x is None else f"{x:.{d}f}"


def _ci(row: Mapping[str, Any], metric: str, d: int = 3) -> str:
    if row.get(metric) is None:
        return "–"
    lo, hi = row[f"{metric}_ci"]
    return f"{row[metric]:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]"


def _lead(lead: Mapping[str, Any] | None, d: int = 4) -> str:
    if not lead:
        return "–"
    lo, hi = lead["lead_ci"]
    return f"{lead['lead']:+.{d}f} [{lo:+.{d}f}, {hi:+.{d}f}]"


def markdown(result: Mapping[str, Any]) -> str:
    """The backtest as Markdown: one table per date, then the pooled leads."""
    bt = result["backtest"]
    pct = f"{100 * bt['confidence']:.0f}%"
    out = [
        f"# Backtest: {bt['window_days']}-day window, as of {', '.join(bt['dates'])}",
        "",
        f"Outcome: no purchase in (as-of, as-of + {bt['window_days']} days]. Customers: those "
        "active (not lapsed) at the as-of date. Each date runs the whole pipeline on the "
        "transactions up to it (features, plan, model, calibration, scoring as shipped). "
        f"Intervals: {pct} paired bootstrap over customers ({bt['resamples']} resamples, the "
        "same resamples for every method). Lead = how much better churnguard is (ROC-AUC and "
        "PR-AUC: higher; Brier: lower), so a lead above 0 favours churnguard.",
        "",
    ]
    for t in result["dates"]:
        plan = t["plan"]
        how = (
            f"chained: {plan['label_horizon_days']}-day model over {plan['target_horizon_days']} days"
            if plan["mode"] == "chained"
            else f"direct {plan['target_horizon_days']}-day model"
        )
        out += [
            f"## As of {t['as_of']}",
            "",
            f"{t['n']:,} customers, churn rate {100 * t['churn_rate']:.1f}%; {how}, "
            f"{t['shipped_fit']} shipped, calibrated on {', '.join(t['calibration_dates'])}.",
            "",
            "| method | ROC-AUC | PR-AUC | Brier | top-decile lift |",
            "|---|---|---|---|---|",
        ]
        for name, row in t["scorers"].items():
            label = f"**{row['label']}**" if name == "model" else row["label"]
            out.append(
                f"| {label} | {_ci(row, 'roc_auc')} | {_ci(row, 'pr_auc')} | "
                f"{_ci(row, 'brier', 4)} | {_f(row['lift_top10'], 2)} |"
            )
        out += ["", "| churnguard lead over | ROC-AUC | PR-AUC | Brier |", "|---|---|---|---|"]
        for key in ("best_baseline", "pareto_nbd"):
            cells = []
            for metric in METRICS:
                lead = t["leads"].get(metric, {}).get(key)
                name = f" ({lead['baseline']})" if lead else ""
                cells.append(_lead(lead, 4) + name)
            out.append(f"| {key.replace('_', ' ')} | " + " | ".join(cells) + " |")
        out.append("")
    pooled = result["pooled"]["leads"]
    out += [
        f"## Over all {len(result['dates'])} date(s)",
        "",
        "Mean over the dates of churnguard's lead (the baseline named per date), with a paired "
        "interval from the same resamples:",
        "",
        "| lead over | ROC-AUC | PR-AUC | Brier |",
        "|---|---|---|---|",
    ]
    keys = [k for k in ("best_baseline", "pareto_nbd", *BASELINE_NAMES) if k in pooled["roc_auc"]]
    for key in keys:
        cells = []
        for metric in METRICS:
            p = pooled.get(metric, {}).get(key)
            cells.append(
                "–"
                if not p
                else f"{p['mean_lead']:+.4f} [{p['mean_lead_ci'][0]:+.4f}, {p['mean_lead_ci'][1]:+.4f}]"
            )
        out.append(f"| {LABELS.get(key, key.replace('_', ' '))} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


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


def compare_variants(
    runs: Mapping[str, Sequence[DateRun]],
    reference: str,
    resamples: int,
    confidence: float = 0.95,
    score: str = "model",
) -> dict[str, Any]:
    """Each variant's ``score`` against the ``reference`` variant's, paired on the same
    customers and resamples at every date, then averaged over the dates.

    ``runs[v][i]`` is variant v at date i (the same dates, customers and outcomes for every
    variant). Returns, per variant: per-date metrics and, per metric, the mean difference
    variant − reference made "higher is better" (Brier: reference − variant) with a paired
    interval (resample r of every date, averaged over dates).
    """
    ref = runs[reference]
    out: dict[str, Any] = {}
    counts = [resample_counts(r.y.size, resamples, BOOTSTRAP_SEED) for r in ref]
    ref_boot = [
        {m: bootstrap_metric(m, r.scores[score], r.y, c) for m in METRICS}
        for r, c in zip(ref, counts, strict=True)
    ]
    for name, variant in runs.items():
        if len(variant) != len(ref):
            raise ValueError(f"variant {name} has {len(variant)} dates, {reference} {len(ref)}")
        per_date, diffs = [], {m: [] for m in METRICS}
        for r, v, c, rb in zip(ref, variant, counts, ref_boot, strict=True):
            if not (np.array_equal(r.customers, v.customers) and np.array_equal(r.y, v.y)):
                raise ValueError(f"variant {name} scored other customers at {v.as_of}")
            row = {"as_of": str(v.as_of), "window_days": v.window_days}
            for m in METRICS:
                row[m] = point_metric(m, v.scores[score], v.y)
                sign = -1.0 if m == "brier" else 1.0
                diffs[m].append(sign * (bootstrap_metric(m, v.scores[score], v.y, c) - rb[m]))
                row[f"{m}_gain"] = sign * (row[m] - point_metric(m, r.scores[score], r.y))
            per_date.append(row)
        gains = {}
        for m in METRICS:
            mean = np.mean(np.vstack(diffs[m]), axis=0)
            gains[m] = {
                "mean_gain": float(np.mean([row[f"{m}_gain"] for row in per_date])),
                "mean_gain_ci": list(percentile_ci(mean, confidence)),
            }
        out[name] = {"dates": per_date, "gain_vs_reference": gains}
    return out
