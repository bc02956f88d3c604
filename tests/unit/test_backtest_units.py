"""Unit tests of the backtest logic (churnguard.backtest, churnguard.stats) on hand-built tables.

Every expected value is either worked out by hand in the comment next to it or a closed
form; the CDNOW dates are the ones in benchmarks/results/cdnow.json.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from churnguard import backtest as B
from churnguard import stats
from churnguard.errors import DataError

D = dt.date
CAL_END = D(1997, 9, 30)

# y and scores for the hand-checked metrics: positives score 0.4 and 0.8, negatives 0.1 and 0.5
Y4 = np.array([0, 1, 0, 1])
S4 = np.array([0.1, 0.4, 0.5, 0.8])


# --------------------------------------------------------------------------- stats: metrics


def test_weighted_metrics_with_unit_weights_match_hand_values_and_sklearn() -> None:
    w = np.ones((1, 4))
    # pairs (pos, neg): (0.4, 0.1) ok, (0.4, 0.5) wrong, (0.8, 0.1) ok, (0.8, 0.5) ok -> 3/4
    assert stats.weighted_roc_auc(S4, Y4, w)[0] == pytest.approx(0.75)
    # ranked 0.8 (pos, precision 1), 0.5 (neg), 0.4 (pos, precision 2/3) -> (1 + 2/3) / 2
    assert stats.weighted_average_precision(S4, Y4, w)[0] == pytest.approx(5 / 6)
    # (0.01 + 0.36 + 0.25 + 0.04) / 4
    assert stats.weighted_brier(S4, Y4, w)[0] == pytest.approx(0.165)
    assert stats.point_metric("roc_auc", S4, Y4) == pytest.approx(roc_auc_score(Y4, S4))
    assert stats.point_metric("pr_auc", S4, Y4) == pytest.approx(average_precision_score(Y4, S4))


def test_weighted_roc_auc_counts_a_tie_as_one_half() -> None:
    s = np.array([0.1, 0.4, 0.4, 0.8])  # the (0.4 pos, 0.4 neg) pair is tied: 3.5 / 4
    assert stats.weighted_roc_auc(s, Y4, np.ones((1, 4)))[0] == pytest.approx(0.875)
    assert stats.point_metric("roc_auc", s, Y4) == pytest.approx(0.875)


def test_weighted_metrics_with_counts_equal_the_metric_on_the_repeated_rows() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.random(60), 1)  # many ties
    counts = rng.integers(0, 4, 60)
    rep_y, rep_s = np.repeat(y, counts), np.repeat(s, counts)
    w = counts[None, :].astype(float)
    assert stats.weighted_roc_auc(s, y, w)[0] == pytest.approx(roc_auc_score(rep_y, rep_s))
    assert stats.weighted_average_precision(s, y, w)[0] == pytest.approx(
        average_precision_score(rep_y, rep_s)
    )
    assert stats.weighted_brier(s, y, w)[0] == pytest.approx(np.mean((rep_s - rep_y) ** 2))


def test_point_metric_rejects_an_unknown_metric() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        stats.point_metric("accuracy", S4, Y4)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- stats: bootstrap


def test_resample_counts_are_resamples_of_n_and_reproducible() -> None:
    counts = stats.resample_counts(50, 250, seed=3)
    assert [c.shape for c in counts] == [(100, 50), (100, 50), (50, 50)]
    full = np.concatenate(counts)
    assert (full.sum(axis=1) == 50).all()  # each resample draws n rows
    assert (full >= 0).all()
    again = np.concatenate(stats.resample_counts(50, 250, seed=3))
    other = np.concatenate(stats.resample_counts(50, 250, seed=4))
    assert np.array_equal(full, again)
    assert not np.array_equal(full, other)
    with pytest.raises(ValueError):
        stats.resample_counts(0, 10, seed=1)


def test_percentile_ci_is_the_2_5_and_97_5_percentiles() -> None:
    assert stats.percentile_ci(np.arange(101.0)) == (2.5, 97.5)
    assert stats.percentile_ci(np.arange(101.0), level=0.9) == (5.0, 95.0)
    with pytest.raises(ValueError):
        stats.percentile_ci(np.arange(3.0), level=1.0)


def test_rank01_maps_into_unit_interval_keeping_order_and_ties() -> None:
    r = stats.rank01(np.array([3.0, 10.0, 3.0, -1.0]))
    assert r.tolist() == [2.5 / 4, 1.0, 2.5 / 4, 0.25]


@pytest.mark.parametrize("metric", ["roc_auc", "pr_auc", "brier"])
def test_paired_ci_of_a_scorer_against_itself_is_exactly_zero(metric: str) -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    p = rng.random(300)
    assert stats.paired_bootstrap_ci(y, p, p.copy(), metric, n_boot=200, seed=5) == (0.0, 0.0, 0.0)  # type: ignore[arg-type]


def _constructed(n: int = 4000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half the customers churn with probability 0.1, half with 0.9; A knows it, B says 0.5."""
    rng = np.random.default_rng(11)
    q = np.where(np.arange(n) % 2 == 0, 0.1, 0.9)
    y = (rng.random(n) < q).astype(int)
    return y, q, np.full(n, 0.5)


def test_paired_ci_covers_the_true_difference_and_is_deterministic() -> None:
    y, p_a, p_b = _constructed()
    # true Brier: A = E[q(1 - q)] = 0.09, B = 0.25 whatever y -> difference −0.16
    diff, lo, hi = stats.paired_bootstrap_ci(y, p_a, p_b, "brier", n_boot=300, seed=7)
    assert lo <= -0.16 <= hi
    assert lo < diff < hi < 0  # A is clearly better
    # true ROC-AUC: B is constant (0.5 exactly); A = P(q_pos > q_neg) + ½·P(tie), with
    # P(q=0.9 | churn) = 0.9 and P(q=0.9 | stay) = 0.1: 0.9·0.9 + ½·(0.9·0.1 + 0.1·0.9) = 0.9
    d_auc, lo_auc, hi_auc = stats.paired_bootstrap_ci(y, p_a, p_b, "roc_auc", n_boot=300, seed=7)
    assert lo_auc <= 0.9 - 0.5 <= hi_auc
    assert stats.paired_bootstrap_ci(y, p_a, p_b, "brier", n_boot=300, seed=7) == (diff, lo, hi)
    assert stats.paired_bootstrap_ci(y, p_a, p_b, "brier", n_boot=300, seed=8) != (diff, lo, hi)


def test_paired_ci_rejects_arrays_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="one length"):
        stats.paired_bootstrap_ci(Y4, S4, S4[:3], "roc_auc", n_boot=10, seed=1)


# --------------------------------------------------------------------------- split rules


def test_cdnow_split_matches_the_published_cutoffs() -> None:
    """21-day model, weekly cutoffs, as-of 1997-09-30 (benchmarks/results/cdnow.json)."""
    s = B.plan_backtest_split(D(1997, 1, 1), CAL_END, 21, 7)
    assert s.test_cutoff == D(1997, 9, 9)  # 09-30 − 21
    assert s.valid_cutoff == D(1997, 9, 2)  # test − 7
    assert s.train_cutoffs[-1] == D(1997, 8, 12)  # valid − 21
    assert s.train_cutoffs[0] == D(1997, 1, 7)
    assert len(s.train_cutoffs) == 32
    assert s.train_cutoffs[-1] == B.latest_training_cutoff(CAL_END, 21, 7)
    direct = B.plan_backtest_split(D(1997, 1, 1), CAL_END, 92, 7)
    assert (direct.train_cutoffs[0], direct.train_cutoffs[-1]) == (D(1997, 1, 6), D(1997, 3, 17))


def test_horizon_fit_says_which_holdouts_can_be_trained_directly() -> None:
    args = (D(1997, 1, 1), D(1997, 3, 31))
    assert B.horizon_fit(CAL_END, 273, 7, *args) == ("no_fit", D(1996, 3, 26))
    assert B.horizon_fit(CAL_END, 92, 7, *args) == ("acquisition_only", D(1997, 3, 23))
    assert B.horizon_fit(CAL_END, 21, 7, *args) == ("fits", D(1997, 8, 12))


def test_plan_refuses_a_horizon_that_does_not_fit() -> None:
    with pytest.raises(DataError):
        B.plan_backtest_split(D(1997, 1, 1), CAL_END, 273, 7)


@settings(max_examples=150, deadline=None)
@given(
    span=st.integers(10, 800),
    horizon=st.integers(1, 200),
    step=st.integers(1, 60),
)
def test_no_training_label_window_reaches_past_validation_or_as_of(
    span: int, horizon: int, step: int
) -> None:
    data_min = D(2020, 1, 1)
    as_of = data_min + dt.timedelta(days=span)
    try:
        s = B.plan_backtest_split(data_min, as_of, horizon, step)
    except DataError:
        return  # the rule refuses rather than leak; nothing else to check
    h = dt.timedelta(days=horizon)
    assert s.train_cutoffs, "a plan without training cutoffs must raise"
    assert all(c + h <= s.valid_cutoff for c in s.train_cutoffs)
    assert s.valid_cutoff + h <= as_of
    assert s.test_cutoff + h == as_of  # the latest label window ends exactly at as_of
    assert all(c > data_min for c in s.cutoffs)  # every cutoff has history
    assert s.train_cutoffs[-1] <= B.latest_training_cutoff(as_of, horizon, step)
    if horizon % step == 0:
        assert s.train_cutoffs[-1] == B.latest_training_cutoff(as_of, horizon, step)


def test_pseudo_splits_must_end_inside_the_calibration_period() -> None:
    B.check_pseudo_splits([(D(1997, 6, 30), 92), (D(1997, 5, 31), 122)], CAL_END)  # both end 09-30
    with pytest.raises(ValueError, match="after the calibration end"):
        B.check_pseudo_splits([(D(1997, 6, 30), 93)], CAL_END)


# --------------------------------------------------------------------------- chaining


def test_chain_weights_and_cutoffs() -> None:
    assert B.chain_step_weights(21, 273) == [1.0] * 13
    w = B.chain_step_weights(21, 92)  # 4 full steps + 8 days
    assert w == [1.0, 1.0, 1.0, 1.0, pytest.approx(8 / 21)]
    assert sum(w) == pytest.approx(92 / 21)
    cuts = B.chain_cutoffs(CAL_END, 21, 92)
    assert cuts == [CAL_END + dt.timedelta(days=21 * k) for k in range(5)]
    assert all(CAL_END <= c < CAL_END + dt.timedelta(days=92) for c in cuts)
    assert B.chain_cutoffs(CAL_END, 30, 30) == [CAL_END]
    with pytest.raises(ValueError):
        B.chain_steps(0, 30)


@pytest.mark.parametrize("s", [0.3, 0.9, 0.999])
@pytest.mark.parametrize("k", [1, 2, 13])
def test_chaining_a_constant_survival_gives_its_power(s: float, k: int) -> None:
    steps = [pd.Series([s, s], index=["a", "b"])] * k
    out = B.chain_no_purchase(steps, 21, 21 * k)
    assert out.tolist() == pytest.approx([s**k, s**k], rel=1e-12)
    # a final partial step of r days counts as s^(r/h): constant hazard within the step
    partial = B.chain_no_purchase([*steps, steps[0]], 21, 21 * k + 7)
    assert partial.tolist() == pytest.approx([s ** (k + 1 / 3)] * 2, rel=1e-12)


def test_chain_aligns_customers_by_index() -> None:
    first = pd.Series([0.9, 0.5], index=["a", "b"])
    second = pd.Series([0.5, 0.8], index=["b", "a"])  # other order
    out = B.chain_no_purchase([first, second], 10, 20)
    assert out["a"] == pytest.approx(0.9 * 0.8)
    assert out["b"] == pytest.approx(0.5 * 0.5)
    arrays = B.chain_no_purchase([np.array([0.9, 0.5]), np.array([0.8, 0.5])], 10, 20)
    assert arrays.tolist() == pytest.approx([0.72, 0.25])


def test_chain_refuses_missing_customers_and_a_wrong_number_of_steps() -> None:
    first = pd.Series([0.9, 0.5], index=["a", "b"])
    with pytest.raises(ValueError, match="same customers"):
        B.chain_no_purchase([first, pd.Series([0.5], index=["a"])], 10, 20)
    with pytest.raises(ValueError, match="needs 2 step"):
        B.chain_no_purchase([first], 10, 20)


def test_chain_clips_probabilities_into_the_unit_interval() -> None:
    out = B.chain_no_purchase([np.array([0.0, 1.3]), np.array([0.5, 1.0])], 10, 20)
    assert out[0] == pytest.approx(B.P_FLOOR * 0.5)
    assert out[1] == 1.0


# --------------------------------------------------------------------------- comparing scorers


def _table() -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, bool]]:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 1] * 20)
    rng = np.random.default_rng(2)
    noise = rng.random(y.size)
    scores = {
        "churnguard": np.clip(0.2 + 0.6 * y + 0.1 * (noise - 0.5), 0, 1),  # near perfect
        "coin": noise,  # useless, a probability
        "recency": y * 10.0 + noise * 12,  # a rank, not a probability
    }
    return y, scores, {"churnguard": True, "coin": True, "recency": False}


def test_compare_scorers_picks_the_best_baseline_per_metric() -> None:
    y, scores, prob = _table()
    counts = stats.resample_counts(y.size, 200, seed=1)
    res = B.compare_scorers(y, scores, prob, counts, baselines=["coin", "recency"])
    assert res["n"] == 200 and res["churn_rate"] == 0.5
    assert res["base_rate_brier_oracle"] == 0.25
    rows = res["scorers"]
    assert rows["churnguard"]["roc_auc"] == 1.0
    assert rows["recency"]["brier"] is None and "brier_ci95" not in rows["recency"]
    assert rows["coin"]["brier"] == pytest.approx(np.mean((scores["coin"] - y) ** 2))
    assert rows["churnguard"]["roc_auc_ci95"] == [1.0, 1.0]  # separates y in every resample
    lo, hi = rows["coin"]["roc_auc_ci95"]
    assert lo < 0.5 < hi  # noise: the interval covers chance
    best = res["vs_best_baseline"]
    assert best["roc_auc"]["baseline"] == "recency"  # recency beats the coin on ranking
    assert best["brier"]["baseline"] == "coin"  # the only baseline that gives probabilities
    assert best["roc_auc"]["difference"] == pytest.approx(1.0 - rows["recency"]["roc_auc"])
    assert best["brier"]["share_of_resamples_churnguard_better"] == 1.0  # lower Brier wins


def test_compare_scorers_against_a_copy_of_itself_is_a_zero_interval() -> None:
    y, scores, prob = _table()
    scores = {**scores, "twin": scores["churnguard"].copy()}
    prob = {**prob, "twin": True}
    counts = stats.resample_counts(y.size, 100, seed=4)
    res = B.compare_scorers(y, scores, prob, counts, baselines=["twin"])
    for metric in ("roc_auc", "pr_auc", "brier"):
        b = res["vs_best_baseline"][metric]
        assert (b["difference"], b["difference_ci95"]) == (0.0, [0.0, 0.0])
        assert b["share_of_resamples_churnguard_better"] == 0.0  # a tie is not "better"


def test_point_metrics_give_brier_for_probabilities_only() -> None:
    assert B.point_metrics(Y4, S4, probability=False)["brier"] is None
    m = B.point_metrics(Y4, S4, probability=True)
    assert m == {
        "roc_auc": pytest.approx(0.75),
        "pr_auc": pytest.approx(5 / 6),
        "brier": pytest.approx(0.165),
    }


def test_select_variant_takes_the_best_mean_over_splits_of_complete_variants() -> None:
    splits = [
        {
            "chain_a": {"roc_auc": 0.70},
            "chain_b": {"roc_auc": 0.74},
            "chain_c": {"roc_auc": 0.99},
            "rfm": {"roc_auc": 0.9},
        },
        {"chain_a": {"roc_auc": 0.76}, "chain_b": {"roc_auc": 0.72}, "rfm": {"roc_auc": 0.9}},
    ]
    mean_auc, choice = B.select_variant(splits)
    assert mean_auc == {
        "chain_a": 0.73,
        "chain_b": 0.73,
    }  # chain_c missed a split; rfm is no variant
    assert choice == "chain_b"  # a tie goes to the larger name, deterministically
    with pytest.raises(ValueError):
        B.select_variant([{"rfm": {"roc_auc": 0.9}}])


# --------------------------------------------------------------------------- purity


@pytest.mark.parametrize("module", ["stats", "btyd", "backtest"])
def test_backtest_modules_keep_the_pure_module_contract(module: str) -> None:
    """No disk, database, engine or tracking import and no file writer (test_layout's rule).

    backtest takes the split rule (fitting.plan_split) and lift (metrics.lift_at) from pure
    modules, and stats; nothing else outside the pure set.
    """
    from test_layout import PKG, contract_violations

    problems = contract_violations((PKG / f"{module}.py").read_text(encoding="utf-8"))
    allowed = {"imports churnguard.stats"}
    assert set(problems) <= (allowed if module == "backtest" else set()), problems
