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
import pandas as pd
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


@dataclass(frozen=True)
class BtydStack:
    """``train.stack_btyd``: the calibrator on two inputs, the model and Pareto/NBD.

    P(churn) = σ(a·logit(raw) + c·logit(P_pn) + b), where P_pn is the Pareto/NBD
    P(no purchase in the next ``horizon_days``) (:mod:`churnguard.paretonbd`) under the
    population parameters ``params`` fitted on the snapshot of the newest labelled cutoff
    (history only, no labels). (a, c, b) are a logistic regression on out-of-time
    predictions, as the one-input calibrator is.
    """

    params: dict[str, float]
    horizon_days: float
    a: float
    c: float
    b: float

    def combine(self, raw: np.ndarray, p_none: np.ndarray) -> np.ndarray:
        z = self.a * _logit(np.asarray(raw, float)) + self.c * _logit(np.asarray(p_none, float))
        return np.clip(1.0 / (1.0 + np.exp(-(z + self.b))), P_FLOOR, 1 - P_FLOOR)

    def p_none(self, frame: pd.DataFrame) -> np.ndarray:
        from churnguard.paretonbd import snapshot_no_purchase

        missing = [c for c in STACK_COLUMNS if c not in frame.columns]
        if missing:
            raise ModelError(f"the Pareto/NBD stack needs the snapshot column(s) {missing}")
        return snapshot_no_purchase(frame, self.horizon_days, self.params)

    def predict(self, raw: np.ndarray, frame: pd.DataFrame) -> np.ndarray:
        return self.combine(raw, self.p_none(frame))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "paretonbd_logit",
            "params": dict(self.params),
            "horizon_days": self.horizon_days,
            "a": self.a,
            "c": self.c,
            "b": self.b,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BtydStack:
        return cls(dict(d["params"]), float(d["horizon_days"]), d["a"], d["c"], d["b"])

    @classmethod
    def fit(
        cls,
        raw: np.ndarray,
        p_none: np.ndarray,
        y: np.ndarray,
        params: dict[str, float],
        horizon_days: float,
    ) -> BtydStack:
        """(a, c, b) by an (essentially unpenalised) logistic regression of ``y`` on
        [logit raw, logit p_none]; ``params`` are what scoring evaluates P_pn with."""
        x = np.column_stack([_logit(np.asarray(raw, float)), _logit(np.asarray(p_none, float))])
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(x, np.asarray(y, dtype=int))
        a, c = (round(float(v), 10) for v in lr.coef_[0])
        return cls(dict(params), float(horizon_days), a, c, round(float(lr.intercept_[0]), 10))


STACK_COLUMNS = ("purchase_days", "tenure_days", "recency_days")


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
