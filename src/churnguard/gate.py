"""The registry gate: a model becomes ``champion`` only when it earns it.

It must beat every baseline on the test cutoff's ROC-AUC and PR-AUC, and must not fall
more than ``train.gate_tolerance`` below the current champion scored on the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

GATE_METRICS = ("roc_auc", "pr_auc")


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)


def gate_decision(
    model: Mapping[str, float],
    baselines: Mapping[str, Mapping[str, float]],
    champion: Mapping[str, float] | None,
    tolerance: float,
    model_vs_champion: Mapping[str, float] | None = None,
) -> GateDecision:
    """Decide promotion from test metrics; every reason is a sentence a person can read.

    ``model_vs_champion``: the candidate's metrics computed exactly as the champion's (same
    rows, same probabilities path); defaults to ``model``."""
    reasons: list[str] = []
    ok = True
    for metric in GATE_METRICS:
        mine = model.get(metric)
        if mine is None:
            return GateDecision(
                False, [f"{metric} is undefined on the test cutoff (a single class)"]
            )
        for name, scores in sorted(baselines.items()):
            theirs = scores.get(metric)
            if theirs is None:
                continue
            if mine > theirs:
                reasons.append(f"{metric} {mine:.4f} beats baseline {name} ({theirs:.4f})")
            else:
                ok = False
                reasons.append(f"{metric} {mine:.4f} does not beat baseline {name} ({theirs:.4f})")
    if champion is None:
        reasons.append("no current champion")
    else:
        for metric in GATE_METRICS:
            mine = float((model_vs_champion or model)[metric])
            theirs = float(champion[metric])
            if mine >= theirs - tolerance:
                reasons.append(
                    f"{metric} {mine:.4f} vs champion {theirs:.4f}: within tolerance {tolerance}"
                )
            else:
                ok = False
                reasons.append(
                    f"{metric} {mine:.4f} regresses against champion {theirs:.4f} "
                    f"by more than train.gate_tolerance={tolerance}"
                )
    return GateDecision(ok, reasons)
