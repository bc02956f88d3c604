"""Unit tests of the BTYD baselines (churnguard.btyd): closed forms by hand, simulations, checks.

The fast tests need numpy only. The one test that fits pymc-marketing models is marked
slow (PyTensor compiles the models: ~30-60 s) and is skipped without the bench extras.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnguard import btyd

BG = {"r": 0.25, "alpha": 4.8, "a": 0.7, "b": 2.1}  # close to the CDNOW fit


def test_summary_is_in_weeks_from_the_snapshot_columns() -> None:
    snap = pd.DataFrame(
        {"purchase_days": [3, 1], "tenure_days": [70, 35], "recency_days": [14, 35]}
    )
    out = btyd.btyd_summary(snap)
    # 2 repeat purchases, last one 56 days after the first, 70 days of tenure
    assert out["frequency"].tolist() == [2.0, 0.0]
    assert out["recency"].tolist() == [8.0, 0.0]
    assert out["T"].tolist() == [10.0, 5.0]
    assert out["customer_id"].tolist() == [0, 1]


def test_bgnbd_p_alive_hand_value_and_one_time_buyers() -> None:
    # r = alpha = a = b = 1, x = 1, t_x = 1, T = 2: 1 / (1 + 1/1 · (3/2)^2) = 1 / 3.25
    p = btyd.bgnbd_p_alive(np.array([1.0]), np.array([1.0]), np.array([2.0]), 1, 1, 1, 1)
    assert p[0] == pytest.approx(1 / 3.25)
    # BG/NBD: no dropout without a repeat purchase, so a one-time buyer is alive for sure
    p0 = btyd.bgnbd_p_alive(np.zeros(3), np.zeros(3), np.array([1.0, 10.0, 40.0]), **BG)
    assert p0.tolist() == [1.0, 1.0, 1.0]


def test_bgnbd_no_purchase_hand_value() -> None:
    # p_alive = 0.5, x = 1, T = 2, t = 1, r = alpha = 1: 0.5 + 0.5 · (3/4)^2 = 0.78125
    p = btyd.bgnbd_no_purchase(np.array([0.5]), np.array([1.0]), np.array([2.0]), 1.0, 1.0, 1.0)
    assert p[0] == pytest.approx(0.78125)
    # nothing can happen in an empty window
    assert (
        btyd.bgnbd_no_purchase(np.array([0.3]), np.array([2.0]), np.array([5.0]), 0.0, 1, 1)[0]
        == 1.0
    )


def _grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x in 0..5, recency t_x in 0..T, T = 30 weeks."""
    x, t_x = np.meshgrid(np.arange(6.0), np.linspace(0.0, 30.0, 31), indexing="ij")
    t_x = np.where(x == 0, 0.0, t_x)  # a one-time buyer's recency is 0
    return x, t_x, np.full_like(x, 30.0)


def test_bgnbd_churn_probability_is_in_unit_interval_and_monotone_in_recency() -> None:
    x, t_x, T = _grid()
    p_alive = btyd.bgnbd_p_alive(x, t_x, T, **BG)
    churn = btyd.bgnbd_no_purchase(p_alive, x, T, 13.0, BG["r"], BG["alpha"])
    assert ((churn >= 0) & (churn <= 1)).all()
    assert ((p_alive > 0) & (p_alive <= 1)).all()
    # for a fixed frequency, a more recent last purchase (larger t_x) means alive and buying
    for row in range(1, 6):
        assert (np.diff(p_alive[row]) > 0).all()
        assert (np.diff(churn[row]) < 0).all()
    # a longer window can only lower P(no purchase)
    longer = btyd.bgnbd_no_purchase(p_alive, x, T, 39.0, BG["r"], BG["alpha"])
    assert (longer <= churn).all()


def test_bgnbd_simulation_agrees_with_the_closed_form() -> None:
    x = np.array([0.0, 1.0, 4.0, 2.0])
    t_x = np.array([0.0, 3.0, 25.0, 8.0])
    T = np.array([30.0, 30.0, 30.0, 20.0])
    p_alive = btyd.bgnbd_p_alive(x, t_x, T, **BG)
    closed = btyd.bgnbd_no_purchase(p_alive, x, T, 13.0, BG["r"], BG["alpha"])
    rng = np.random.default_rng(0)
    sim = btyd.simulate_bgnbd_no_purchase(
        p_alive, x, T, 13.0, BG["r"], BG["alpha"], rng, draws=40000
    )
    assert np.abs(sim - closed).max() < 0.01  # 3 standard errors of 40,000 draws ~ 0.0075


def test_paretonbd_monte_carlo_matches_a_closed_form_with_fixed_rates() -> None:
    # Gamma shapes of 1e6 pin the rates: lambda = 1e6 / 1e6 = 1, mu = 1e6 / 2e6 = 0.5. Given
    # alive: P(no purchase in t) = mu/(lambda+mu) + lambda/(lambda+mu)·e^{-(lambda+mu)t}.
    prm = {"r": 1e6, "alpha": 1e6, "s": 1e6, "beta": 2e6}
    t = 0.8
    rng = np.random.default_rng(1)
    x, T = np.zeros(3), np.zeros(3)
    p_alive = np.array([1.0, 0.5, 0.0])
    mc = btyd.monte_carlo_paretonbd_no_purchase(p_alive, x, T, t, prm, rng, draws=2000)
    given_alive = 1 / 3 + 2 / 3 * np.exp(-1.5 * t)
    assert mc == pytest.approx([given_alive, 0.5 + 0.5 * given_alive, 1.0], abs=1e-3)


def test_check_bgnbd_flags_only_the_groups_where_the_library_differs() -> None:
    rng = np.random.default_rng(2)
    x = np.array([0.0] * 30 + [2.0] * 30)
    T = np.full(60, 30.0)
    t_x = np.where(x > 0, 20.0, 0.0)
    one = x == 0
    p_alive = btyd.bgnbd_p_alive(x, t_x, T, **BG)
    closed = btyd.bgnbd_no_purchase(p_alive, x, T, 13.0, BG["r"], BG["alpha"])
    ok = btyd.check_bgnbd_no_purchase(
        closed.copy(), closed, p_alive, x, T, 13.0, BG, one, rng, draws=500
    )
    assert ok["library_wrong_for"] == [] and ok["used"] == "closed form"
    assert ok["repeat_buyers"]["max_abs_difference"] == 0.0
    # what pymc-marketing 0.19.2 does: too high for one-time buyers, exact for repeat buyers
    lib = np.where(one, np.minimum(closed + 0.05, 1.0), closed)
    bad = btyd.check_bgnbd_no_purchase(lib, closed, p_alive, x, T, 13.0, BG, one, rng, draws=500)
    assert set(bad) == {"one_time_buyers", "repeat_buyers", "library_wrong_for", "used"}
    assert bad["library_wrong_for"] == ["one_time_buyers"]
    assert bad["used"] == "closed form (library differs for one_time_buyers)"
    assert bad["one_time_buyers"]["library_mean"] > bad["one_time_buyers"]["closed_form_mean"]
    # a population of repeat buyers only has nothing to report for one-time buyers
    rep = btyd.check_bgnbd_no_purchase(
        lib[~one], closed[~one], p_alive[~one], x[~one], T[~one], 13.0, BG, one[~one], rng, draws=50
    )
    assert "one_time_buyers" not in rep and rep["library_wrong_for"] == []


def test_check_paretonbd_agrees_with_its_own_monte_carlo_and_not_with_a_shifted_one() -> None:
    prm = {"r": 0.6, "alpha": 11.6, "s": 0.52, "beta": 8.8}
    x = np.array([0.0, 1.0, 3.0, 0.0, 5.0])
    T = np.array([30.0, 30.0, 25.0, 39.0, 30.0])
    p_alive = np.array([0.9, 0.7, 0.8, 0.95, 0.6])
    reference = btyd.monte_carlo_paretonbd_no_purchase(
        p_alive, x, T, 13.0, prm, np.random.default_rng(3), draws=20000
    )
    good = btyd.check_paretonbd_no_purchase(
        reference, p_alive, x, T, 13.0, prm, np.random.default_rng(4)
    )
    assert good["agrees"] and good["used"] == "library" and good["sample"] == 5
    bad = btyd.check_paretonbd_no_purchase(
        reference - 0.1, p_alive, x, T, 13.0, prm, np.random.default_rng(4)
    )
    assert not bad["agrees"] and bad["max_abs_difference"] == pytest.approx(0.1, abs=0.01)


@pytest.mark.slow
def test_pymc_marketing_fit_and_the_one_time_buyer_bug() -> None:
    """Slow (~30-60 s: PyTensor compiles both models); needs the bench extras.

    Fits both models on a small simulated cohort, then checks what the benchmark relies on:
    the library's BG/NBD P(alive) is the closed form, its P(no purchase) is the closed form
    for repeat buyers (and, in 0.19.2, too high for one-time buyers), and every score is a
    probability that falls as the last purchase gets more recent.
    """
    pymc_marketing = pytest.importorskip("pymc_marketing")
    import warnings

    warnings.filterwarnings("ignore")
    rng = np.random.default_rng(5)
    n = 400
    T = rng.uniform(26.0, 39.0, n)
    lam = rng.gamma(0.5, 1 / 5.0, n)
    x = np.minimum(rng.poisson(lam * T * rng.uniform(0.2, 1.0, n)), 20).astype(float)
    t_x = np.where(x > 0, T * rng.uniform(0.1, 1.0, n), 0.0)
    data = pd.DataFrame({"customer_id": np.arange(n), "frequency": x, "recency": t_x, "T": T})
    bg, pn = btyd.fit_bgnbd(data), btyd.fit_paretonbd(data)
    bgp = btyd.point_params(bg, btyd.BG_PARAMS)
    p_alive = np.asarray(bg.expected_probability_alive(data).values).ravel()
    assert p_alive == pytest.approx(btyd.bgnbd_p_alive(x, t_x, T, **bgp), abs=1e-9)

    scores, checks = btyd.score_btyd(bg, pn, data, {"13w": 13.0}, seed=1)
    s = scores["13w"]
    for name in ("bg_no_purchase", "pn_no_purchase", "bg_one_minus_palive"):
        assert ((s[name] >= 0) & (s[name] <= 1)).all(), name
    assert checks["13w"]["bg_no_purchase"]["repeat_buyers"]["max_abs_difference"] < 1e-6
    assert checks["13w"]["pn_no_purchase"]["agrees"]
    if pymc_marketing.__version__ == "0.19.2":
        assert checks["13w"]["bg_no_purchase"]["library_wrong_for"] == ["one_time_buyers"]

    # monotone in recency for a fixed frequency (x = 3, T = 30): later last purchase, lower risk
    probe = pd.DataFrame(
        {"customer_id": np.arange(5), "frequency": 3.0, "recency": [5.0, 10, 15, 20, 25], "T": 30.0}
    )
    probe_scores, _ = btyd.score_btyd(bg, pn, probe, {"13w": 13.0}, seed=1)
    for name in ("bg_no_purchase", "pn_no_purchase", "bg_expected", "pn_expected"):
        assert (np.diff(probe_scores["13w"][name]) < 0).all(), name
