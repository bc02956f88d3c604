"""The churn model as files: LightGBM booster + probability calibrator + feature list.

``models/`` holds ``booster.txt`` (LightGBM text format), ``calibrator.json``,
``features.json`` (names and dtypes, checked at scoring time) and ``metadata.json``.
No pickles: every file is text, diffable and byte-stable for the same training data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from churnguard.errors import ModelError
from churnguard.io import dumps_json, write_text_atomic

BOOSTER_FILE = "booster.txt"
CALIBRATOR_FILE = "calibrator.json"
FEATURES_FILE = "features.json"
METADATA_FILE = "metadata.json"
EPS = 1e-6
P_FLOOR = 1e-3  # calibrated probabilities stay in [0.001, 0.999]


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
        return np.clip(raw, 0.0, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "x": list(self.x), "y": list(self.y), "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibrator:
        return cls(d["kind"], tuple(d.get("x", ())), tuple(d.get("y", ())), d.get("a", 1.0), d.get("b", 0.0))


def _fit_one(kind: str, raw: np.ndarray, y: np.ndarray) -> Calibrator:
    if kind == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
        return Calibrator(
            "isotonic",
            tuple(round(float(v), 10) for v in iso.X_thresholds_),
            tuple(round(float(v), 10) for v in iso.y_thresholds_),
        )
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(raw).reshape(-1, 1), y)
    return Calibrator("sigmoid", a=round(float(lr.coef_[0, 0]), 10), b=round(float(lr.intercept_[0]), 10))


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


@dataclass
class ChurnModel:
    """Booster + calibrator + the exact feature list it was trained on."""

    booster: lgb.Booster
    calibrator: Calibrator
    features: list[str]
    dtypes: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def check_features(self, frame: pd.DataFrame) -> None:
        """Raise :class:`ModelError` when ``frame`` lacks features the model needs."""
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise ModelError(
                f"feature mismatch: the model was trained on {len(self.features)} features, "
                f"the scoring data lacks {missing}. Re-run `churnguard features` with the same "
                "churnguard version, or retrain (`dvc repro train`)."
            )

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        self.check_features(frame)
        return frame[self.features].astype("float64").to_numpy()

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster.predict(self.matrix(frame)), dtype=float)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated P(churn within the horizon)."""
        return self.calibrator.predict(self.predict_raw(frame))

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per-feature SHAP contributions (log-odds) from LightGBM's own TreeSHAP."""
        contrib = self.booster.predict(self.matrix(frame), pred_contrib=True)
        return pd.DataFrame(contrib[:, :-1], columns=self.features, index=frame.index)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / BOOSTER_FILE, self.booster.model_to_string())
        write_text_atomic(folder / CALIBRATOR_FILE, dumps_json(self.calibrator.to_dict()))
        write_text_atomic(
            folder / FEATURES_FILE,
            dumps_json({"features": self.features, "dtypes": self.dtypes}),
        )
        write_text_atomic(folder / METADATA_FILE, dumps_json(self.metadata))

    @classmethod
    def load(cls, folder: str | Path) -> ChurnModel:
        folder = Path(folder)
        needed = [BOOSTER_FILE, CALIBRATOR_FILE, FEATURES_FILE]
        missing = [n for n in needed if not (folder / n).exists()]
        if missing:
            raise ModelError(f"{folder}: not a churnguard model folder (missing {missing}); run `churnguard train`")
        booster = lgb.Booster(model_str=(folder / BOOSTER_FILE).read_text(encoding="utf-8"))
        calibrator = Calibrator.from_dict(json.loads((folder / CALIBRATOR_FILE).read_text(encoding="utf-8")))
        feats = json.loads((folder / FEATURES_FILE).read_text(encoding="utf-8"))
        meta_path = folder / METADATA_FILE
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
        if list(booster.feature_name()) != list(feats["features"]):
            raise ModelError(f"{folder}: booster features differ from features.json; retrain")
        return cls(booster, calibrator, list(feats["features"]), dict(feats.get("dtypes", {})), meta)
