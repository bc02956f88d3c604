"""Probability calibration: raw scores → calibrated P(churn), fitted in memory.

A :class:`Calibrator` is a handful of numbers (isotonic steps or a sigmoid on the logit);
:func:`fit_calibrator` picks and fits one on validation or out-of-time scores. Saving and
loading them is :mod:`churnguard.modeling`'s job (``calibrator.json``); nothing here
touches the disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from churnguard.errors import ModelError

EPS = 1e-6
P_FLOOR = 1e-3  # calibrated probabilities stay in [0.001, 0.999]
CALIBRATOR_KINDS = ("isotonic", "sigmoid", "identity")
RETRAIN_HINT = "retrain (`dvc repro train` or `churnguard train`) or pass another --model"


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Calibrator:
    """Maps raw scores to calibrated probabilities: isotonic (step function) or sigmoid (Platt)."""

    kind: str  # "isotonic" | "sigmoid" | "identity"
    x: tuple[float, ...] = ()
    y: tuple[float, ...] = ()
    a: float = 1.0
    b: float = 0.0

    def predict(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=float)
        if self.kind == "isotonic":
            # a step with no churner (or no stayer) in validation says 0 (or 1); keep a margin
            return np.clip(np.interp(raw, np.array(self.x), np.array(self.y)), P_FLOOR, 1 - P_FLOOR)
        if self.kind == "sigmoid":
            return 1.0 / (1.0 + np.exp(-(self.a * _logit(raw) + self.b)))
        if self.kind == "identity":
            return np.clip(raw, 0.0, 1.0)
        raise ModelError(
            f"unknown calibrator kind {self.kind!r} (expected one of {CALIBRATOR_KINDS}); {RETRAIN_HINT}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "x": list(self.x), "y": list(self.y), "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibrator:
        return cls(
            d["kind"],
            tuple(d.get("x", ())),
            tuple(d.get("y", ())),
            d.get("a", 1.0),
            d.get("b", 0.0),
        )


def _fit_one(kind: str, raw: np.ndarray, y: np.ndarray) -> Calibrator:
    if kind == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
        return Calibrator(
            "isotonic",
            tuple(round(float(v), 10) for v in iso.X_thresholds_),
            tuple(round(float(v), 10) for v in iso.y_thresholds_),
        )
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(raw).reshape(-1, 1), y)
    return Calibrator(
        "sigmoid", a=round(float(lr.coef_[0, 0]), 10), b=round(float(lr.intercept_[0]), 10)
    )


def _brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def fit_calibrator(
    raw: np.ndarray, y: np.ndarray, method: str = "auto", seed: int = 0
) -> tuple[Calibrator, dict[str, float]]:
    """Fit a calibrator on validation scores; ``auto`` picks the lower 5-fold CV Brier.

    Cross-validation inside the validation cutoff keeps isotonic regression from winning
    just because it memorises the data it is scored on.
    """
    raw = np.asarray(raw, dtype=float)
    y = np.asarray(y, dtype=int)
    if len(np.unique(y)) < 2:
        raise ModelError("cannot calibrate: the validation cutoff has a single class")
    kinds = ["isotonic", "sigmoid"] if method == "auto" else [method]
    cv_brier: dict[str, float] = {}
    if len(kinds) > 1:
        n_splits = int(min(5, np.bincount(y).min()))
        if n_splits >= 2:
            folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            for kind in kinds:
                pred = np.empty_like(raw)
                for tr, te in folds.split(raw, y):
                    pred[te] = _fit_one(kind, raw[tr], y[tr]).predict(raw[te])
                cv_brier[kind] = round(_brier(pred, y), 6)
            kinds = [min(cv_brier, key=lambda k: (cv_brier[k], k))]
        else:
            kinds = ["sigmoid"]
    return _fit_one(kinds[0], raw, y), cv_brier
