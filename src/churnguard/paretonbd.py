"""Pareto/NBD by maximum likelihood, and its P(no purchase) for stacking (``train.stack_btyd``).

Deterministic and pure (no pymc, no sampling): the population parameters (r, alpha, s,
beta) are fitted by L-BFGS-B on log-parameters from a fixed start on the customers of one
snapshot, from (x repeat purchase days, t_x first-to-last purchase, T tenure at the
cutoff) in weeks — only the history up to that cutoff; no labels.

The individual log-likelihood is Fader & Hardie's (2005, "A note on deriving the
Pareto/NBD model and related expressions", eq. 22)::

    L = Γ(r+x) α^r β^s / Γ(r) · [ 1 / ((α+T)^(r+x) (β+T)^s) + s/(r+s+x) · A0 ]

with A0 a difference of two Gauss hypergeometric terms (at t_x and at T). Having seen
(x, t_x) by T, no purchase in (T, T + t] means seeing the same (x, t_x) by T + t, so::

    P(no purchase in (T, T + t] | x, t_x, T) = L(x, t_x, T + t) / L(x, t_x, T)

exactly (the heterogeneity integrals are the same on both sides). A chain step's snapshot
at c + k·h (built from the lines up to c) has T grown by k·h and the same (x, t_x), so the
same formula gives the chain rule's factor P(none in step k | none before it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import gammaln, hyp2f1

from churnguard.btyd_features import fit_weighted, summary

WEEK = 7.0
PARAMS = ("r", "alpha", "s", "beta")
START = np.log([0.5, 5.0, 0.5, 5.0])  # weeks; a fixed start keeps the fit deterministic
LOG_BOUNDS = [(-7.0, 7.0)] * 4
P_CLIP = 1e-6


def _log_a0(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, r: float, alpha: float, s: float, beta: float
) -> np.ndarray:
    """log A0 (−inf when t_x = T: nothing between the last purchase and T).

    Each term 2F1(a, b; a + 1; z) is taken in Euler's form (1 − z)^(1 − b) ·
    2F1(1, a + 1 − b; a + 1; z), which stays finite for many repeat purchases where the
    direct series overflows.
    """
    rsx = r + s + x
    big, b2 = (alpha, s + 1.0) if alpha >= beta else (beta, r + x)
    gap = abs(alpha - beta)

    def term(t: np.ndarray) -> np.ndarray:
        z = gap / (big + t)
        series = np.log(hyp2f1(1.0, rsx + 1.0 - b2, rsx + 1.0, z))
        return (1.0 - b2) * np.log1p(-z) + series - rsx * np.log(big + t)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        at_tx, at_T = term(t_x), term(T)
        out = at_tx + np.log1p(-np.exp(np.minimum(at_T - at_tx, 0.0)))
    return np.where(np.isneginf(at_tx), -np.inf, out)


def log_likelihood(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, p: dict[str, float]
) -> np.ndarray:
    """Per-customer Pareto/NBD log-likelihood of (x, t_x, T) in weeks under ``p``."""
    r, alpha, s, beta = (p[k] for k in PARAMS)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    base = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
    alive_to_T = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    dropped = np.log(s) - np.log(r + s + x) + _log_a0(x, t_x, T, r, alpha, s, beta)
    return base + np.logaddexp(alive_to_T, dropped)


def _neg_mean_ll(
    log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, weight: np.ndarray
) -> float:
    """Negative weighted mean log-likelihood at exp(log_params); 1e10 where it overflows."""
    ll = log_likelihood(x, t_x, T, dict(zip(PARAMS, np.exp(log_params), strict=True)))
    if not np.isfinite(ll).all():
        return 1e10
    return float(-np.average(ll, weights=weight))


def fit(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> dict[str, float]:
    """Maximum-likelihood Pareto/NBD (r, alpha, s, beta) in weeks; deterministic."""
    return fit_weighted(_neg_mean_ll, START, LOG_BOUNDS, PARAMS, x, t_x, T)


def p_alive(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, p: dict[str, float]) -> np.ndarray:
    """P(alive at T | x, t_x, T) = 1 / (1 + s/(r+s+x) · (α+T)^(r+x) (β+T)^s · A0)."""
    r, alpha, s, beta = (p[k] for k in PARAMS)
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    log_ratio = (
        np.log(s)
        - np.log(r + s + x)
        + (r + x) * np.log(alpha + T)
        + s * np.log(beta + T)
        + _log_a0(x, t_x, T, r, alpha, s, beta)
    )
    return 1.0 / (1.0 + np.exp(np.minimum(log_ratio, 700.0)))


def no_purchase(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, t: float, p: dict[str, float]
) -> np.ndarray:
    """P(no purchase in (T, T + t] | x, t_x, T) = L(x, t_x, T + t) / L(x, t_x, T); weeks."""
    T = np.asarray(T, dtype=float)
    ratio = np.exp(log_likelihood(x, t_x, T + t, p) - log_likelihood(x, t_x, T, p))
    return np.clip(ratio, 0.0, 1.0)


def snapshot_no_purchase(frame: pd.DataFrame, days: float, p: dict[str, float]) -> np.ndarray:
    """:func:`no_purchase` over ``days`` for the customers of a snapshot frame (its
    purchase_days, tenure_days, recency_days), clipped to [1e-6, 1 − 1e-6]."""
    x, t_x, T = summary(frame)
    return np.clip(no_purchase(x, t_x, T, days / WEEK, p), P_CLIP, 1 - P_CLIP)


def fit_snapshot(frame: pd.DataFrame) -> dict[str, float]:
    """:func:`fit` on the customers of one snapshot frame."""
    x, t_x, T = summary(frame)
    ok = np.isfinite(x) & np.isfinite(t_x) & np.isfinite(T)
    return fit(x[ok], t_x[ok], T[ok])
