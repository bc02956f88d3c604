"""The gate: which scorer ranks the lists, and when a new one replaces the champion.

Two questions, both answered on the test cutoff (the latest labelled date, never used to
fit or tune anything):

1. **Which scorer of this training run?** The LightGBM model has to earn its place: it
   is chosen only when the lower bound of its paired-bootstrap lead over the best baseline
   scorer (logistic regression or days since last purchase), on ``evaluate.primary_metric``,
   is above 0. Otherwise that baseline is chosen and the lists are ranked by it. A tie
   is not a lead.
2. **Does it replace the current champion?** Only when it is at least as good on the same
   rows by the primary metric (no tolerance for getting worse).

Pure functions: no I/O, no MLflow (that is :mod:`churnguard.registry`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from churnguard.baselines import BASELINE_SCORERS, MODEL, SCORER_LABELS
from churnguard.stats import paired_bootstrap_ci, point_metric

PRIMARY_METRICS = ("roc_auc", "pr_auc", "brier")
HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "brier": False}
METRIC_LABELS = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "brier": "Brier score"}
BOOTSTRAP_SEED = 20240601  # fixed: the same predictions always give the same decision


@dataclass(frozen=True)
class Choice:
    """The scorer chosen among one training run's candidates, and why."""

    scorer: str
    primary_metric: str
    values: dict[str, float]  # primary metric per candidate on the test cutoff
    best_baseline: str
    lead: float  # the model's advantage over the best baseline (> 0: model better)
    lead_ci: tuple[float, float]
    confidence: float
    resamples: int
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lead_ci"] = list(self.lead_ci)
        d["label"] = SCORER_LABELS.get(self.scorer, self.scorer)
        d["best_baseline_label"] = SCORER_LABELS.get(self.best_baseline, self.best_baseline)
        return d


def advantage(metric: str, a: float, b: float) -> float:
    """How much better ``a`` is than ``b`` (positive = better), whichever way the metric points."""
    return (a - b) if HIGHER_IS_BETTER[metric] else (b - a)


def choose_scorer(
    y: np.ndarray,
    scores: Mapping[str, np.ndarray],
    primary: str,
    resamples: int,
    confidence: float,
) -> Choice:
    """Pick the model only when its paired-bootstrap lead over the best baseline is sure.

    ``scores`` maps scorer names (``model`` and the baseline scorers present) to
    calibrated probabilities on the same test rows as ``y``.
    """
    if primary not in PRIMARY_METRICS:
        raise ValueError(f"primary metric must be one of {PRIMARY_METRICS}, got {primary!r}")
    y = np.asarray(y, dtype=int)
    if np.unique(y).size < 2 and primary != "brier":
        raise ValueError(f"{primary} is undefined on a test cutoff with a single class")
    if MODEL not in scores:
        raise ValueError("no model scores to choose from")
    present = [b for b in BASELINE_SCORERS if b in scores]
    if not present:
        raise ValueError(f"no baseline scorer ({', '.join(BASELINE_SCORERS)}) to compare with")
    values = {name: round(point_metric(primary, np.asarray(scores[name]), y), 6) for name in scores}
    sign = 1.0 if HIGHER_IS_BETTER[primary] else -1.0
    best = max(present, key=lambda b: (sign * values[b], -present.index(b)))
    diff, lo, hi = paired_bootstrap_ci(
        y,
        np.asarray(scores[MODEL], dtype=float),
        np.asarray(scores[best], dtype=float),
        primary,
        resamples,
        BOOTSTRAP_SEED,
        confidence,
    )
    lead, ci = (diff, (lo, hi)) if sign > 0 else (-diff, (-hi, -lo))
    lead, ci = round(lead, 6), (round(ci[0], 6), round(ci[1], 6))
    label, metric = SCORER_LABELS[best], METRIC_LABELS[primary]
    pct = f"{confidence:.0%}"
    if ci[0] > 0:
        scorer = MODEL
        reasons = [
            f"the LightGBM model leads the best baseline ({label}) on {metric} by {lead:+.4f}, "
            f"{pct} paired-bootstrap interval [{ci[0]:+.4f}, {ci[1]:+.4f}] (above 0): the "
            "model ranks the lists"
        ]
    else:
        scorer = best
        reasons = [
            f"the LightGBM model's lead over the best baseline ({label}) on {metric} is "
            f"{lead:+.4f}, {pct} paired-bootstrap interval [{ci[0]:+.4f}, {ci[1]:+.4f}], which "
            f"does not exclude 0: the {label} baseline ranks the lists"
        ]
    return Choice(scorer, primary, values, best, lead, ci, confidence, resamples, reasons)


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)


def replaces_champion(
    primary: str,
    candidate: float | None,
    champion: float | None,
    champion_version: str,
) -> GateDecision:
    """A candidate replaces the champion only when at least as good on the same rows."""
    metric = METRIC_LABELS[primary]
    if candidate is None or not np.isfinite(candidate):
        return GateDecision(False, [f"the candidate's {metric} is undefined on the test rows"])
    if champion is None:
        return GateDecision(True, ["no current champion"])
    if advantage(primary, candidate, champion) >= 0:
        return GateDecision(
            True,
            [
                f"{metric} {candidate:.4f} is at least as good as champion v{champion_version}'s "
                f"{champion:.4f} on the same test rows"
            ],
        )
    return GateDecision(
        False,
        [
            f"{metric} {candidate:.4f} is worse than champion v{champion_version}'s "
            f"{champion:.4f} on the same test rows: the champion stays (no tolerance for a "
            "worse model; `churnguard promote --force --reason ...` overrides)"
        ],
    )
