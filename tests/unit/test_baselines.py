"""Baselines: rule scores on hand values, monotone in recency, and a well-behaved logistic model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from churnguard import baselines as B
from churnguard.errors import DataError


def test_recency_rule_flags_only_customers_silent_longer_than_the_threshold() -> None:
    frame = pd.DataFrame({"recency_days": [0, 180, 181, 400, np.nan]})
    np.testing.assert_array_equal(B.recency_rule_score(frame), [0.0, 0.0, 1.0, 1.0, np.nan])
    np.testing.assert_array_equal(
        B.recency_rule_score(frame, threshold_days=0)[:4], [0.0, 1.0, 1.0, 1.0]
    )


def test_recency_rank_is_recency_as_float_and_rfm_baseline_inverts_the_score() -> None:
    frame = pd.DataFrame({"recency_days": [3, 40, 200], "rfm_score": [15, 9, 3]})
    rank = B.recency_rank_score(frame)
    assert rank.dtype == np.float64
    np.testing.assert_array_equal(rank, [3.0, 40.0, 200.0])
    np.testing.assert_array_equal(B.rfm_baseline_score(frame), [0.0, 6.0, 12.0])


def test_raising_recency_never_lowers_recency_scores() -> None:
    rng = np.random.default_rng(3)
    recency = rng.integers(0, 720, 2_000)
    later = recency + rng.integers(0, 400, recency.size)
    before = pd.DataFrame({"recency_days": recency})
    after = pd.DataFrame({"recency_days": later})
    for score in (B.recency_rule_score, B.recency_rank_score):
        assert (score(after) >= score(before)).all(), score.__name__


def test_rule_baselines_are_named_like_the_report_metadata_and_rank_the_silent_higher() -> None:
    frame = pd.DataFrame({"recency_days": [10, 300], "rfm_score": [12, 4]})
    scores = B.rule_baseline_scores(frame)
    assert set(scores) | {"logreg"} == set(B.BASELINES)  # every rule baseline, and only those
    for name, score in scores.items():
        assert len(score) == 2 and score[1] > score[0], name  # 300 silent days, low RFM: riskier


def test_missing_column_is_named() -> None:
    with pytest.raises(DataError, match="rfm_score"):
        B.rfm_baseline_score(pd.DataFrame({"recency_days": [1]}))


def separable(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Churn driven by recency_to_gap, with missing values and a useless feature."""
    rng = np.random.default_rng(seed)
    y = rng.binomial(1, 0.35, n)
    signal = np.where(y == 1, rng.normal(3.0, 0.8, n), rng.normal(0.5, 0.8, n))
    noise = rng.normal(size=n)
    signal[rng.random(n) < 0.1] = np.nan  # one-time buyers have no gap
    X = pd.DataFrame(
        {
            "recency_to_gap": signal,
            "noise": noise,
            "one_time_buyer": pd.Series(np.isnan(signal)).astype(bool),
            "orders_90d": pd.array(rng.integers(0, 5, n), dtype="Int64"),
        }
    )
    X.loc[X.index[:5], "orders_90d"] = pd.NA
    return X, y


def test_logistic_baseline_learns_a_separable_signal_despite_missing_values() -> None:
    X, y = separable()
    model = B.LogisticBaseline(C=1.0)
    assert model.fit(X, y) is model
    p = model.predict_proba(X)
    assert p.shape == (len(X),)
    assert np.all((p >= 0) & (p <= 1))
    assert roc_auc_score(y, p) > 0.9
    X_new, y_new = separable(seed=1)
    assert roc_auc_score(y_new, model.predict_proba(X_new)) > 0.9


def test_logistic_baseline_is_deterministic_and_matches_columns_by_name() -> None:
    X, y = separable()
    p1 = B.LogisticBaseline(C=0.5).fit(X, y).predict_proba(X)
    model = B.LogisticBaseline(C=0.5).fit(X, y)
    np.testing.assert_array_equal(p1, model.predict_proba(X))
    shuffled = X[list(reversed(X.columns))]
    np.testing.assert_array_equal(p1, model.predict_proba(shuffled))


def test_logistic_baseline_follows_estimator_hygiene() -> None:
    model = B.LogisticBaseline(C=0.3)
    assert model.get_params() == {"C": 0.3, "max_iter": 2000}
    assert not [a for a in vars(model) if a.endswith("_")]
    with pytest.raises(NotFittedError):
        model.predict_proba(pd.DataFrame({"a": [1.0]}))
    X, y = separable(200)
    model.fit(X, y)
    assert list(model.feature_names_in_) == list(X.columns)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "pipeline_")


def test_logistic_baseline_rejects_unusable_input_with_a_clear_message() -> None:
    X, y = separable(100)
    with pytest.raises(DataError, match="both churned and retained"):
        B.LogisticBaseline().fit(X, np.zeros(len(X)))
    with pytest.raises(DataError, match="region"):
        B.LogisticBaseline().fit(X.assign(region="north"), y)
    model = B.LogisticBaseline().fit(X, y)
    with pytest.raises(DataError, match="noise"):
        model.predict_proba(X.drop(columns="noise"))


def test_logistic_baseline_tolerates_an_all_missing_column() -> None:
    X, y = separable(200)
    X["empty"] = np.nan
    p = B.LogisticBaseline().fit(X, y).predict_proba(X)
    assert np.isfinite(p).all()
