"""BTYD ("buy till you die") baselines: BG/NBD and Pareto/NBD on a calibration period.

The models are fitted by MAP with pymc-marketing (a bench extra, imported only when a
fit is asked for) on a per-customer summary in weeks (:func:`btyd_summary`) and score a
holdout of t weeks by expected purchases (fewer = riskier) and by P(no purchase in the
holdout) — never by 1 − P(alive), which is exactly 0 for every one-time buyer under
BG/NBD (the heaviest churners) and so ranks worse than chance.

**Known pymc-marketing 0.19.2 bug.** ``BetaGeoModel.expected_probability_no_purchase``
adds the "dropped out after the last purchase" term for every customer, but under BG/NBD
a customer can only drop out right after a *repeat* purchase, so for one-time buyers
(x = 0) the term must vanish. The library is therefore too high for one-time buyers
(on CDNOW: 0.920 against 0.835 at 39 weeks) and exact for repeat buyers. The closed
form used instead (Fader, Hardie & Lee 2005)::

    P(X(t) = 0) = (1 − P(alive)) + P(alive) · ((alpha + T) / (alpha + T + t))^(r + x)

is checked against the library and against a simulation of the fitted model by
:func:`check_bgnbd_no_purchase`. Pareto/NBD's ``expected_purchase_probability(n=0)`` is
used as is, after a Monte Carlo check (:func:`check_paretonbd_no_purchase`).

Everything here is pure (frames, arrays, fitted models in memory); no disk or database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

WEEK_DAYS = 7.0
BG_PARAMS = ("r", "alpha", "a", "b")
PN_PARAMS = ("r", "alpha", "s", "beta")
LIBRARY_TOLERANCE = 1e-6  # library vs closed form: larger is "the library is wrong"
MC_TOLERANCE = 0.02  # Monte Carlo error of 20,000 draws is ~0.002


# --------------------------------------------------------------------------- data


def btyd_summary(snapshot: pd.DataFrame, period_days: float = WEEK_DAYS) -> pd.DataFrame:
    """Per-customer (frequency, recency, T) in ``period_days`` units from a churnguard snapshot.

    frequency = repeat purchase days (purchase_days − 1); recency = time from the first to
    the last purchase (tenure − days since last purchase); T = tenure at the cutoff.
    ``customer_id`` is the row position (pymc-marketing needs unique ids only).
    """
    return pd.DataFrame(
        {
            "customer_id": np.arange(len(snapshot)),
            "frequency": (snapshot["purchase_days"] - 1).astype(float).to_numpy(),
            "recency": (
                (snapshot["tenure_days"] - snapshot["recency_days"]) / period_days
            ).to_numpy(),
            "T": (snapshot["tenure_days"] / period_days).to_numpy(),
        }
    )


# --------------------------------------------------------------------------- closed forms


def bgnbd_p_alive(
    x: np.ndarray, t_x: np.ndarray, T: np.ndarray, r: float, alpha: float, a: float, b: float
) -> np.ndarray:
    """BG/NBD P(alive at T | x repeat purchases, last at t_x); exactly 1 for one-time buyers."""
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    ratio = (a / (b + np.maximum(x, 1.0) - 1.0)) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    return np.where(x > 0, 1.0 / (1.0 + ratio), 1.0)


def bgnbd_no_purchase(
    p_alive: np.ndarray, x: np.ndarray, T: np.ndarray, t: float, r: float, alpha: float
) -> np.ndarray:
    """BG/NBD P(no purchase in (T, T + t]): dead, or alive with a Poisson-gamma zero.

    (1 − P(alive)) + P(alive)·((alpha+T)/(alpha+T+t))^(r+x). Used instead of pymc-marketing
    0.19.2's ``expected_probability_no_purchase``, which is wrong for one-time buyers.
    """
    p_alive, x, T = (np.asarray(v, dtype=float) for v in (p_alive, x, T))
    return (1 - p_alive) + p_alive * ((alpha + T) / (alpha + T + t)) ** (r + x)


def simulate_bgnbd_no_purchase(
    p_alive: np.ndarray,
    x: np.ndarray,
    T: np.ndarray,
    t: float,
    r: float,
    alpha: float,
    rng: np.random.Generator,
    draws: int = 4000,
) -> np.ndarray:
    """Share of ``draws`` simulations with no purchase in (T, T + t], per customer.

    Alive with P(alive); the purchase rate from its posterior Gamma(r + x, alpha + T); a
    Poisson count over t. (A customer alive at T cannot drop out before a purchase, so the
    window count is zero iff the first Poisson event falls after t.)
    """
    alive = rng.random((draws, p_alive.size)) < p_alive
    lam = rng.gamma(r + x, 1.0 / (alpha + T), size=(draws, p_alive.size))
    zero = ~alive | (rng.poisson(lam * t) == 0)
    return zero.mean(axis=0)


def monte_carlo_paretonbd_no_purchase(
    p_alive: np.ndarray,
    x: np.ndarray,
    T: np.ndarray,
    t: float,
    prm: Mapping[str, float],
    rng: np.random.Generator,
    draws: int = 20000,
) -> np.ndarray:
    """Pareto/NBD P(no purchase in (T, T + t]) by Monte Carlo over the posterior rates.

    1 − P(alive) + P(alive)·E[μ/(λ+μ) + λ/(λ+μ)·e^{−(λ+μ)t}] with λ ~ Gamma(r + x, alpha + T)
    and μ ~ Gamma(s, beta + T): either the dropout comes first, or no purchase before t.
    """
    lam = rng.gamma(prm["r"] + x, 1.0 / (prm["alpha"] + T), size=(draws, p_alive.size))
    mu = rng.gamma(prm["s"], 1.0 / (prm["beta"] + T), size=(draws, p_alive.size))
    tot = lam + mu
    given_alive = (mu / tot + lam / tot * np.exp(-tot * t)).mean(axis=0)
    return (1 - p_alive) + p_alive * given_alive


# --------------------------------------------------------------------------- library checks


def _mean(a: np.ndarray) -> float:
    """Mean, NaN (without a warning) when the sample has no customer of the group."""
    return float(a.mean()) if a.size else float("nan")


def _sample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size=min(n, k), replace=False))


def check_bgnbd_no_purchase(
    lib: np.ndarray,
    closed: np.ndarray,
    p_alive: np.ndarray,
    x: np.ndarray,
    T: np.ndarray,
    t: float,
    prm: Mapping[str, float],
    one: np.ndarray,
    rng: np.random.Generator,
    draws: int = 4000,
    sample: int = 400,
) -> dict[str, Any]:
    """Library vs closed form per group (one-time / repeat buyers), both against a simulation.

    ``library_wrong_for`` lists the groups where they differ by more than 1e-6.
    """
    idx = _sample(len(x), sample, rng)
    sim = simulate_bgnbd_no_purchase(
        p_alive[idx], x[idx], T[idx], t, prm["r"], prm["alpha"], rng, draws
    )
    res: dict[str, Any] = {}
    for group, mask in (("one_time_buyers", one), ("repeat_buyers", ~one)):
        if not mask.any():
            continue  # e.g. scoring only repeat buyers: nothing to compare in this group
        in_sample = mask[idx]
        res[group] = {
            "library_mean": float(lib[mask].mean()),
            "closed_form_mean": float(closed[mask].mean()),
            "max_abs_difference": float(np.abs(lib[mask] - closed[mask]).max()),
            "simulated_mean_on_sample": _mean(sim[in_sample]),
            "closed_form_mean_on_sample": _mean(closed[idx][in_sample]),
            "library_mean_on_sample": _mean(lib[idx][in_sample]),
        }
    wrong = [g for g, r in res.items() if r["max_abs_difference"] > LIBRARY_TOLERANCE]
    res["library_wrong_for"] = wrong
    res["used"] = "closed form" + (f" (library differs for {', '.join(wrong)})" if wrong else "")
    return res


def check_paretonbd_no_purchase(
    lib: np.ndarray,
    p_alive: np.ndarray,
    x: np.ndarray,
    T: np.ndarray,
    t: float,
    prm: Mapping[str, float],
    rng: np.random.Generator,
    draws: int = 20000,
    sample: int = 200,
) -> dict[str, Any]:
    """Library P(X(t)=0) vs :func:`monte_carlo_paretonbd_no_purchase` on a sample of customers."""
    idx = _sample(len(x), sample, rng)
    mc = monte_carlo_paretonbd_no_purchase(p_alive[idx], x[idx], T[idx], t, prm, rng, draws)
    diff = np.abs(lib[idx] - mc)
    ok = bool(diff.max() < MC_TOLERANCE)
    return {
        "sample": int(idx.size),
        "library_mean_on_sample": float(lib[idx].mean()),
        "monte_carlo_mean_on_sample": float(mc.mean()),
        "max_abs_difference": float(diff.max()),
        "agrees": ok,
        "used": "library" if ok else "library (disagrees with Monte Carlo; see max_abs_difference)",
    }


# --------------------------------------------------------------------------- fit and score


def fit_bgnbd(data: pd.DataFrame) -> Any:
    """BG/NBD by MAP (pymc-marketing, default priors) on a :func:`btyd_summary` frame."""
    from pymc_marketing.clv import BetaGeoModel

    model = BetaGeoModel()
    model.fit(data=data, method="map", progressbar=False)
    return model


def fit_paretonbd(data: pd.DataFrame) -> Any:
    """Pareto/NBD by MAP (pymc-marketing, default priors) on a :func:`btyd_summary` frame."""
    from pymc_marketing.clv import ParetoNBDModel

    model = ParetoNBDModel()
    model.fit(data=data, method="map", progressbar=False)
    return model


def point_params(model: Any, names: tuple[str, ...]) -> dict[str, float]:
    """The MAP point estimates of a fitted pymc-marketing model, by name."""
    return {k: float(np.asarray(model.fit_result[k].values).ravel()[0]) for k in names}


def _values(arr: Any) -> np.ndarray:
    return np.asarray(arr.values).ravel()


def score_btyd(
    bg: Any, pn: Any, data: pd.DataFrame, horizons: Mapping[str, float], seed: int
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, Any]]:
    """Churn scores of fitted BG/NBD and Pareto/NBD models for each holdout of t periods.

    Returns (scores, checks): per holdout name, ``bg_expected`` / ``pn_expected`` (minus the
    expected purchases, so higher = riskier), ``bg_no_purchase`` (closed form),
    ``pn_no_purchase`` (library), ``bg_one_minus_palive`` (the warning row); and the
    library checks. ``seed`` drives the simulations of the checks only.
    """
    x = data["frequency"].to_numpy()
    T = data["T"].to_numpy()
    one = x == 0
    bgp = point_params(bg, BG_PARAMS)
    pnp = point_params(pn, PN_PARAMS)
    p_alive = _values(bg.expected_probability_alive(data))
    pn_alive = _values(pn.expected_probability_alive(data))
    rng = np.random.default_rng(seed)
    scores: dict[str, dict[str, np.ndarray]] = {}
    checks: dict[str, Any] = {}
    for name, t in horizons.items():
        bg_exp = _values(bg.expected_purchases(data, future_t=t))
        pn_exp = _values(pn.expected_purchases(data, future_t=t))
        bg_lib = _values(bg.expected_probability_no_purchase(t, data))
        bg_closed = bgnbd_no_purchase(p_alive, x, T, t, bgp["r"], bgp["alpha"])
        pn_p0 = _values(pn.expected_purchase_probability(data, n_purchases=0, future_t=t))
        checks[name] = {
            "bg_no_purchase": check_bgnbd_no_purchase(
                bg_lib, bg_closed, p_alive, x, T, t, bgp, one, rng
            ),
            "pn_no_purchase": check_paretonbd_no_purchase(pn_p0, pn_alive, x, T, t, pnp, rng),
        }
        scores[name] = {
            "bg_expected": -bg_exp,
            "bg_no_purchase": bg_closed,
            "pn_expected": -pn_exp,
            "pn_no_purchase": pn_p0,
            "bg_one_minus_palive": 1 - p_alive,
        }
    return scores, checks
