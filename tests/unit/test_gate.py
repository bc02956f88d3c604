"""The gate: the LightGBM model ranks the lists only when its lead over the best baseline
is sure (paired bootstrap), and nothing replaces the champion by getting worse."""

from __future__ import annotations

import numpy as np
import pytest

from churnguard.gate import choose_scorer, replaces_champion


def _population(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-2 * latent))).astype(int)
    return y, latent


def _prob(score: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-score))


def test_a_model_tied_with_a_baseline_does_not_rank_the_lists():
    y, latent = _population()
    same = _prob(latent)
    choice = choose_scorer(
        y, {"model": same, "logreg": same, "recency_rank": _prob(-latent)}, "roc_auc", 500, 0.95
    )
    assert choice.scorer == "logreg"
    assert choice.best_baseline == "logreg"
    assert choice.lead == 0 and choice.lead_ci == (0.0, 0.0)
    assert "does not exclude 0" in choice.reasons[0]


def test_a_model_with_a_sure_lead_ranks_the_lists():
    y, latent = _population()
    rng = np.random.default_rng(1)
    model = _prob(latent + rng.normal(scale=0.3, size=latent.size))
    logreg = _prob(latent + rng.normal(scale=1.5, size=latent.size))
    recency = _prob(latent + rng.normal(scale=3.0, size=latent.size))
    choice = choose_scorer(
        y, {"model": model, "logreg": logreg, "recency_rank": recency}, "roc_auc", 500, 0.95
    )
    assert choice.scorer == "model"
    assert choice.best_baseline == "logreg"  # the better of the two baselines
    assert choice.lead > 0 and choice.lead_ci[0] > 0
    assert choice.lead_ci[0] <= choice.lead <= choice.lead_ci[1]
    assert choice.values["model"] > choice.values["logreg"] > choice.values["recency_rank"]


def test_a_lead_within_the_noise_is_not_enough():
    y, latent = _population(n=400, seed=3)
    rng = np.random.default_rng(4)
    base = latent + rng.normal(scale=1.0, size=latent.size)
    model = base + rng.normal(scale=0.05, size=latent.size)  # a hair different from the baseline
    choice = choose_scorer(y, {"model": _prob(model), "logreg": _prob(base)}, "roc_auc", 1000, 0.95)
    assert choice.lead_ci[0] <= 0 <= choice.lead_ci[1]
    assert choice.scorer == "logreg"


def test_brier_points_the_other_way():
    """For the Brier score lower is better: a lead is the baseline's Brier minus the model's."""
    y, latent = _population()
    good = _prob(2 * latent)  # the true probabilities
    flat = np.full(latent.size, y.mean())  # the base rate for everyone
    choice = choose_scorer(y, {"model": good, "logreg": flat}, "brier", 500, 0.95)
    assert choice.values["model"] < choice.values["logreg"]
    assert choice.lead > 0 and choice.lead_ci[0] > 0 and choice.scorer == "model"
    reverse = choose_scorer(y, {"model": flat, "logreg": good}, "brier", 500, 0.95)
    assert reverse.lead < 0 and reverse.scorer == "logreg"


def test_the_same_predictions_always_give_the_same_decision():
    y, latent = _population(n=500)
    rng = np.random.default_rng(9)
    scores = {
        "model": _prob(latent + rng.normal(size=latent.size)),
        "logreg": _prob(latent + rng.normal(size=latent.size)),
    }
    assert choose_scorer(y, scores, "pr_auc", 300, 0.9) == choose_scorer(
        y, scores, "pr_auc", 300, 0.9
    )


def test_choose_scorer_refuses_what_it_cannot_decide():
    y, latent = _population(n=100)
    with pytest.raises(ValueError, match="no baseline scorer"):
        choose_scorer(y, {"model": _prob(latent), "rfm": _prob(latent)}, "roc_auc", 100, 0.95)
    with pytest.raises(ValueError, match="single class"):
        choose_scorer(np.zeros(100, int), {"model": _prob(latent), "logreg": _prob(latent)},
                      "roc_auc", 100, 0.95)  # fmt: skip
    with pytest.raises(ValueError, match="primary metric"):
        choose_scorer(y, {"model": _prob(latent), "logreg": _prob(latent)}, "f1", 100, 0.95)


@pytest.mark.parametrize(
    ("primary", "candidate", "champion", "promote"),
    [
        ("roc_auc", 0.78, 0.78, True),  # at least as good: equal counts
        ("roc_auc", 0.7799999, 0.78, False),  # no tolerance for getting worse
        ("roc_auc", 0.79, 0.78, True),
        ("brier", 0.18, 0.19, True),  # lower Brier is better
        ("brier", 0.19, 0.18, False),
        ("roc_auc", 0.70, None, True),  # no champion yet
        ("roc_auc", None, 0.70, False),  # undefined candidate
    ],
)
def test_a_candidate_replaces_the_champion_only_when_at_least_as_good(
    primary, candidate, champion, promote
):
    decision = replaces_champion(primary, candidate, champion, "4")
    assert decision.promote is promote
    if champion is not None and candidate is not None and not promote:
        assert "champion v4" in decision.reasons[0] and "no tolerance" in decision.reasons[0]
