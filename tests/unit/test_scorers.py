"""Baselines as scorers: the same interface as the model (calibrated P(churn), reasons,
feature checks, plain-text folders), reproducing the fitted estimators exactly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from churnguard.baselines import LogisticBaseline
from churnguard.calibration import Calibrator, fit_calibrator
from churnguard.errors import ModelError
from churnguard.explain import PHRASE_COLUMNS, top_reasons
from churnguard.predictors import SCORER_FILE, LogisticScorer, RecencyScorer
from churnguard.scorers import (
    find_scorer_folder,
    load_scorer,
    save_scorer,
    scorer_digest,
)

FEATURES = ["recency_days", "orders", "spend_90d", "gap_mean_days"]


def _frame(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "recency_days": rng.integers(0, 400, n).astype(float),
            "orders": rng.poisson(4, n).astype(float),
            "spend_90d": rng.gamma(2, 50, n),
            "gap_mean_days": rng.gamma(3, 20, n),
        }
    )
    frame.loc[rng.random(n) < 0.2, "gap_mean_days"] = np.nan  # one-time buyers
    logit = 0.01 * (frame["recency_days"] - 150) - 0.2 * (frame["orders"] - 4)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()
    return frame, y


def _logistic() -> tuple[LogisticScorer, LogisticBaseline, pd.DataFrame, np.ndarray]:
    frame, y = _frame()
    fitted = LogisticBaseline().fit(frame, y)
    scorer = LogisticScorer.from_fitted(fitted, Calibrator("identity"), {"horizon_days": 90})
    scorer.calibrator, _ = fit_calibrator(scorer.predict_raw(frame), y, "isotonic")
    return scorer, fitted, frame, y


def test_the_logistic_scorer_reproduces_the_fitted_estimator():
    scorer, fitted, frame, _ = _logistic()
    test, _ = _frame(seed=1)
    test.loc[3, "orders"] = np.inf  # treated as missing by both
    np.testing.assert_allclose(scorer.predict_raw(test), fitted.predict_proba(test), atol=1e-12)
    p = scorer.predict(test)
    assert ((p > 0) & (p < 1)).all()


def test_logistic_contributions_add_up_to_the_log_odds():
    scorer, _, frame, _ = _logistic()
    contrib = scorer.contributions(frame)
    assert list(contrib.columns) == FEATURES
    raw = scorer.predict_raw(frame)
    np.testing.assert_allclose(
        contrib.sum(axis=1) + scorer.intercept, np.log(raw / (1 - raw)), atol=1e-9
    )
    # a long silence pushes risk up, and the reasons say it in the model's words
    silent = frame.assign(recency_days=399.0, gap_mean_days=20.0).head(1)
    assert scorer.contributions(silent)["recency_days"].iloc[0] > 0
    snapshot = silent.assign(**{c: 1.0 for c in PHRASE_COLUMNS if c not in silent.columns})
    text = top_reasons(scorer.contributions(silent), snapshot, 3).iloc[0]
    assert "No order for 399 days" in text


def test_scorers_round_trip_through_their_folders(tmp_path):
    scorer, _, frame, y = _logistic()
    save_scorer(scorer, tmp_path / "logreg")
    back = load_scorer(tmp_path / "logreg")
    assert isinstance(back, LogisticScorer) and back.kind == "logreg"
    np.testing.assert_array_equal(back.predict(frame), scorer.predict(frame))
    back.check_horizon(90)
    with pytest.raises(ModelError, match="90-day horizon"):
        back.check_horizon(30)

    cal, _ = fit_calibrator(frame["recency_days"].to_numpy(), y, "isotonic")
    recency = RecencyScorer(cal, 150.0, {"horizon_days": 90})
    save_scorer(recency, tmp_path / "recency_rank")
    again = load_scorer(tmp_path / "recency_rank")
    assert isinstance(again, RecencyScorer)
    np.testing.assert_array_equal(again.predict(frame), recency.predict(frame))
    assert scorer_digest(tmp_path / "logreg") != scorer_digest(tmp_path / "recency_rank")


def test_recency_contributions_are_relative_to_a_typical_silence():
    frame, y = _frame()
    cal, _ = fit_calibrator(frame["recency_days"].to_numpy(), y, "isotonic")
    scorer = RecencyScorer(cal, 150.0)
    probe = pd.DataFrame({"recency_days": [10.0, 150.0, 390.0]})
    contrib = scorer.contributions(probe)["recency_days"].to_numpy()
    assert contrib[0] < 0 and contrib[1] == pytest.approx(0) and contrib[2] > 0
    with pytest.raises(ModelError, match="lacks \\['recency_days'\\]"):
        scorer.predict(pd.DataFrame({"orders": [1.0]}))


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d.update(kind="forest"), '"kind"'),
        (lambda d: d.update(coef=d["coef"][:-1]), '"coef"'),
        (lambda d: d.update(scale=[0.0] * len(d["scale"])), '"scale"'),
        (lambda d: d.update(indicators=[99]), '"indicators"'),
        (lambda d: d["calibrator"].update(kind="magic"), '"kind"'),
    ],
    ids=["unknown kind", "short coef", "zero scale", "bad indicator", "bad calibrator"],
)
def test_a_damaged_scorer_file_is_named(tmp_path, edit, needle):
    scorer, *_ = _logistic()
    save_scorer(scorer, tmp_path)
    d = json.loads((tmp_path / SCORER_FILE).read_text())
    edit(d)
    (tmp_path / SCORER_FILE).write_text(json.dumps(d))
    with pytest.raises(ModelError, match=needle) as err:
        load_scorer(tmp_path)
    assert str(tmp_path / SCORER_FILE) in str(err.value)


def test_the_outermost_scorer_is_found(tmp_path):
    scorer, *_ = _logistic()
    assert find_scorer_folder(tmp_path) is None
    save_scorer(scorer, tmp_path / "a" / "baselines" / "logreg")
    (tmp_path / "a" / "booster.txt").write_text("tree")
    assert find_scorer_folder(tmp_path) == tmp_path / "a"
