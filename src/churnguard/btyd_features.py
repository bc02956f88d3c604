"""BTYD features: a modified BG/NBD fitted at each cutoff, its closed forms as model features.

Optional (``features.btyd_features``). At every cutoff c of a snapshot the population
parameters (r, alpha, a, b) of the MBG/NBD model (Batislam, Denizel & Filiztekin 2007:
BG/NBD in which a customer may also drop out right after the first purchase, so one-time
buyers get a P(alive) below 1) are fitted by maximum likelihood on every customer of that
snapshot — the customers with a purchase on or before c, lapsed ones included — from
(x repeat purchase days, t_x first-to-last purchase, T tenure at c), in weeks. Everything
comes from the snapshot's own rows, which see only transactions dated on or before c, so
the features stay point-in-time. The fit is deterministic (L-BFGS-B on log-parameters from
a fixed start; no sampling, no pymc) and takes well under a second per cutoff.

The features, per customer at c:

- ``btyd_p_alive``: P(alive at c | x, t_x, T)
  = 1 / (1 + a/(b + x) · ((alpha + T)/(alpha + t_x))^(r + x));
- ``btyd_rate_30d``: expected purchase days per 30 days if alive, the NBD-shrunk rate
  30 · (r + x)/(alpha + T) (in days);
- ``btyd_no_purchase_90d``: P(no purchase day in (c, c + 90 days])
  = (1 − P(alive)) + P(alive) · ((alpha + T)/(alpha + T + t))^(r + x).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import gammaln

from churnguard.btyd import btyd_summary

WEEK = 7.0
NAMES = ("btyd_p_alive", "btyd_rate_30d", "btyd_no_purchase_90d")
PARAMS = ("r", "alpha", "a", "b")
START = np.log([0.5, 5.0, 1.0, 3.0])  # weeks; a fixed start keeps the fit deterministic
LOG_BOUNDS = [(-9.0, 9.0)] * 4


def summary(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x repeat purchase days, t_x, T) in weeks from snapshot columns (the baselines'
    :func:`churnguard.btyd.btyd_summary`, with x and t_x floored at 0)."""
    s = btyd_summary(frame, WEEK)
    x = s["frequency"].to_numpy(dtype=float).clip(min=0.0)
    return x, s["recency"].to_numpy(dtype=float).clip(min=0.0), s["T"].to_numpy(dtype=float)


def neg_log_likelihood(
    log_params: np.ndarray,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    weight: np.ndarray | None = None,
) -> float:
    """MBG/NBD negative mean log-likelihood (per customer; ``weight`` = customers per
    distinct (x, t_x, T)) at exp(log_params)."""
    r, alpha, a, b = np.exp(log_params)
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x + 1) - gammaln(b) - gammaln(a + b + x + 1)
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return float(-np.average(a1 + a2 + a3 + np.logaddexp(0.0, a4), weights=weight))


def fit_weighted(
    neg_ll: Callable[..., float],
    start: np.ndarray,
    bounds: list[tuple[float, float]],
    names: tuple[str, ...],
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
) -> dict[str, float]:
    """Maximum likelihood over log-parameters from a fixed start (deterministic): ``neg_ll``
    (log-params, x, t_x, T, weight) is evaluated once per distinct (x, t_x, T) triple,
    weighted by how many customers share it (whole days: few distinct triples)."""
    triples, weight = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
    res = minimize(
        neg_ll,
        start,
        args=(triples[:, 0], triples[:, 1], triples[:, 2], weight.astype(float)),
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 500},
    )
    return dict(zip(names, np.exp(res.x).tolist(), strict=True))


def fit(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> dict[str, float]:
    """Maximum-likelihood MBG/NBD (r, alpha, a, b) in weeks; deterministic."""
    return fit_weighted(neg_log_likelihood, START, LOG_BOUNDS, PARAMS, x, t_x, T)


def closed_forms(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, p: dict[str, float]
) -> dict[str, np.ndarray]:
    """The three features for customers (x, t_x, T) under parameters ``p`` (weeks)."""
    r, alpha, a, b = (p[k] for k in PARAMS)
    log_ratio = np.log(a) - np.log(b + x) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    p_alive = 1.0 / (1.0 + np.exp(np.minimum(log_ratio, 700.0)))
    stay = np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + 90.0 / WEEK)))
    return {
        "btyd_p_alive": p_alive,
        "btyd_rate_30d": (30.0 / WEEK) * (r + x) / (alpha + T),
        "btyd_no_purchase_90d": (1.0 - p_alive) + p_alive * stay,
    }


def add_btyd_features(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (snapshot rows, any number of cutoffs) with the BTYD columns appended, the
    model fitted separately on each cutoff's rows. Row order and other columns unchanged."""
    out = frame.copy()
    values = {name: np.full(len(out), np.nan) for name in NAMES}
    if len(out):
        cut = pd.to_datetime(out["cutoff_date"]).to_numpy()
        for c in np.unique(cut):
            pos = np.flatnonzero(cut == c)
            x, t_x, T = summary(out.iloc[pos])
            ok = np.isfinite(x) & np.isfinite(t_x) & np.isfinite(T)
            if ok.sum() < 2:
                continue
            x, t_x, T, pos = x[ok], t_x[ok], T[ok], pos[ok]
            for name, v in closed_forms(x, t_x, T, fit(x, t_x, T)).items():
                values[name][pos] = v
    for name in NAMES:
        out[name] = values[name]
    return out
