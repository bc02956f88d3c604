"""Every list says how good its scorer is against the baselines, and when the evidence is
weak it says so."""

from __future__ import annotations

import pytest

from churnguard.scoring import model_quality

GOOD = {
    "model": {"roc_auc": 0.783, "pr_auc": 0.817, "brier": 0.189},
    "model_raw": {"roc_auc": 0.783, "pr_auc": 0.817, "brier": 0.198},
    "logreg": {"roc_auc": 0.774, "pr_auc": 0.795, "brier": 0.192},
    "recency_rank": {"roc_auc": 0.756, "pr_auc": 0.782, "brier": 0.199},
    "rfm": {"roc_auc": 0.704, "pr_auc": 0.721, "brier": 0.215},
}


def test_a_model_that_beats_its_baselines_is_reported_without_warning():
    quality, warnings = model_quality(GOOD)
    assert warnings == []
    assert quality["evaluated"] and quality["best_baseline"] == "logreg"
    assert quality["best_baseline_label"] == "logistic regression"
    assert quality["lead_roc_auc"] == pytest.approx(0.009)
    assert set(quality["baselines_roc_auc"]) == {"logreg", "recency_rank", "rfm"}  # not model_raw


@pytest.mark.parametrize(
    ("model_auc", "needles"),
    [
        (0.774, ["does not rank customers better", "logistic regression"]),
        (0.52, ["does not rank customers better", "barely better than chance"]),
    ],
    ids=["tied with the best baseline", "the one-year e-commerce case: 0.52"],
)
def test_weak_evidence_is_said(model_auc, needles):
    evaluation = {**GOOD, "model": {**GOOD["model"], "roc_auc": model_auc}}
    if model_auc < 0.6:
        evaluation = {k: {**v, "roc_auc": min(v["roc_auc"], 0.52)} for k, v in evaluation.items()}
    _, warnings = model_quality(evaluation)
    text = " ".join(warnings)
    assert all(n in text for n in needles)


@pytest.mark.parametrize(
    "evaluation", [None, {}, {"logreg": {"roc_auc": 0.7}}], ids=["none", "empty", "no model"]
)
def test_an_unevaluated_model_is_said(evaluation):
    quality, warnings = model_quality(evaluation)
    assert quality == {"evaluated": False, "scorer": "model", "scorer_label": "LightGBM model"}
    assert len(warnings) == 1 and "churnguard evaluate" in warnings[0]


def test_a_baseline_ranking_the_lists_is_said_with_the_models_figure():
    quality, warnings = model_quality(
        GOOD, "logreg", ["lead +0.001, 95% paired-bootstrap interval [-0.004, +0.006]"]
    )
    assert quality["scorer"] == "logreg" and quality["scorer_label"] == "logistic regression"
    assert quality["roc_auc"] == GOOD["logreg"]["roc_auc"]
    assert quality["model_roc_auc"] == GOOD["model"]["roc_auc"]
    assert quality["best_baseline"] == "recency_rank"  # the best *other* baseline
    assert "logreg" not in quality["baselines_roc_auc"]
    assert len(warnings) == 1 and "ranked by a simple baseline (logistic regression)" in warnings[0]
    assert "[-0.004, +0.006]" in warnings[0]


def test_the_roc_auc_warning_threshold_comes_from_params():
    _, warnings = model_quality(GOOD, warn_below_roc_auc=0.8)
    assert any("score.warn_below_roc_auc is 0.8" in w for w in warnings)
