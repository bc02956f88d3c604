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
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from churnguard.config import FeaturesParams
from churnguard.evaluate import lift_at
from churnguard.feature_defs import plan_cutoffs
from churnguard.stats import (
    bootstrap_metric,
    percentile_ci,
    point_metric,
    rank01,
)
from churnguard.train import plan_split

P_FLOOR = 1e-9  # per-step probabilities are clipped here before the log
HorizonFit = Literal["no_fit", "acquisition_only", "fits"]


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


def chain_steps(base_days: int, horizon_days: int) -> int:
    """How many base steps cover the horizon (the last may be partial)."""
    if base_days < 1 or horizon_days < 1:
        raise ValueError(f"base and horizon must be >= 1 day, got {base_days}, {horizon_days}")
    return math.ceil(horizon_days / base_days - 1e-9)


def chain_cutoffs(as_of: dt.date, base_days: int, horizon_days: int) -> list[dt.date]:
    """Snapshot dates as_of + k·base for every chain step k (all built from data up to as_of)."""
    steps = chain_steps(base_days, horizon_days)
    return [as_of + dt.timedelta(days=k * base_days) for k in range(steps)]


def chain_step_weights(base_days: int, horizon_days: int) -> list[float]:
    """Exponent of each step's probability: 1 for full steps, r/h for a final partial step."""
    steps = chain_steps(base_days, horizon_days)
    return [min(1.0, (horizon_days - k * base_days) / base_days) for k in range(steps)]


def chain_no_purchase(
    step_p: Sequence[pd.Series | np.ndarray], base_days: int, horizon_days: int
) -> pd.Series:
    """P(no purchase in the horizon) = prod_k p_k^(w_k) from per-step base-horizon probabilities.

    ``step_p[k]`` is the base model's P(no purchase) on the snapshot at step k (see
    :func:`chain_cutoffs`); Series are aligned on their index (customer id), arrays by
    position. Probabilities are clipped to [1e-9, 1] and combined in log space.
    """
    weights = chain_step_weights(base_days, horizon_days)
    if len(step_p) != len(weights):
        raise ValueError(
            f"a {horizon_days}-day horizon in {base_days}-day steps needs {len(weights)} step "
            f"probabilities, got {len(step_p)}"
        )
    log_p: pd.Series | None = None
    for p, weight in zip(step_p, weights, strict=True):
        s = p if isinstance(p, pd.Series) else pd.Series(np.asarray(p, dtype=float))
        term = weight * np.log(s.clip(P_FLOOR, 1.0))
        log_p = term if log_p is None else log_p.add(term, fill_value=np.nan)
    assert log_p is not None
    if log_p.isna().any():
        raise ValueError(
            f"{int(log_p.isna().sum())} customer(s) lack a probability at some chain step "
            "(or have a missing one): every step must score the same customers"
        )
    return np.exp(log_p)


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
