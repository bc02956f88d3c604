"""The BTYD features: the MBG/NBD fit, its closed forms by hand, one fit per cutoff."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnguard import btyd_features as BF
from churnguard.btyd import bgnbd_p_alive
from churnguard.config import TrainParams
from churnguard.feature_defs import BTYD_FEATURES, MODEL_FEATURES, needs_btyd
from churnguard.fitting import model_features


def _simulate(n: int, p: dict[str, float], T_max: float, seed: int) -> pd.DataFrame:
    """MBG/NBD customers: Gamma(r, alpha) rates, Beta(a, b) drop-out at the first purchase
    and after each repeat purchase; observed for T weeks from their first purchase."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(p["r"], 1.0 / p["alpha"], n)
    drop = rng.beta(p["a"], p["b"], n)
    T = rng.uniform(4.0, T_max, n)
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while rng.random() >= drop[i]:  # alive after the last purchase
            t += rng.exponential(1.0 / lam[i])
            if t > T[i]:
                break
            x[i] += 1
            t_x[i] = t
    days = np.floor(T * BF.WEEK)
    return pd.DataFrame(
        {
            "cutoff_date": pd.Timestamp("2024-01-01"),
            "purchase_days": x + 1,
            "tenure_days": days,
            "recency_days": days - np.floor(t_x * BF.WEEK),
        }
    )


def test_maximum_likelihood_recovers_the_simulated_parameters() -> None:
    truth = {"r": 0.5, "alpha": 4.0, "a": 0.6, "b": 2.5}
    frame = _simulate(6000, truth, 40.0, seed=3)
    data = BF.summary(frame)
    fitted = BF.fit(*data)
    # the optimum is at least as likely as the truth (the optimiser does its job) ...
    at = {k: np.log([v[n] for n in BF.PARAMS]) for k, v in (("fit", fitted), ("truth", truth))}
    assert BF.neg_log_likelihood(at["fit"], *data) <= BF.neg_log_likelihood(at["truth"], *data)
    # ... and near it: the mean purchase rate r/alpha is well identified, the mean drop-out
    # a/(a + b) less so (sampling noise of 6,000 customers, about ±25% here)
    assert fitted["r"] / fitted["alpha"] == pytest.approx(truth["r"] / truth["alpha"], rel=0.15)
    mean_drop = fitted["a"] / (fitted["a"] + fitted["b"])
    assert mean_drop == pytest.approx(truth["a"] / (truth["a"] + truth["b"]), rel=0.35)
    # the fit is deterministic
    assert BF.fit(*BF.summary(frame)) == fitted


def test_closed_forms_by_hand() -> None:
    p = {"r": 0.5, "alpha": 4.0, "a": 0.8, "b": 2.0}
    x, t_x, T = np.array([0.0, 3.0]), np.array([0.0, 10.0]), np.array([20.0, 30.0])
    out = BF.closed_forms(x, t_x, T, p)
    # P(alive) = 1 / (1 + a/(b + x) · ((alpha + T)/(alpha + t_x))^(r + x))
    one_time = 1 / (1 + 0.8 / 2.0 * (24 / 4) ** 0.5)
    repeat = 1 / (1 + 0.8 / 5.0 * (34 / 14) ** 3.5)
    np.testing.assert_allclose(out["btyd_p_alive"], [one_time, repeat])
    # a one-time buyer may have dropped out (BG/NBD says exactly 1); a repeat buyer as in
    # BG/NBD with b + x in place of b + x − 1
    assert out["btyd_p_alive"][0] < 1.0
    bg = bgnbd_p_alive(x[1:], t_x[1:], T[1:], 0.5, 4.0, 0.8, 3.0)
    np.testing.assert_allclose(out["btyd_p_alive"][1:], bg)
    np.testing.assert_allclose(out["btyd_rate_30d"], 30 / 7 * np.array([0.5 / 24, 3.5 / 34]))
    stay = np.array([(24 / (24 + 90 / 7)) ** 0.5, (34 / (34 + 90 / 7)) ** 3.5])
    pa = out["btyd_p_alive"]
    np.testing.assert_allclose(out["btyd_no_purchase_90d"], 1 - pa + pa * stay)


def test_each_cutoff_is_fitted_on_its_own_rows_only() -> None:
    a = _simulate(800, {"r": 0.5, "alpha": 4.0, "a": 0.6, "b": 2.5}, 30.0, seed=1)
    b = _simulate(500, {"r": 1.5, "alpha": 3.0, "a": 0.3, "b": 4.0}, 50.0, seed=2)
    b["cutoff_date"] = pd.Timestamp("2024-03-01")
    both = BF.add_btyd_features(pd.concat([b, a], ignore_index=True))
    alone = pd.concat([BF.add_btyd_features(b), BF.add_btyd_features(a)], ignore_index=True)
    pd.testing.assert_frame_equal(both, alone)
    assert list(both.columns[-3:]) == list(BTYD_FEATURES)
    assert both[list(BTYD_FEATURES)].notna().all().all()
    assert ((both["btyd_p_alive"] > 0) & (both["btyd_p_alive"] < 1)).all()


def test_rows_without_a_purchase_day_get_no_btyd_value() -> None:
    frame = _simulate(300, {"r": 0.5, "alpha": 4.0, "a": 0.6, "b": 2.5}, 30.0, seed=4)
    frame.loc[0, ["tenure_days", "recency_days"]] = np.nan  # only returns: no first purchase
    out = BF.add_btyd_features(frame)
    assert out.loc[0, list(BTYD_FEATURES)].isna().all()
    assert out.loc[1:, list(BTYD_FEATURES)].notna().all().all()


def test_the_model_uses_the_btyd_features_only_when_the_snapshots_have_them() -> None:
    p = TrainParams()
    assert model_features(p) == list(MODEL_FEATURES)
    assert model_features(p, [*MODEL_FEATURES, *BTYD_FEATURES]) == [
        *MODEL_FEATURES,
        *BTYD_FEATURES,
    ]
    less = TrainParams(exclude_features=["btyd_p_alive"])
    assert "btyd_p_alive" not in model_features(less, [*MODEL_FEATURES, *BTYD_FEATURES])

    class Scorer:
        features = ["recency_days", "btyd_rate_30d"]

    assert needs_btyd(Scorer()) and not needs_btyd(object())
