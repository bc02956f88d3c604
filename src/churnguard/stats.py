"""Bootstrap intervals and paired comparisons of churn scorers (pure numpy, no I/O).

A bootstrap resample of n customers is stored as a row of *counts* (how many times each
customer was drawn), so one matrix of counts drives every scorer and every metric: the
metrics below are the usual ROC-AUC, average precision and Brier score computed with
those counts as weights, vectorised over the rows. Sharing the resamples makes the
differences between two scorers *paired* (same customers in each resample), which is what
makes "is A better than B" answerable on one holdout.

Conventions: ``y`` is 0/1 (1 = churned), scores are "higher = more likely to churn",
ties count one half in ROC-AUC and form one block in average precision (as sklearn).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score, roc_auc_score

MetricName = Literal["roc_auc", "pr_auc", "brier"]
WeightedMetric = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

RESAMPLE_CHUNK = 100  # resamples per count matrix: 100 x n float32 (~9 MB at n = 23,570)


def _groups(sorted_scores: np.ndarray) -> np.ndarray:
    """Start index of every block of tied scores in a sorted array."""
    return np.concatenate([[0], np.flatnonzero(np.diff(sorted_scores) != 0) + 1])


def weighted_roc_auc(score: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ROC-AUC for each row of weights ``w`` (resample counts), ties counted as one half.

    ``w`` is (rows, n); a row of ones gives sklearn's ``roc_auc_score``.
    """
    order = np.argsort(score, kind="stable")
    starts = _groups(score[order])
    yo = y[order].astype(float)
    wo = w[:, order]
    pos = np.add.reduceat(wo * yo, starts, axis=1)
    neg = np.add.reduceat(wo * (1 - yo), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    num = (pos * (below + 0.5 * neg)).sum(axis=1)
    return num / (pos.sum(axis=1) * neg.sum(axis=1))


def weighted_average_precision(score: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average precision (step-wise, as sklearn's ``average_precision_score``) per weight row."""
    order = np.argsort(-score, kind="stable")
    starts = _groups(-score[order])
    yo = y[order].astype(float)
    wo = w[:, order]
    pos = np.add.reduceat(wo * yo, starts, axis=1)
    neg = np.add.reduceat(wo * (1 - yo), starts, axis=1)
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp), where=(tp + fp) > 0)
    return (pos * precision).sum(axis=1) / pos.sum(axis=1)


def weighted_brier(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Brier score (mean squared error of probabilities) per weight row."""
    return (w * (p - y) ** 2).sum(axis=1) / w.sum(axis=1)


WEIGHTED_METRICS: dict[str, WeightedMetric] = {
    "roc_auc": weighted_roc_auc,
    "pr_auc": weighted_average_precision,
    "brier": weighted_brier,
}
HIGHER_IS_BETTER: dict[str, bool] = {"roc_auc": True, "pr_auc": True, "brier": False}


def point_metric(metric: MetricName, score: np.ndarray, y: np.ndarray) -> float:
    """The metric on the sample itself (sklearn for the rankings, the mean for Brier)."""
    if metric == "roc_auc":
        return float(roc_auc_score(y, score))
    if metric == "pr_auc":
        return float(average_precision_score(y, score))
    if metric == "brier":
        return float(np.mean((score - y) ** 2))
    raise ValueError(f"unknown metric {metric!r}; expected one of {sorted(WEIGHTED_METRICS)}")


def resample_counts(
    n: int, n_boot: int, seed: int, chunk: int = RESAMPLE_CHUNK
) -> list[np.ndarray]:
    """``n_boot`` bootstrap resamples of ``n`` rows as count matrices (chunks of ``chunk`` rows).

    Chunk ``j`` uses ``default_rng([seed, j])``, so the resamples depend only on
    (n, n_boot, seed, chunk) and memory stays at ``chunk × n`` counts at a time.
    """
    if n < 1 or n_boot < 1 or chunk < 1:
        raise ValueError(f"need n, n_boot and chunk >= 1, got {n}, {n_boot}, {chunk}")
    out = []
    for j, start in enumerate(range(0, n_boot, chunk)):
        rows = min(chunk, n_boot - start)
        rng = np.random.default_rng([seed, j])
        idx = rng.integers(0, n, size=(rows, n)) + (np.arange(rows) * n)[:, None]
        out.append(np.bincount(idx.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float32))
    return out


def bootstrap_metric(
    metric: MetricName | WeightedMetric,
    score: np.ndarray,
    y: np.ndarray,
    counts: Sequence[np.ndarray],
) -> np.ndarray:
    """The metric on every resample in ``counts`` (one value per resample, in order)."""
    fn = WEIGHTED_METRICS[metric] if isinstance(metric, str) else metric
    return np.concatenate([fn(score, y, c.astype(np.float64)) for c in counts])


def percentile_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap values (2.5 and 97.5 percentiles at 95%)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    tail = round(50.0 * (1.0 - level), 10)  # 2.5 exactly, not 2.5000000000000022
    lo, hi = np.percentile(values, [tail, 100.0 - tail])
    return float(lo), float(hi)


def rank01(score: np.ndarray) -> np.ndarray:
    """A monotone map of any score into (0, 1] (ties kept), for metrics that want probabilities."""
    return rankdata(score, method="average") / score.size


def paired_bootstrap_ci(
    y: np.ndarray,
    p_a: np.ndarray,
    p_b: np.ndarray,
    metric: MetricName,
    n_boot: int,
    seed: int,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """``metric(a) − metric(b)`` on the sample and its paired-bootstrap percentile interval.

    Both scorers are evaluated on the same resamples, so the interval is for the
    difference itself, not two overlapping marginal intervals. Returns (diff, lo, hi).
    """
    y = np.asarray(y)
    p_a, p_b = np.asarray(p_a, dtype=float), np.asarray(p_b, dtype=float)
    if not (y.shape == p_a.shape == p_b.shape) or y.ndim != 1:
        raise ValueError(
            f"y, p_a and p_b must be 1-D of one length: {y.shape}, {p_a.shape}, {p_b.shape}"
        )
    counts = resample_counts(y.size, n_boot, seed)
    diff = bootstrap_metric(metric, p_a, y, counts) - bootstrap_metric(metric, p_b, y, counts)
    lo, hi = percentile_ci(diff, level)
    return point_metric(metric, p_a, y) - point_metric(metric, p_b, y), lo, hi
