"""The training plan (churnguard.horizon) and chained scoring, on hand-built dates and scores."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnguard.calibration import Calibrator
from churnguard.config import FeaturesParams
from churnguard.errors import DataError
from churnguard.fitting import plan_split
from churnguard.horizon import (
    Plan,
    calibration_dates,
    chain_no_purchase,
    cutoffs_needed,
    fold_train_cutoffs,
    plan_training,
)
from churnguard.modeling import ChainedScores, ModelError, chained_churn
from churnguard.predictors import RecencyScorer

D = dt.date
YEAR_START, YEAR_END = D(2024, 1, 1), D(2024, 12, 31)


# --------------------------------------------------------------------------- the plan


def test_a_26_week_target_on_a_year_of_history_trains_chained() -> None:
    plan = plan_training(YEAR_START, YEAR_END, FeaturesParams(horizon_days=182))
    assert plan.mode == "chained"
    assert (plan.target_horizon_days, plan.label_horizon_days, plan.step_days) == (182, 21, 7)
    assert plan.test_cutoff == YEAR_END - dt.timedelta(days=21)
    assert plan.train_cutoffs and all(
        c + dt.timedelta(days=21) <= plan.valid_cutoff for c in plan.train_cutoffs
    )
    assert plan.chain_steps == 9  # 182 days in 21-day steps, the last one partial
    # the chained probability is calibrated where a realised 182-day window fits
    assert plan.chain_origins and all(
        o + dt.timedelta(days=182) <= YEAR_END for o in plan.chain_origins
    )


def test_the_direct_refusal_and_the_train_split_give_the_same_instruction() -> None:
    """The old pair of hints (features: use <= 7 cutoffs; train: raise to about 9) could not
    both be followed. Now the one message names what fits."""
    fp = FeaturesParams(horizon_days=182, horizon_mode="direct")
    with pytest.raises(DataError) as err:
        plan_training(YEAR_START, YEAR_END, fp)
    msg = str(err.value)
    assert "needs 9 labelled cutoffs" in msg and "7 cutoff(s) fit" in msg
    assert "features.horizon_mode: chained" in msg
    assert "lower features.horizon_days to" in msg
    assert cutoffs_needed(182, 30) == 9
    # train's own split rule agrees on what is needed
    cutoffs = [D(2024, 1, 5) + dt.timedelta(days=30 * i) for i in range(7)]
    with pytest.raises(DataError, match="needs at least 9 cutoffs every 30 days"):
        plan_split(cutoffs, 182, 30)


def test_the_suggested_shorter_horizon_does_fit() -> None:
    fp = FeaturesParams(horizon_days=182, horizon_mode="direct")
    with pytest.raises(DataError) as err:
        plan_training(YEAR_START, YEAR_END, fp)
    shorter = int(str(err.value).split("lower features.horizon_days to ")[1].split(" ")[0])
    plan = plan_training(YEAR_START, YEAR_END, fp.model_copy(update={"horizon_days": shorter}))
    assert plan.mode == "direct" and plan.train_cutoffs


def test_auto_stays_direct_when_the_direct_grid_fits() -> None:
    plan = plan_training(D(2022, 1, 1), YEAR_END, FeaturesParams())
    assert plan.mode == "direct" and len(plan.cutoffs) == 8
    assert plan.label_horizon_days == plan.target_horizon_days == 90
    assert plan.chain_origins == []


def test_a_base_horizon_that_is_not_shorter_cannot_be_chained() -> None:
    fp = FeaturesParams(horizon_days=14, horizon_mode="chained", base_horizon_days=21)
    with pytest.raises(DataError, match="base_horizon_days"):
        plan_training(YEAR_START, YEAR_END, fp)


def test_a_history_too_short_even_for_the_chain_says_so() -> None:
    with pytest.raises(DataError, match="chained 182-day horizon"):
        plan_training(D(2024, 11, 15), YEAR_END, FeaturesParams(horizon_days=182))


def test_the_plan_round_trips_through_cutoffs_json() -> None:
    plan = plan_training(YEAR_START, YEAR_END, FeaturesParams(horizon_days=182))
    assert Plan.from_dict(plan.to_dict(), plan.cutoffs) == plan


@settings(max_examples=120, deadline=None)
@given(
    span=st.integers(30, 900),
    horizon=st.integers(1, 300),
    mode=st.sampled_from(["auto", "direct", "chained"]),
    k=st.integers(1, 6),
)
def test_no_planned_label_reaches_past_its_date(span: int, horizon: int, mode: str, k: int) -> None:
    """Training labels end by validation, every label by as-of, calibration dates are
    predicted only from labels that end by them, chain origins have realised windows."""
    data_min = D(2021, 1, 1)
    fp = FeaturesParams(horizon_days=horizon, horizon_mode=mode, calibration_cutoffs=k)
    try:
        plan = plan_training(data_min, data_min + dt.timedelta(days=span), fp)
    except DataError:
        return
    h = dt.timedelta(days=plan.label_horizon_days)
    assert plan.cutoffs[0] > data_min
    assert plan.test_cutoff + h == plan.as_of
    assert plan.train_cutoffs and all(c + h <= plan.valid_cutoff for c in plan.train_cutoffs)
    for date in plan.calibration_dates:
        assert date < plan.valid_cutoff
        assert fold_train_cutoffs(plan.cutoffs, plan.label_horizon_days, date)
    assert len(plan.calibration_dates) <= (k if k > 1 else 0)
    for origin in plan.chain_origins:
        assert origin + dt.timedelta(days=plan.target_horizon_days) <= plan.as_of


def test_calibration_dates_spread_over_the_year_before_validation() -> None:
    cutoffs = [D(2023, 1, 1) + dt.timedelta(days=30 * i) for i in range(24)]
    valid = cutoffs[-2]
    dates = calibration_dates(cutoffs, 30, valid, 4)
    assert len(dates) == 4 and dates[-1] < valid
    assert dates[0] >= valid - dt.timedelta(days=365)
    gaps = np.diff([d.toordinal() for d in dates])
    assert gaps.min() >= 90  # spread over the seasons, not the four latest cutoffs
    assert calibration_dates(cutoffs, 30, valid, 1) == []  # 1 = the validation cutoff alone


# --------------------------------------------------------------------------- chained scoring


def _recency_scorer(meta: dict) -> RecencyScorer:
    # P(no purchase in 10 days) = 0.5 at 0 days of silence, 0.9 from 20 days on
    cal = Calibrator("isotonic", (0.0, 20.0), (0.5, 0.9))
    return RecencyScorer(cal, 10.0, meta)


def test_chained_probability_on_a_hand_built_case() -> None:
    """A 25-day horizon in 10-day steps: steps at +0, +10, +20 days, the last one half."""
    meta = {"horizon_days": 25, "label_horizon_days": 10, "horizon_mode": "chained"}
    scorer = _recency_scorer(meta)
    # customer a: silent 0 days at as-of -> 0, 10, 20 at the steps: p = 0.5, 0.7, 0.9
    # customer b: silent 30 days -> 30, 40, 50: p = 0.9 at every step
    steps = pd.DataFrame(
        {
            "cutoff_date": [D(2024, 1, 1)] * 2 + [D(2024, 1, 11)] * 2 + [D(2024, 1, 21)] * 2,
            "customer_id": ["a", "b"] * 3,
            "recency_days": [0, 30, 10, 40, 20, 50],
        }
    )
    p = chained_churn(scorer, steps)
    assert p["a"] == pytest.approx(0.5 * 0.7 * 0.9**0.5)
    assert p["b"] == pytest.approx(0.9 * 0.9 * 0.9**0.5)
    stand_in = ChainedScores(scorer, p)
    frame = pd.DataFrame({"customer_id": ["b", "a"], "recency_days": [30, 0]})
    assert stand_in.predict(frame) == pytest.approx([p["b"], p["a"]])
    assert list(stand_in.contributions(frame).columns) == ["recency_days"]  # the base scorer's


def test_the_chained_calibrator_maps_the_product() -> None:
    meta = {
        "horizon_days": 20,
        "label_horizon_days": 10,
        "horizon_mode": "chained",
        "chain_calibrator": {"kind": "sigmoid", "a": 2.0, "b": -0.5},
    }
    steps = pd.DataFrame(
        {
            "cutoff_date": [D(2024, 1, 1), D(2024, 1, 11)],
            "customer_id": ["a", "a"],
            "recency_days": [0, 10],
        }
    )
    product = 0.5 * 0.7
    logit = np.log(product / (1 - product))
    expected = 1 / (1 + np.exp(-(2.0 * logit - 0.5)))
    assert chained_churn(_recency_scorer(meta), steps)["a"] == pytest.approx(expected)


def test_a_chain_with_a_missing_step_is_refused() -> None:
    meta = {"horizon_days": 30, "label_horizon_days": 10, "horizon_mode": "chained"}
    steps = pd.DataFrame(
        {"cutoff_date": [D(2024, 1, 1)], "customer_id": ["a"], "recency_days": [0]}
    )
    with pytest.raises(ModelError, match="needs 3 step snapshots"):
        chained_churn(_recency_scorer(meta), steps)
    with pytest.raises(ModelError, match="no chained probability"):
        ChainedScores(_recency_scorer(meta), pd.Series({"a": 0.5})).predict(
            pd.DataFrame({"customer_id": ["z"], "recency_days": [1]})
        )


def test_chain_no_purchase_matches_the_chain_rule_on_arrays() -> None:
    p = chain_no_purchase([np.array([0.8, 0.5]), np.array([0.5, 1.0])], 7, 14)
    assert p.to_numpy() == pytest.approx([0.4, 0.5])
