"""Value if retained: the shrunk estimate, its prior, and the backtest that checks it.

Hand-built histories with known answers: closed-form values for a given prior, a
simulated population whose true future spend is known, and backtests of exact
predictions.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from churnguard import value as V


def customers(**cols) -> pd.DataFrame:
    base = {"monetary_total": [100.0], "tenure_days": [20], "purchase_days": [1], "lapsed": [0]}
    base.update(cols)
    n = max(len(v) for v in base.values())
    return pd.DataFrame({k: v * n if len(v) == 1 else v for k, v in base.items()})


PRIOR = V.ValuePrior(
    rate_shape=1.0, rate_scale_days=100.0, spend_per_purchase_day=80.0, customers=1
)


def test_value_matches_the_closed_form_for_a_given_prior() -> None:
    # 5 purchase days (x = 4) in 200 days: rate ~ gamma(a = 1 + 4, b = 100 + 200 days)
    frame = customers(monetary_total=[500.0], tenure_days=[200], purchase_days=[5])
    a, b, h = 5.0, 300.0, 90.0
    stay = 1 - (b / (b + h)) ** a  # P(a purchase day within the churn horizon)
    spend = (500 + 80) / (5 + 1)  # one pseudo purchase day at the population's 80
    first = a * h / b / stay
    expected = spend * (first + a / b * (365 - 90))  # after the horizon: the history's rate
    assert V.value_if_retained(frame, 365, 90, PRIOR).iloc[0] == pytest.approx(
        round(expected, 2), abs=0.006
    )
    assert V.value_if_retained(frame, 90, 90, PRIOR).iloc[0] == pytest.approx(
        round(spend * first, 2), abs=0.006
    )
    short = V.value_if_retained(frame, 30, 90, PRIOR).iloc[0]
    assert short == pytest.approx(round(spend * a * 30 / b / stay, 2), abs=0.006)
    rate_after = a / b * (1 - (b / (b + h)) ** a * b / (b + h)) / stay
    conditioned = V.value_if_retained(frame, 365, 90, PRIOR, conditioned_after_horizon=True)
    assert conditioned.iloc[0] == pytest.approx(
        round(spend * (first + rate_after * 275), 2), abs=0.006
    )
    unconditional = V.value_if_retained(frame, 365, 90, PRIOR, given_retained=False)
    assert unconditional.iloc[0] == pytest.approx(round(spend * a / b * 365, 2), abs=0.006)


@pytest.mark.parametrize(("value_days", "horizon_days"), [(365, 90), (90, 90), (30, 90)])
def test_expected_purchase_days_agree_with_a_simulation(value_days: int, horizon_days: int) -> None:
    frame = customers(monetary_total=[500.0], tenure_days=[200], purchase_days=[5])
    rng = np.random.default_rng(1)
    rate = rng.gamma(5.0, 1 / 300.0, 400_000)
    within = rng.poisson(rate * horizon_days)
    if value_days > horizon_days:
        days = within + rng.poisson(rate * (value_days - horizon_days))
    else:
        days = rng.binomial(within, value_days / horizon_days)
    simulated = days[within > 0].mean()
    exact = V.expected_purchase_days(
        frame, PRIOR, value_days, horizon_days, conditioned_after_horizon=True
    )[0]
    assert exact == pytest.approx(simulated, rel=0.01)


def test_a_customer_with_no_expected_repeat_is_worth_one_purchase_day() -> None:
    nobody = V.ValuePrior(
        rate_shape=1e-9, rate_scale_days=1e6, spend_per_purchase_day=0.0, customers=1
    )
    frame = customers(monetary_total=[120.0], tenure_days=[3000], purchase_days=[1])
    # 120 / (1 + 1) per purchase day, one purchase day
    assert V.value_if_retained(frame, 365, 90, nobody).iloc[0] == pytest.approx(60.0, abs=0.05)


@pytest.mark.parametrize(
    ("tenure", "spend", "own_over_new"),
    [(20, 100.0, 2.0), (10, 5000.0, 3.0), (700, 100.0, None)],
    ids=[
        "one order of 100 in the first month is not annualised (own rate: about 1,200 a year)",
        "one big first order is pulled toward the population",
        "a one-time buyer of long standing is worth little, not nothing",
    ],
)
def test_short_histories_are_shrunk_toward_the_population(
    tenure: int, spend: float, own_over_new: float | None
) -> None:
    population, _, _ = simulate(2_000, seed=3)  # about 6 purchase days a year, 50 each
    population.loc[len(population)] = ["new", spend, tenure, 1, 0]
    values = V.value_if_retained(population, 365, 90)
    new, typical = values.iloc[-1], values.median()
    own = V.own_rate_value(population, 365).iloc[-1]
    assert own == pytest.approx(round(spend / max(tenure, 30) * 365, 2))
    if own_over_new is not None:
        assert own > own_over_new * new
    else:
        assert 0 < new < typical


def simulate(n: int, seed: int, horizon: int = 90) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Customers whose purchase-day rates are gamma(2, 120 days) and who spend 50 per
    purchase day, with tenures of 1-400 days; the truth over the next ``horizon`` days is
    drawn from the same rates (nobody drops out: value if retained is what is known)."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(2.0, 1 / 120.0, n)
    tenure = rng.integers(1, 401, n)
    repeats = rng.poisson(rate * tenure)
    future = rng.poisson(rate * horizon)
    frame = pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(n)],
            "monetary_total": 50.0 * (repeats + 1),
            "tenure_days": tenure,
            "purchase_days": repeats + 1,
            "lapsed": 0,
        }
    )
    return frame, 50.0 * future, future > 0


def test_the_fitted_prior_recovers_the_simulated_population() -> None:
    frame, _, _ = simulate(20_000, seed=5)
    prior = V.fit_value_prior(frame)
    assert prior.rate_shape / prior.rate_scale_days == pytest.approx(2 / 120, rel=0.05)
    assert prior.rate_shape == pytest.approx(2.0, rel=0.2)
    assert prior.spend_per_purchase_day == pytest.approx(50.0)
    assert V.fit_value_prior(frame) == prior  # deterministic


def test_backtest_on_a_simulated_history_where_the_answer_is_known() -> None:
    frame, realised, retained = simulate(20_000, seed=7)
    new = V.value_if_retained(frame, 90, 90)
    own = V.own_rate_value(frame, 90)
    checked, table = V.value_backtest(new, realised, retained, frame["customer_id"])
    before, _ = V.value_backtest(own, realised, retained, frame["customer_id"])
    assert checked["customers_retained"] == int(retained.sum())
    assert checked["total_ratio"] == pytest.approx(1.0, abs=0.02)
    assert checked["mean_abs_log_ratio"] < 0.05
    assert before["total_ratio"] > 1.1  # own spend per day counts the first order as a rate
    assert before["mean_abs_log_ratio"] > 5 * checked["mean_abs_log_ratio"]
    assert list(table["decile"]) == list(range(1, 11))
    assert table["customers"].sum() == retained.sum()


def test_backtest_of_exact_and_doubled_predictions() -> None:
    realised = np.arange(1.0, 21.0)
    retained = np.ones(20, dtype=bool)
    retained[[0, 5]] = False  # customers who did not stay are not counted
    exact, table = V.value_backtest(realised, realised, retained)
    assert exact["total_ratio"] == 1.0 and exact["mean_abs_log_ratio"] == 0.0
    assert exact["customers_retained"] == 18
    assert exact["realised_total"] == realised.sum() - 1 - 6
    assert (table["ratio"] == 1.0).all() and table["customers"].tolist() == [2] * 8 + [1] * 2
    double, _ = V.value_backtest(2 * realised, realised, retained)
    assert double["total_ratio"] == 2.0
    assert double["mean_abs_log_ratio"] == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="same length"):
        V.value_backtest(realised[:3], realised, retained)


def test_backtest_ties_are_broken_by_the_keys_not_by_row_order() -> None:
    p = np.ones(10)
    y = np.arange(10.0)
    keys = [f"k{9 - i}" for i in range(10)]
    a, _ = V.value_backtest(p, y, np.ones(10, bool), keys, bins=2)
    b, _ = V.value_backtest(p[::-1], y[::-1], np.ones(10, bool), keys[::-1], bins=2)
    assert a == b


def test_amount_basis_says_when_value_is_not_money() -> None:
    key = "churnguard.amount"
    note = json.dumps({"source": "default_amount", "default_amount": 1.0}).encode()
    assert V.amount_basis({key.encode(): note}, key)["money"] is False
    assert "ingest.default_amount" in V.amount_basis({key.encode(): note}, key)["note"]
    assert V.amount_basis(None, key) == {"money": True, "default_amount": None, "note": ""}
    column = json.dumps({"source": "column", "column": "total"}).encode()
    assert V.amount_basis({key.encode(): column}, key)["money"] is True


def test_value_summary_puts_value_at_risk_next_to_last_year_revenue() -> None:
    scored = pd.DataFrame(
        {"value_at_risk": [100.0, 50.0, np.nan], "spend_365d": [300.0, 200.0, 0.0]}
    )
    basis = V.amount_basis(None, "k")
    summary = V.value_summary(scored, PRIOR, 365, 90, basis)
    assert summary["value_at_risk_total"] == 150.0
    assert summary["revenue_trailing_12m"] == 500.0
    assert summary["value_at_risk_to_revenue"] == 0.3
    assert summary["money"] is True and summary["method"] == V.METHOD
    json.dumps(summary, allow_nan=False)
