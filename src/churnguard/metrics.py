"""Metrics of the model and the baselines side by side on the test cutoff, in memory.

Ranking, calibration, lift, profit, slices, the value backtest's table, the plot tables
and their specs (the ``plots:`` block of ``dvc.yaml`` is generated from them), the
headline, and :func:`evaluate_predictions`, which computes all of it from the
validation/test predictions frame. Nothing here reads or writes a file: the evaluate
stage (:mod:`churnguard.evaluate`) reads the predictions and writes what is computed here.

Ranking metrics that depend on a list cut (lift, precision at k, gain, profit) treat tied
scores as one block and report the expected value when only part of the block fits in
the list (ties broken uniformly at random, in expectation). That is deterministic and
does not depend on row order, which matters for the 0/1 recency rule, where almost every
customer is tied with thousands of others.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from churnguard.baselines import CANDIDATES, MODEL
from churnguard.config import EvaluateParams, FeaturesParams
from churnguard.errors import ConfigError, DataError
from churnguard.feature_defs import PREDICTION_COLUMNS
from churnguard.gate import choose_scorer
from churnguard.value import (
    METHOD as VALUE_METHOD,
)
from churnguard.value import (
    METHOD_LABEL as VALUE_METHOD_LABEL,
)
from churnguard.value import (
    fit_value_prior,
    own_rate_value,
    value_backtest,
    value_if_retained,
)

PREFIX = "p_"
PREFERRED_ORDER = ("model", "model_raw", "logreg", "rfm", "recency_rank", "recency_rule")
REQUIRED_COLUMNS = ("split", *PREDICTION_COLUMNS)
TEST_SPLIT = "test"
REALISED = "realised_spend"  # net spend in the label window (the evaluate stage adds it)
VALUE_PLOT = "value_calibration"  # the value backtest's decile table (plots/value_calibration.csv)
VALUE_BASELINE = "own_rate"  # the previous value estimate, shown beside the current one
EPS = 1e-6
DECIMALS = 6
GRID_POINTS = 101
PROFIT_GRID_POINTS = 201
PLOT_FILES = ("roc", "pr", "calibration", "gain", "profit")
RAW_SUFFIX = "_raw"  # "<s>_raw": scorer s before calibration (train writes model/model_raw)
PNG_DIR = "png"  # PNGs sit in <model_dir>/eval/png, next to the plot CSVs in .../plots


# --------------------------------------------------------------------------- helpers


def _arrays(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate a 0/1 label and probabilities in [0, 1] of the same, non-zero length."""
    yy = np.asarray(y, dtype=float).ravel()
    pp = np.asarray(p, dtype=float).ravel()
    if yy.shape != pp.shape:
        raise ValueError(f"y has {yy.size} values but p has {pp.size}")
    if yy.size == 0:
        raise ValueError("no rows to evaluate")
    if not np.isin(yy, (0.0, 1.0)).all():
        raise ValueError("y must be 0/1 without missing values")
    if not np.isfinite(pp).all() or pp.min() < 0.0 or pp.max() > 1.0:
        raise ValueError("p must be probabilities in [0, 1] without missing values")
    return yy.astype(int), pp


def _two_classes(y: np.ndarray) -> bool:
    return 0 < int(y.sum()) < y.size


def _cumulative(p: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knots of k ↦ expected Σ w over the top-k by p, ties spread evenly within their block.

    Returns (k at block boundaries, cumulative w there); the curve is linear between knots,
    so ``np.interp(k, *knots)`` gives the expected sum for any (even fractional) k.
    """
    order = np.argsort(-p, kind="stable")
    ps, ws = p[order], w[order]
    cum = np.concatenate([[0.0], np.cumsum(ws, dtype=float)])
    starts = np.flatnonzero(np.diff(ps) != 0) + 1
    bounds = np.concatenate([[0], starts, [p.size]])
    return bounds.astype(float), cum[bounds]


def _captured(p: np.ndarray, w: np.ndarray, k: Any) -> np.ndarray:
    kx, cx = _cumulative(p, w)
    return np.interp(np.asarray(k, dtype=float), kx, cx)


def _bin_index(p: np.ndarray, bins: int) -> np.ndarray:
    return np.clip(np.floor(p * bins).astype(int), 0, bins - 1)


def _clean(obj: Any) -> Any:
    """JSON-ready copy: floats rounded, NaN/inf → None, numpy scalars → Python, -0.0 → 0.0."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        x = float(obj)
        return None if not math.isfinite(x) else round(x, DECIMALS) + 0.0
    return obj


# --------------------------------------------------------------------------- metrics


def top_k_size(n: int, share: float = 0.1) -> int:
    """List size for the top ``share`` of ``n`` customers (at least 1; 10 % of 25 → 3)."""
    return max(1, math.ceil(round(n * share, 9)))


def expected_calibration_error(y: Any, p: Any, bins: int = 10) -> float:
    """Σ_b (n_b / n) × |mean p_b − churn rate_b| over ``bins`` equal-width bins of p."""
    yy, pp = _arrays(y, p)
    idx = _bin_index(pp, bins)
    count = np.bincount(idx, minlength=bins).astype(float)
    gap = np.abs(
        np.bincount(idx, weights=pp, minlength=bins) - np.bincount(idx, weights=yy, minlength=bins)
    )
    return float(gap.sum() / count.sum())


def lift_at(y: Any, p: Any, share: float = 0.1) -> float | None:
    """Churn rate in the top ``share`` by p divided by the base rate (None without churners)."""
    yy, pp = _arrays(y, p)
    base = yy.mean()
    if base == 0:
        return None
    k = top_k_size(yy.size, share)
    return float(_captured(pp, yy.astype(float), k) / k / base)


def binary_metrics(y: Any, p: Any, bins: int = 10) -> dict[str, float | int | None]:
    """Ranking, calibration and lift metrics of churn probabilities ``p`` against 0/1 ``y``.

    roc_auc and pr_auc are None when ``y`` has a single class; lift_top10 is None without
    churners. log_loss clips p to [1e-6, 1 − 1e-6].
    """
    yy, pp = _arrays(y, p)
    two = _two_classes(yy)
    clipped = np.clip(pp, EPS, 1 - EPS)
    log_loss = -np.mean(yy * np.log(clipped) + (1 - yy) * np.log(1 - clipped))
    return {
        "roc_auc": float(roc_auc_score(yy, pp)) if two else None,
        "pr_auc": float(average_precision_score(yy, pp)) if two else None,
        "brier": float(np.mean((pp - yy) ** 2)),
        "log_loss": float(log_loss),
        "ece": expected_calibration_error(yy, pp, bins),
        "lift_top10": lift_at(yy, pp, 0.1),
        "base_rate": float(yy.mean()),
        "n": int(yy.size),
        "positives": int(yy.sum()),
    }


def precision_at_k(y: Any, p: Any, ks: Iterable[int]) -> dict[int, float]:
    """Churn rate among the top-k by p, for each requested k (k capped at n; key as asked)."""
    yy, pp = _arrays(y, p)
    out: dict[int, float] = {}
    for k in ks:
        if k < 1:
            raise ValueError(f"list size must be at least 1, got {k}")
        kk = min(int(k), yy.size)
        out[int(k)] = float(_captured(pp, yy.astype(float), kk) / kk)
    return out


def _profit(
    y: np.ndarray, p: np.ndarray, value: np.ndarray, cost: float, save_rate: float, k: Any
) -> np.ndarray:
    k = np.asarray(k, dtype=float)
    return save_rate * _captured(p, y * value, k) - k * cost


def _profit_inputs(
    y: Any, p: Any, value: Any, cost: float, save_rate: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy, pp = _arrays(y, p)
    vv = np.asarray(value, dtype=float).ravel()
    if vv.shape != yy.shape:
        raise ValueError(f"value has {vv.size} entries but y has {yy.size}")
    if not np.isfinite(vv).all():
        raise ValueError("value must be finite (no missing values)")
    if cost < 0 or not 0 <= save_rate <= 1:
        raise ValueError("cost must be ≥ 0 and save_rate in [0, 1]")
    return yy.astype(float), pp, vv


def best_profit(
    y: Any, p: Any, value: Any, cost: float, save_rate: float
) -> dict[str, float | int]:
    """The most profitable list size: contact the top-k by p (smallest k among equal best)."""
    yy, pp, vv = _profit_inputs(y, p, value, cost, save_rate)
    ks = np.arange(yy.size + 1)
    profit = _profit(yy, pp, vv, cost, save_rate, ks)
    best = int(np.argmax(profit))
    return {"k": best, "profit": float(profit[best]), "share_contacted": best / yy.size}


def profit_curve(
    y: Any,
    p: Any,
    value: Any,
    cost: float,
    save_rate: float,
    grid_points: int | None = None,
) -> pd.DataFrame:
    """Profit of contacting the top-k by p: Σ_top-k y·value·save_rate − k·cost.

    k runs over 0..n, or over about ``grid_points`` evenly spaced sizes plus the best one.
    Inside a block of tied scores the profit is the expectation over tie order.
    """
    yy, pp, vv = _profit_inputs(y, p, value, cost, save_rate)
    n = yy.size
    if grid_points is None or grid_points > n:
        ks = np.arange(n + 1)
    else:
        best = best_profit(yy, pp, vv, cost, save_rate)["k"]
        ks = np.union1d(_int_grid(n, grid_points), [best])
    return pd.DataFrame({"k": ks.astype(int), "profit": _profit(yy, pp, vv, cost, save_rate, ks)})


def _int_grid(n: int, points: int) -> np.ndarray:
    return np.unique(np.round(np.linspace(0, n, max(points, 2))).astype(int))


# --------------------------------------------------------------------------- slices


def tenure_band_labels(bands_days: Sequence[int]) -> list[str]:
    """Labels for tenure bands: [90, 365] → ['<90d', '90–365d', '≥365d']."""
    bands = list(bands_days)
    if any(b <= a for a, b in zip(bands, bands[1:], strict=False)):
        raise ConfigError(
            f"evaluate.tenure_bands_days must be strictly increasing, got {bands} "
            "(e.g. [90, 365, 730])"
        )
    if not bands:
        return ["all"]
    labels = [f"<{bands[0]}d"]
    labels += [f"{a}–{b}d" for a, b in zip(bands, bands[1:], strict=False)]
    labels.append(f"≥{bands[-1]}d")
    return labels


def tenure_band(tenure_days: Any, bands_days: Sequence[int]) -> np.ndarray:
    """Band label per customer (``unknown`` where tenure is missing)."""
    labels = np.asarray(tenure_band_labels(bands_days), dtype=object)
    tenure = pd.to_numeric(pd.Series(tenure_days), errors="coerce").to_numpy(
        dtype=float, na_value=np.nan
    )
    idx = np.searchsorted(np.asarray(list(bands_days), dtype=float), tenure, side="right")
    out = labels[np.clip(idx, 0, len(labels) - 1)]
    out[np.isnan(tenure)] = "unknown"
    return out


def slice_metrics(
    y: Any,
    scores: Mapping[str, Any],
    groups: Any,
    order: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per slice: n, base_rate and, per scorer, roc_auc / pr_auc / brier.

    AUCs are None in a single-class slice; slices listed in ``order`` but empty report
    n = 0 and None elsewhere (so metric keys stay stable across runs).
    """
    yy = np.asarray(y, dtype=float).ravel()
    labels = pd.Series(groups).astype(object).where(pd.Series(groups).notna(), "unknown")
    labels = labels.astype(str).to_numpy()
    if labels.size != yy.size:
        raise ValueError(f"groups has {labels.size} entries but y has {yy.size}")
    names = list(order) if order is not None else []
    names += sorted(set(labels) - set(names))
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        mask = labels == name
        if not mask.any():
            out[name] = {
                "n": 0,
                "base_rate": None,
                "scorers": {s: {"roc_auc": None, "pr_auc": None, "brier": None} for s in scores},
            }
            continue
        ys = yy[mask]
        per: dict[str, Any] = {}
        for scorer, p in scores.items():
            m = binary_metrics(ys, np.asarray(p, dtype=float)[mask])
            per[scorer] = {k: m[k] for k in ("roc_auc", "pr_auc", "brier")}
        out[name] = {"n": int(mask.sum()), "base_rate": float(ys.mean()), "scorers": per}
    return out


# --------------------------------------------------------------------------- plot tables


def _grid() -> np.ndarray:
    return np.arange(GRID_POINTS) / (GRID_POINTS - 1)


def roc_table(y: Any, scores: Mapping[str, Any]) -> pd.DataFrame:
    """TPR of each scorer on a 101-point FPR grid (upper value at a vertical step)."""
    grid = _grid()
    out = pd.DataFrame({"fpr": grid})
    for name, p in scores.items():
        yy, pp = _arrays(y, p)
        if not _two_classes(yy):
            out[f"tpr_{name}"] = np.nan
            continue
        fpr, tpr, _ = roc_curve(yy, pp, drop_intermediate=False)
        ux, first = np.unique(fpr, return_index=True)
        lo = tpr[first]  # lowest tpr reached at each fpr (curve enters)
        hi = np.maximum.reduceat(tpr, first)  # highest tpr at that fpr (curve leaves)
        i = np.clip(np.searchsorted(ux, grid + 1e-12, side="right") - 1, 0, ux.size - 1)
        j = np.minimum(i + 1, ux.size - 1)
        on_knot = np.abs(grid - ux[i]) <= 1e-12
        span = np.where(j > i, ux[j] - ux[i], 1.0)
        t = np.clip((grid - ux[i]) / span, 0.0, 1.0)
        out[f"tpr_{name}"] = np.where(on_knot, hi[i], hi[i] + t * (lo[j] - hi[i]))
    return out


def pr_table(y: Any, scores: Mapping[str, Any]) -> pd.DataFrame:
    """Interpolated precision (max precision at recall ≥ r) on a 101-point recall grid."""
    grid = _grid()
    out = pd.DataFrame({"recall": grid})
    for name, p in scores.items():
        yy, pp = _arrays(y, p)
        if not _two_classes(yy):
            out[f"precision_{name}"] = np.nan
            continue
        precision, recall, _ = precision_recall_curve(yy, pp)
        precision, recall = precision[:-1], recall[:-1]  # drop the artificial (0, 1) end point
        order = np.argsort(recall, kind="stable")
        rs, ps = recall[order], precision[order]
        suffix_max = np.maximum.accumulate(ps[::-1])[::-1]
        idx = np.searchsorted(rs, grid - 1e-12, side="left")
        vals = np.where(idx < rs.size, suffix_max[np.minimum(idx, rs.size - 1)], np.nan)
        out[f"precision_{name}"] = vals
    return out


def calibration_table(y: Any, scores: Mapping[str, Any], bins: int = 10) -> pd.DataFrame:
    """Observed churn rate per equal-width bin of predicted p (NaN where the bin is empty)."""
    mids = (np.arange(bins) + 0.5) / bins
    out = pd.DataFrame({"bin_mid": mids, "perfect": mids})
    for name, p in scores.items():
        yy, pp = _arrays(y, p)
        idx = _bin_index(pp, bins)
        count = np.bincount(idx, minlength=bins).astype(float)
        churned = np.bincount(idx, weights=yy.astype(float), minlength=bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"observed_{name}"] = np.where(count > 0, churned / count, np.nan)
    return out


def gain_table(y: Any, scores: Mapping[str, Any]) -> pd.DataFrame:
    """Share of churners captured and lift when contacting the top share of customers."""
    share = _grid()
    out = pd.DataFrame({"share_contacted": share})
    for name, p in scores.items():
        yy, pp = _arrays(y, p)
        n, positives = yy.size, yy.sum()
        if positives == 0:
            out[f"gain_{name}"] = np.nan
            out[f"lift_{name}"] = np.nan
            continue
        k = np.maximum(share * n, 1.0)
        captured = _captured(pp, yy.astype(float), k)
        out[f"gain_{name}"] = _captured(pp, yy.astype(float), share * n) / positives
        out[f"lift_{name}"] = (captured / k) / (positives / n)
    return out


def profit_table(
    y: Any, scores: Mapping[str, Any], value: Any, cost: float, save_rate: float
) -> pd.DataFrame:
    """Profit per list size on a shared grid (~200 sizes plus every scorer's best size)."""
    yy = np.asarray(y, dtype=float).ravel()
    n = yy.size
    ks = _int_grid(n, PROFIT_GRID_POINTS)
    for p in scores.values():
        ks = np.union1d(ks, [best_profit(yy, p, value, cost, save_rate)["k"]])
    out = pd.DataFrame({"k": ks.astype(int), "share_contacted": ks / n})
    for name, p in scores.items():
        yy2, pp, vv = _profit_inputs(yy, p, value, cost, save_rate)
        out[f"profit_{name}"] = _profit(yy2, pp, vv, cost, save_rate, ks)
    return out


@dataclass(frozen=True)
class PlotSpec:
    """One DVC plot: a table, its x column, y columns, titles."""

    id: str
    file: str
    x: str
    y: tuple[str, ...]
    title: str
    x_label: str
    y_label: str
    template: str = "linear"

    def to_dvc(self, folder: str) -> dict[str, dict[str, Any]]:
        """Entry for the top-level ``plots:`` list of ``dvc.yaml``."""
        return {
            self.id: {
                "template": self.template,
                "x": self.x,
                "y": {f"{folder.rstrip('/')}/{self.file}": list(self.y)},
                "title": self.title,
                "x_label": self.x_label,
                "y_label": self.y_label,
            }
        }


def ranking_scorers(scorers: Sequence[str]) -> list[str]:
    """Scorers for the ranking plots: ``<s>_raw`` is left out when ``<s>`` is also there.

    A monotone calibrator keeps the order of the scores, so the uncalibrated twin has the
    same ROC, precision-recall, gain, lift and profit curves as the calibrated scorer; it
    differs only on the calibration plot, which keeps every scorer.
    """
    present = set(scorers)
    return [n for n in scorers if not (n.endswith(RAW_SUFFIX) and n[: -len(RAW_SUFFIX)] in present)]


def plot_specs(scorers: Sequence[str] = PREFERRED_ORDER) -> list[PlotSpec]:
    """Definitions of the plots (files relative to ``<model_dir>/eval/plots``).

    The ranking plots leave out uncalibrated duplicates (:func:`ranking_scorers`); the
    calibration plot shows every scorer. The CSV tables keep a column for every scorer.
    """
    s = ranking_scorers(scorers)
    every = list(scorers)
    return [
        PlotSpec(
            "ROC", "roc.csv", "fpr", tuple(f"tpr_{n}" for n in s),
            "ROC on the test cutoff", "False positive rate", "True positive rate",
        ),
        PlotSpec(
            "Precision-recall", "pr.csv", "recall", tuple(f"precision_{n}" for n in s),
            "Precision-recall on the test cutoff", "Recall (share of churners found)",
            "Precision (interpolated)",
        ),
        PlotSpec(
            "Calibration", "calibration.csv", "bin_mid",
            ("perfect", *(f"observed_{n}" for n in every)),
            "Calibration on the test cutoff", "Predicted churn probability (bin mid)",
            "Observed churn rate",
        ),
        PlotSpec(
            "Cumulative gain", "gain.csv", "share_contacted", tuple(f"gain_{n}" for n in s),
            "Cumulative gain on the test cutoff", "Share of customers contacted",
            "Share of churners reached",
        ),
        PlotSpec(
            "Lift", "gain.csv", "share_contacted", tuple(f"lift_{n}" for n in s),
            "Lift on the test cutoff", "Share of customers contacted", "Lift over base rate",
        ),
        PlotSpec(
            "Profit", "profit.csv", "k", tuple(f"profit_{n}" for n in s),
            "Retention profit by list size (test cutoff)", "Customers contacted (top-k by risk)",
            "Profit (value saved − contact cost)",
        ),
        PlotSpec(
            "Value backtest", f"{VALUE_PLOT}.csv", "decile",
            ("perfect", f"ratio_{VALUE_METHOD}", f"ratio_{VALUE_BASELINE}"),
            "Value if retained: predicted ÷ realised spend of retained customers (test cutoff)",
            "Predicted-value decile (1 = lowest)", "Predicted ÷ realised (1 = right)",
        ),
    ]  # fmt: skip


def dvc_plots(
    specs: Sequence[PlotSpec], folder: str = "models/eval/plots", images: str | None = None
) -> list[dict | str]:
    """The ``plots:`` list for ``dvc.yaml`` (paths relative to the project root).

    The linear plots from ``specs``, then the PNG folder as a DVC image plot (a bare path;
    DVC shows every image in it). ``images`` defaults to the ``png`` folder next to
    ``folder``, where the evaluate stage writes the figures.
    """
    if images is None:
        images = (Path(folder).parent / PNG_DIR).as_posix()
    return [*(spec.to_dvc(folder) for spec in specs), images.rstrip("/")]


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate_predictions` computes: the metrics and the plot tables."""

    metrics: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    scorers: tuple[str, ...] = ()


def scorer_names(columns: Iterable[str]) -> list[str]:
    """Scorers from ``p_*`` columns: the model first, then the usual order, then the rest."""
    found = [c[len(PREFIX) :] for c in map(str, columns) if c.startswith(PREFIX)]
    known = [s for s in PREFERRED_ORDER if s in found]
    return known + [s for s in found if s not in known]


def _check_predictions(frame: pd.DataFrame) -> list[str]:
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"predictions lack column(s) {missing}; re-run the train stage "
            f"(columns present: {sorted(map(str, frame.columns))})"
        )
    scorers = scorer_names(frame.columns)
    if not scorers:
        raise DataError("predictions have no p_<scorer> probability column; re-run train")
    return scorers


def value_check(
    test: pd.DataFrame, horizon_days: int, prior: Any
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The value backtest on the test cutoff: value if retained over the label window
    against what each customer retained in it (``churned`` = 0) really spent
    (``realised_spend``), for the current estimate and the previous one (own spend rate).
    Without ``realised_spend`` it says why it was not checked."""
    columns = ["decile", "perfect"]
    for name in (VALUE_METHOD, VALUE_BASELINE):
        columns += [f"ratio_{name}", f"predicted_{name}", f"realised_{name}", f"customers_{name}"]
    if REALISED not in test.columns:
        return {
            "checked": False,
            "reason": "evaluate.transactions is not set: no realised spend to compare with",
        }, pd.DataFrame(columns=columns)
    retained = test["churned"].to_numpy() == 0
    realised = test[REALISED].to_numpy(dtype=float)
    predicted = {
        VALUE_METHOD: value_if_retained(test, horizon_days, horizon_days, prior),
        VALUE_BASELINE: own_rate_value(test, horizon_days),
    }
    out: dict[str, Any] = {"checked": True, "window_days": horizon_days}
    table = pd.DataFrame({"decile": np.arange(1, 11), "perfect": 1.0})
    for name, values in predicted.items():
        summary, deciles = value_backtest(values, realised, retained, test["customer_id"])
        out[name] = summary
        d = deciles.set_index("decile")
        table[f"ratio_{name}"] = table["decile"].map(d["ratio"]).astype(float)
        table[f"predicted_{name}"] = table["decile"].map(d["predicted_mean"]).astype(float)
        table[f"realised_{name}"] = table["decile"].map(d["realised_mean"]).astype(float)
        table[f"customers_{name}"] = table["decile"].map(d["customers"]).astype("Int64")
    return out, table[columns]


def evaluate_predictions(
    frame: pd.DataFrame, params: EvaluateParams, horizon_days: int | None = None
) -> Evaluation:
    """Metrics and plot tables for every ``p_*`` scorer on the ``test`` rows (no I/O).

    ``horizon_days`` is the label horizon the model was trained for (value if retained is
    conditioned on a purchase within it; default ``features.horizon_days``'s default)."""
    scorers = _check_predictions(frame)
    test = frame.loc[frame["split"].astype(str) == TEST_SPLIT]
    if test.empty:
        raise DataError(
            f"predictions have no rows with split == '{TEST_SPLIT}' "
            f"(splits present: {sorted(frame['split'].astype(str).unique())})"
        )
    y = pd.to_numeric(test["churned"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    if not np.isin(y, (0.0, 1.0)).all():
        raise DataError("test rows need a 0/1 'churned' label without missing values")
    scores: dict[str, np.ndarray] = {}
    for s in scorers:
        p = pd.to_numeric(test[PREFIX + s], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
            raise DataError(f"column '{PREFIX + s}' must hold probabilities in [0, 1], no gaps")
        scores[s] = p
    horizon = horizon_days or FeaturesParams().horizon_days
    prior = fit_value_prior(test)
    value = value_if_retained(test, params.value_horizon_days, horizon, prior)
    value = np.nan_to_num(value.to_numpy(dtype=float), nan=0.0)
    backtest, value_table = value_check(test, horizon, prior)
    cost, rate, bins = params.contact_cost, params.save_rate, params.calibration_bins

    per_scorer: dict[str, Any] = {}
    for s, p in scores.items():
        m: dict[str, Any] = binary_metrics(y, p, bins)
        m["precision_at"] = {str(k): v for k, v in precision_at_k(y, p, params.list_sizes).items()}
        m["best_profit"] = best_profit(y, p, value, cost, rate)
        per_scorer[s] = m

    calibration: dict[str, Any] = {}
    for s in scorers:
        if f"{s}_raw" in scores:
            for variant in (f"{s}_raw", s):
                calibration[f"{variant}_brier"] = per_scorer[variant]["brier"]
                calibration[f"{variant}_ece"] = per_scorer[variant]["ece"]

    cutoffs = sorted({str(pd.Timestamp(c).date()) for c in test["cutoff_date"].dropna()})
    segments = test["rfm_segment"]
    bands = tenure_band(test["tenure_days"], params.tenure_bands_days)
    metrics = {
        "test_cutoff": ", ".join(cutoffs),
        "n_test": int(y.size),
        "base_rate": float(y.mean()),
        "scorers": per_scorer,
        "slices": {
            "rfm_segment": slice_metrics(y, scores, segments.to_numpy(dtype=object)),
            "tenure_band": slice_metrics(
                y, scores, bands, order=tenure_band_labels(params.tenure_bands_days)
            ),
        },
        "calibration": calibration,
        "choice": _choice(y, scores, params),
        "value": {
            "method": VALUE_METHOD,
            "description": VALUE_METHOD_LABEL,
            "value_horizon_days": params.value_horizon_days,
            "churn_horizon_days": horizon,
            "prior": prior.to_dict(),
        },
        "value_backtest": backtest,
    }
    tables = {
        "roc": roc_table(y, scores),
        "pr": pr_table(y, scores),
        "calibration": calibration_table(y, scores, bins),
        "gain": gain_table(y, scores),
        "profit": profit_table(y, scores, value, cost, rate),
        VALUE_PLOT: value_table,
    }
    return Evaluation(metrics=_clean(metrics), tables=tables, scorers=tuple(scorers))


def _choice(
    y: np.ndarray, scores: Mapping[str, np.ndarray], params: EvaluateParams
) -> dict[str, Any]:
    """The gate's first question: which of this run's scorers ranks the lists."""
    candidates = {k: v for k, v in scores.items() if k in CANDIDATES}
    try:
        return choose_scorer(
            y, candidates, params.primary_metric, params.gate_resamples, params.gate_confidence
        ).to_dict()
    except ValueError as exc:  # one class on the test cutoff, or no baseline scorer
        return {"scorer": None, "primary_metric": params.primary_metric, "reasons": [str(exc)]}


HEADLINE_KEYS = ("roc_auc", "pr_auc", "brier", "lift_top10")


def headline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The comparison that matters, small enough for ``dvc exp show``: the scorer chosen,
    the model and the best baseline side by side, the model's lead and its interval."""
    choice = metrics.get("choice") or {}
    scorers = metrics["scorers"]

    def row(name: str | None) -> dict[str, Any] | None:
        if name is None or name not in scorers:
            return None
        m = scorers[name]
        return {
            "scorer": name,
            **{k: m.get(k) for k in HEADLINE_KEYS},
            "list_profit": (m.get("best_profit") or {}).get("profit"),
        }

    lo, hi = (choice.get("lead_ci") or [None, None])[:2]
    backtest = metrics.get("value_backtest") or {}
    return {
        "primary_metric": choice.get("primary_metric"),
        "chosen": choice.get("scorer"),
        "model_lead": choice.get("lead"),
        "model_lead_lo": lo,
        "model_lead_hi": hi,
        "model": row(MODEL),
        "best_baseline": row(choice.get("best_baseline")),
        "decision": _short_decision(choice),
        "test_cutoff": metrics.get("test_cutoff"),
        # value if retained over the label window ÷ what retained customers really spent
        "value_total_ratio": (backtest.get(VALUE_METHOD) or {}).get("total_ratio"),
    }


def _short_decision(choice: Mapping[str, Any]) -> str:
    """One table cell: who ranks the lists and the interval that decided it."""
    scorer, lo_hi = choice.get("scorer"), choice.get("lead_ci")
    if scorer is None or not lo_hi:
        return "no decision: " + " ".join(choice.get("reasons") or [])
    ci = f"lead CI [{lo_hi[0]:+.4f}, {lo_hi[1]:+.4f}]"
    if scorer == MODEL:
        return f"model (beats {choice.get('best_baseline_label')}: {ci})"
    return f"baseline {choice.get('label')} (model {ci} includes 0)"
