"""Customer value: what keeping a customer is worth over the value horizon.

A customer's own spend per day since their first purchase (the estimate this module used
before, :func:`own_rate_value`) is not believable for short tenures and one-time buyers:
one order of 100 in a customer's first month is "worth" about 1,200 a year, and summed
over a list it put value at risk at about twice the file's revenue. The estimate here
shrinks each customer toward the population by how much history they have, and it is
checked against what customers really spent (``evaluate`` backtests it on the test cutoff;
``benchmarks/value.py`` on more cutoffs and on CDNOW; docs/value.md gives the figures).

**Purchase rate.** Purchase days after the first, ``x = purchase_days - 1``, over the
tenure ``T`` (days since the first purchase) follow a Poisson process whose rate varies
between customers as a gamma distribution (the NBD model; shape ``r``, rate ``alpha`` in
days), fitted by maximum likelihood on the active customers of the snapshot itself
(only their past: no label is used). A customer's expected rate is the posterior mean

    rate = (r + x) / (alpha + T)

the population's rate ``r / alpha`` for a new customer, their own ``x / T`` after a long
history; a one-time buyer of long standing gets a low rate, not zero.

**Spend per purchase day.** Net spend per purchase day, shrunk toward the population's
with one pseudo purchase day (:data:`SPEND_PRIOR_DAYS`, measured: docs/value.md):
``spend = (max(monetary_total, 0) + 1 × population spend) / (purchase_days + 1)``.

**If retained.** The churn label says a customer is retained when they buy within the
churn horizon ``H`` (``features.horizon_days``). A retained customer therefore buys at
least once in ``H``: their expected purchase days in ``H`` are taken given at least one,
exactly under the NBD (:func:`expected_purchase_days`): at least one for a slow buyer,
about ``rate × H`` for a frequent one. The rest of the value horizon ``V``
(``score.value_horizon_days``) adds ``rate × (V - H)``. Then

    value_if_retained = spend × expected purchase days in V given a purchase within H

value_at_risk = p_churn × value_if_retained. Lapsed customers have no p_churn (NaN: the
model is not trained on them) and so no value at risk (NaN): they are already gone, so
none of their value is at risk of a future loss. Their value_if_retained (if won back) is
still what winning them back is worth.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special

MIN_TENURE_DAYS = 30  # the own-rate estimate's floor (kept as the backtest's baseline)
SPEND_PRIOR_DAYS = 1.0  # pseudo purchase days at the population's spend per purchase day
_LOG_BOUNDS = ((math.log(1e-3), math.log(1e3)), (math.log(1e-2), math.log(1e6)))
METHOD = "nbd_shrunk"  # what summary.json and metrics.json name this estimate
METHOD_LABEL = (
    "purchase rate shrunk toward the population's (NBD), spend per purchase day shrunk by "
    "one pseudo day, at least one purchase within the churn horizon"
)
REQUIRED = ("monetary_total", "tenure_days", "purchase_days")


@dataclass(frozen=True)
class ValuePrior:
    """The population a customer's value is shrunk toward (fitted on one snapshot)."""

    rate_shape: float  # NBD gamma shape r
    rate_scale_days: float  # NBD gamma rate alpha, in days
    spend_per_purchase_day: float  # population net spend per purchase day
    customers: int  # active customers fitted on

    @property
    def purchase_days_per_year(self) -> float:
        return self.rate_shape / self.rate_scale_days * 365.0

    def to_dict(self) -> dict[str, Any]:
        out = {k: round(v, 6) if isinstance(v, float) else v for k, v in asdict(self).items()}
        out["purchase_days_per_year"] = round(self.purchase_days_per_year, 6)
        return out


def _active(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["lapsed"] == 0] if "lapsed" in frame.columns else frame


def _check(frame: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"value needs column(s) {missing} (snapshot features)")


def _nbd_neg_loglik(
    theta: np.ndarray, x: np.ndarray, t: np.ndarray, w: np.ndarray
) -> tuple[float, np.ndarray]:
    r, a = np.exp(theta)
    ll = (
        special.gammaln(r + x)
        - special.gammaln(r)
        + r * (np.log(a) - np.log(a + t))
        + special.xlogy(x, t)
        - x * np.log(a + t)
    )
    d_r = special.digamma(r + x) - special.digamma(r) + np.log(a) - np.log(a + t)
    d_a = r / a - (r + x) / (a + t)
    grad = np.array([-(w * d_r).sum() * r, -(w * d_a).sum() * a])
    return float(-(w * ll).sum()), grad


def fit_value_prior(frame: pd.DataFrame) -> ValuePrior:
    """Fit the NBD purchase-rate prior and the population spend per purchase day on the
    active (non-lapsed) customers of ``frame``. Deterministic: the same frame gives the
    same prior. Customers with no tenure yet carry no rate information and are skipped."""
    _check(frame)
    active = _active(frame)
    n = active["purchase_days"].to_numpy(dtype=float)
    spend = active["monetary_total"].to_numpy(dtype=float).clip(min=0)
    pop_spend = float(spend.sum() / n.sum()) if n.sum() > 0 else 0.0
    t_all = active["tenure_days"].to_numpy(dtype=float)
    use = t_all > 0
    if not use.any():  # nobody has history: no repeat purchase is known, rate ~ 0
        return ValuePrior(1e-3, 1e6, pop_spend, int(len(active)))
    pairs, counts = np.unique(
        np.column_stack([np.maximum(n[use] - 1, 0), t_all[use]]), axis=0, return_counts=True
    )
    x, t, w = pairs[:, 0], pairs[:, 1], counts.astype(float)
    start_alpha = float(np.clip(t @ w / max(x @ w, 1e-3), 1e-2, 1e6))
    theta0 = np.array([0.0, math.log(start_alpha)])
    res = optimize.minimize(
        _nbd_neg_loglik, theta0, args=(x, t, w), jac=True, method="L-BFGS-B", bounds=_LOG_BOUNDS
    )
    r, alpha = (float(v) for v in np.exp(res.x))
    return ValuePrior(r, alpha, pop_spend, int(len(active)))


def purchase_rate(frame: pd.DataFrame, prior: ValuePrior) -> np.ndarray:
    """Expected purchase days per day: the NBD posterior mean (r + x) / (alpha + T)."""
    x = np.maximum(frame["purchase_days"].to_numpy(dtype=float) - 1, 0)
    t = np.maximum(frame["tenure_days"].to_numpy(dtype=float), 0)
    return (prior.rate_shape + x) / (prior.rate_scale_days + t)


def spend_per_purchase_day(
    frame: pd.DataFrame, prior: ValuePrior, prior_days: float = SPEND_PRIOR_DAYS
) -> np.ndarray:
    """Net spend per purchase day, shrunk toward the population's by ``prior_days``."""
    spend = frame["monetary_total"].to_numpy(dtype=float).clip(min=0)
    n = np.maximum(frame["purchase_days"].to_numpy(dtype=float), 0)
    return (spend + prior_days * prior.spend_per_purchase_day) / np.maximum(n + prior_days, 1e-9)


def value_if_retained(
    frame: pd.DataFrame,
    value_horizon_days: int,
    horizon_days: int,
    prior: ValuePrior | None = None,
    *,
    spend_prior_days: float = SPEND_PRIOR_DAYS,
    given_retained: bool = True,
    conditioned_after_horizon: bool = False,
) -> pd.Series:
    """Expected spend over the next ``value_horizon_days`` of a customer retained over the
    churn horizon ``horizon_days`` (see the module docstring); ``prior`` is fitted on
    ``frame`` when not given. The keyword options are the variants the measurements that
    chose the defaults compared (benchmarks/value.py): ``spend_prior_days``,
    ``given_retained=False`` (not conditioned on a purchase within the churn horizon) and
    ``conditioned_after_horizon=True`` (the rate after the horizon raised by that
    condition too)."""
    _check(frame)
    if prior is None:
        prior = fit_value_prior(frame)
    days = expected_purchase_days(
        frame,
        prior,
        value_horizon_days,
        horizon_days,
        given_retained=given_retained,
        conditioned_after_horizon=conditioned_after_horizon,
    )
    value = spend_per_purchase_day(frame, prior, spend_prior_days) * days
    return pd.Series(value, index=frame.index, name="value_if_retained").round(2)


def expected_purchase_days(
    frame: pd.DataFrame,
    prior: ValuePrior,
    value_horizon_days: int,
    horizon_days: int,
    *,
    given_retained: bool = True,
    conditioned_after_horizon: bool = False,
) -> np.ndarray:
    """Expected purchase days in the next ``value_horizon_days`` (V) of a customer who buys
    within the next ``horizon_days`` (H). A customer's rate given their history is
    gamma(a = r + x, b = alpha + T) (NBD); with L = log(1 + H / b):

        P = P(a purchase day within H)         = 1 - exp(-a L)
        E[purchase days in min(V, H) | P]      = a min(V, H) / b / P        (exact)
        after H, per day                       = a / b

    A customer with almost no expected repeat (a L → 0) is worth one purchase day within
    H. After H the rate is the one the history gives (a / b): the condition of a purchase
    within H would raise it (``conditioned_after_horizon``: a (1 - exp(-a L) b / (b + H))
    / b / P, exact under the NBD), but the NBD has no dropout, and customers keep leaving
    after H: measured over a year on both data sets, leaving the condition out of the rate
    after H is closer (benchmarks/value.py). ``given_retained=False``: a V / b."""
    a = prior.rate_shape + np.maximum(frame["purchase_days"].to_numpy(dtype=float) - 1, 0)
    b = prior.rate_scale_days + np.maximum(frame["tenure_days"].to_numpy(dtype=float), 0)
    v, h = float(value_horizon_days), float(horizon_days)
    if not given_retained:
        return a / b * v
    big_l = np.log1p(h / b)
    stay = -np.expm1(-a * big_l)  # P(at least one purchase day within H)
    tiny = a * big_l < 1e-12
    with np.errstate(invalid="ignore", divide="ignore"):
        per_stay = np.where(tiny, 1.0 / big_l, a / stay)  # a / P, stable as a L → 0
    first = min(v, h) / b * per_stay
    if conditioned_after_horizon:
        rate_after = (1.0 - np.exp(-a * big_l) * b / (b + h)) / b * per_stay
    else:
        rate_after = a / b
    return first + rate_after * max(v - h, 0.0)


def own_rate_value(frame: pd.DataFrame, value_horizon_days: int) -> pd.Series:
    """The previous estimate, kept as the backtest's baseline: the customer's own net spend
    per day since their first purchase (tenure floored at 30 days) × the horizon."""
    spend = frame["monetary_total"].astype(float).clip(lower=0)
    tenure = frame["tenure_days"].astype(float).clip(lower=MIN_TENURE_DAYS)
    return (spend / tenure * value_horizon_days).round(2).rename("value_if_retained")


def value_at_risk(p_churn: pd.Series | np.ndarray, value: pd.Series) -> pd.Series:
    """P(churn) × value if retained; NaN where p_churn is NaN (lapsed customers)."""
    return (
        (pd.Series(np.asarray(p_churn, dtype=float), index=value.index) * value)
        .round(2)
        .rename("value_at_risk")
    )


# --------------------------------------------------------------------------- the check


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 6) if b and math.isfinite(a / b) else None


def value_backtest(
    predicted: Any, realised: Any, retained: Any, keys: Any = None, bins: int = 10
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Predicted value over a window against what customers retained in it really spent.

    ``predicted`` and ``realised`` are per customer over the same window; only customers
    with ``retained`` true count. Returns the totals (and their ratio, predicted ÷
    realised) and a calibration table by predicted-value decile (equal-count groups in
    order of the prediction, ties broken by ``keys``): customers, mean predicted, mean
    realised and their ratio (predicted ÷ realised, as the total's: 1 is right, above 1
    over-estimates).
    ``mean_abs_log_ratio`` sums the table up (0 is perfect; 0.1 ≈ deciles 10% off).
    """
    p = np.asarray(predicted, dtype=float)
    y = np.asarray(realised, dtype=float)
    keep = np.asarray(retained, dtype=bool)
    order_keys = np.asarray(keys if keys is not None else np.arange(p.size), dtype=object)
    if not (p.shape == y.shape == keep.shape == order_keys.shape):
        raise ValueError("predicted, realised, retained and keys need the same length")
    p, y, order_keys = p[keep], y[keep], order_keys[keep]
    order = np.lexsort((order_keys.astype(str), p))
    rows = []
    for i, idx in enumerate(np.array_split(order, min(bins, max(p.size, 1)))):
        if idx.size == 0:
            continue
        pm, ym = float(p[idx].mean()), float(y[idx].mean())
        rows.append(
            {
                "decile": i + 1,
                "customers": int(idx.size),
                "predicted_mean": round(pm, 4),
                "realised_mean": round(ym, 4),
                "ratio": _ratio(pm, ym),
            }
        )
    table = pd.DataFrame(
        rows, columns=["decile", "customers", "predicted_mean", "realised_mean", "ratio"]
    )
    logs = [
        abs(math.log(r["realised_mean"] / r["predicted_mean"]))
        for r in rows
        if r["predicted_mean"] > 0 and r["realised_mean"] > 0
    ]
    summary = {
        "customers_retained": int(p.size),
        "predicted_total": round(float(p.sum()), 2),
        "realised_total": round(float(y.sum()), 2),
        "total_ratio": _ratio(float(p.sum()), float(y.sum())),
        "mean_abs_error": round(float(np.abs(p - y).mean()), 4) if p.size else None,
        "mean_abs_log_ratio": round(float(np.mean(logs)), 6) if logs else None,
        "deciles": rows,
    }
    return summary, table


# --------------------------------------------------------------------------- summaries


def amount_basis(metadata: Mapping[bytes, bytes] | None, key: str) -> dict[str, Any]:
    """Whether values are money, from the Parquet key-value ``metadata`` that ingest wrote
    under ``key`` in transactions.parquet (none: the amounts came from a money column)."""
    raw = (metadata or {}).get(key.encode())
    try:
        note = json.loads(raw) if raw else {}
    except ValueError:
        note = {}
    if note.get("source") == "default_amount":
        amount = note.get("default_amount")
        return {
            "money": False,
            "default_amount": amount,
            "note": (
                f"Values are not money: the source has no amounts and every purchase line "
                f"counts {amount:g} (ingest.default_amount), so value = expected purchase "
                "lines × that amount."
            ),
        }
    return {"money": True, "default_amount": None, "note": ""}


def value_summary(
    scored: pd.DataFrame,
    prior: ValuePrior,
    value_horizon_days: int,
    horizon_days: int,
    basis: Mapping[str, Any],
) -> dict[str, Any]:
    """summary.json → ``value``: how value was estimated, and value at risk next to what
    the scored customers spent in the 12 months before the as-of date."""
    revenue = float(scored["spend_365d"].sum()) if "spend_365d" in scored.columns else None
    at_risk = float(scored["value_at_risk"].sum())
    return {
        "method": METHOD,
        "description": METHOD_LABEL,
        "value_horizon_days": value_horizon_days,
        "churn_horizon_days": horizon_days,
        "prior": prior.to_dict(),
        "value_at_risk_total": round(at_risk, 2),
        "revenue_trailing_12m": round(revenue, 2) if revenue is not None else None,
        "value_at_risk_to_revenue": _ratio(at_risk, revenue) if revenue else None,
        **basis,
    }
