"""The scorers a list can be ranked by: the LightGBM model and two baselines, one interface.

The champion is whichever scorer wins the gate (:mod:`churnguard.gate`), so every
candidate offers what scoring needs: calibrated P(churn) (``predict``), per-feature
contributions in log-odds for the reasons (``contributions``), the feature and horizon
checks, and a folder of plain-text files that the MLflow pyfunc loads.

- ``model``: the LightGBM booster (:class:`churnguard.modeling.ChurnModel`), folder
  ``models/`` with ``booster.txt`` etc.
- ``logreg``: :class:`LogisticScorer`, the logistic regression on the model's features
  (median imputation with missing indicators, standard scaling), calibrated on the same
  validation cutoff. Its contributions are exact: coefficient × standardised value (the
  indicator's term added to its feature), i.e. the log-odds gap to an average customer.
- ``recency_rank``: :class:`RecencyScorer`, days since the last purchase mapped to P(churn)
  by an isotonic calibrator. Its one contribution is on ``recency_days``: the log-odds gap
  between the customer's probability and that of a typical (median) silence.

A baseline folder (``models/baselines/<name>/``) holds ``scorer.json`` (kind, features,
fitted numbers, calibrator) and ``metadata.json`` (training horizon, cutoffs). No pickles.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from churnguard.baselines import BASELINE_SCORERS, CANDIDATES, MODEL, LogisticBaseline
from churnguard.errors import ModelError
from churnguard.io import dumps_json, file_md5, write_text_atomic
from churnguard.modeling import (
    BOOSTER_FILE,
    CALIBRATOR_FILE,
    FEATURES_FILE,
    METADATA_FILE,
    Calibrator,
    ChurnModel,
    FeatureScorer,
    _broken,
    _calibrator_from_json,
    _is_number,
    _logit,
    _metadata_from_json,
    _read_json,
)

SCORER_FILE = "scorer.json"
BASELINES_DIR = "baselines"
DRIFT_FILE = "drift_reference.json"  # training feature distributions, beside every scorer
GATE_FILE = "gate.json"  # in <model_dir>/eval: the scorer the gate chose for the lists
EVALUATED_DIR = "eval/evaluated"  # under <model_dir>: the LightGBM fit the gate judges


def _floats(values: Any, path: Path, what: str, n: int | None = None) -> np.ndarray:
    if not isinstance(values, list) or not all(_is_number(v) for v in values):
        raise _broken(path, f'"{what}" must be a list of finite numbers')
    if n is not None and len(values) != n:
        raise _broken(path, f'"{what}" has {len(values)} entries, expected {n}')
    return np.asarray(values, dtype=float)


@dataclass
class LogisticScorer(FeatureScorer):
    """Logistic regression as numbers: impute → indicators → standardise → logit → calibrate."""

    kind: ClassVar[str] = "logreg"
    features_file: ClassVar[str] = SCORER_FILE
    features: list[str]
    medians: np.ndarray  # per feature, for missing values
    indicators: list[int]  # features with a missing-value indicator column, in order
    mean: np.ndarray  # standardisation of [features, indicators]
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    calibrator: Calibrator
    metadata: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None
    dtypes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_fitted(
        cls, fitted: LogisticBaseline, calibrator: Calibrator, metadata: dict[str, Any]
    ) -> LogisticScorer:
        """Copy the numbers out of a fitted :class:`LogisticBaseline` (no pickle kept)."""
        pipe = fitted.pipeline_
        imputer, scaler, lr = pipe.named_steps["impute"], pipe.named_steps["scale"], pipe[-1]
        indicator = imputer.indicator_
        features = [str(c) for c in fitted.feature_names_in_]
        return cls(
            features=features,
            medians=np.asarray(imputer.statistics_, dtype=float),
            indicators=[int(i) for i in (indicator.features_ if indicator is not None else [])],
            mean=np.asarray(scaler.mean_, dtype=float),
            scale=np.asarray(scaler.scale_, dtype=float),
            coef=np.asarray(lr.coef_[0], dtype=float),
            intercept=float(lr.intercept_[0]),
            calibrator=calibrator,
            metadata=metadata,
            dtypes={f: "float64" for f in features},
        )

    def _terms(self, frame: pd.DataFrame) -> np.ndarray:
        """coefficient × standardised value for every feature and indicator column."""
        x = self.matrix(frame)
        missing = ~np.isfinite(x)  # NaN and ±inf are missing, as when it was fitted
        filled = np.where(missing, self.medians, x)
        full = np.hstack([filled, missing[:, self.indicators].astype(float)])
        return (full - self.mean) / self.scale * self.coef

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        logit = self._terms(frame).sum(axis=1) + self.intercept
        return 1.0 / (1.0 + np.exp(-logit))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated P(churn within the horizon)."""
        return self.calibrator.predict(self.predict_raw(frame))

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        terms = self._terms(frame)
        n = len(self.features)
        contrib = terms[:, :n].copy()
        for j, feature_index in enumerate(self.indicators):
            contrib[:, feature_index] += terms[:, n + j]
        return pd.DataFrame(contrib, columns=self.features, index=frame.index)

    def to_dict(self) -> dict[str, Any]:
        def r(a: np.ndarray) -> list[float]:
            return [float(v) for v in a]

        return {
            "kind": self.kind,
            "features": self.features,
            "medians": r(self.medians),
            "indicators": self.indicators,
            "mean": r(self.mean),
            "scale": r(self.scale),
            "coef": r(self.coef),
            "intercept": float(self.intercept),
            "calibrator": self.calibrator.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: Path, meta: dict[str, Any]) -> LogisticScorer:
        feats = d.get("features")
        if not isinstance(feats, list) or not feats or not all(isinstance(f, str) for f in feats):
            raise _broken(path, '"features" must be a non-empty list of column names')
        n = len(feats)
        ind = d.get("indicators")
        if not isinstance(ind, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n for i in ind
        ):
            raise _broken(path, f'"indicators" must list feature positions in [0, {n})')
        width = n + len(ind)
        scale = _floats(d.get("scale"), path, "scale", width)
        if (scale <= 0).any():
            raise _broken(path, '"scale" must be positive')
        if not _is_number(d.get("intercept")):
            raise _broken(path, '"intercept" must be a finite number')
        return cls(
            features=feats,
            medians=_floats(d.get("medians"), path, "medians", n),
            indicators=ind,
            mean=_floats(d.get("mean"), path, "mean", width),
            scale=scale,
            coef=_floats(d.get("coef"), path, "coef", width),
            intercept=float(d["intercept"]),
            calibrator=_calibrator_from_json(d.get("calibrator"), path),
            metadata=meta,
            folder=path.parent,
            dtypes={f: "float64" for f in feats},
        )


@dataclass
class RecencyScorer(FeatureScorer):
    """Days since the last purchase → P(churn) through an isotonic calibrator."""

    kind: ClassVar[str] = "recency_rank"
    features_file: ClassVar[str] = SCORER_FILE
    calibrator: Calibrator
    reference_days: (
        float  # a typical silence (median on validation): contributions are relative to it
    )
    metadata: dict[str, Any] = field(default_factory=dict)
    folder: Path | None = None
    features: list[str] = field(default_factory=lambda: ["recency_days"])
    dtypes: dict[str, str] = field(default_factory=lambda: {"recency_days": "float64"})

    def _days(self, frame: pd.DataFrame) -> np.ndarray:
        days = self.matrix(frame)[:, 0]
        return np.where(np.isnan(days), np.inf, days)  # no purchase on record: longest silence

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.calibrator.predict(self._days(frame))

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        p = self.predict(frame)
        ref = self.calibrator.predict(np.array([self.reference_days]))
        return pd.DataFrame(
            {"recency_days": _logit(p) - _logit(ref)[0]}, index=frame.index, dtype=float
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "features": self.features,
            "reference_days": float(self.reference_days),
            "calibrator": self.calibrator.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: Path, meta: dict[str, Any]) -> RecencyScorer:
        if d.get("features") != ["recency_days"]:
            raise _broken(path, '"features" must be ["recency_days"]')
        if not _is_number(d.get("reference_days")):
            raise _broken(path, '"reference_days" must be a finite number')
        return cls(
            calibrator=_calibrator_from_json(d.get("calibrator"), path),
            reference_days=float(d["reference_days"]),
            metadata=meta,
            folder=path.parent,
        )


AnyScorer = ChurnModel | LogisticScorer | RecencyScorer

BASELINE_CLASSES: dict[str, type[LogisticScorer] | type[RecencyScorer]] = {
    "logreg": LogisticScorer,
    "recency_rank": RecencyScorer,
}


def save_scorer(scorer: LogisticScorer | RecencyScorer, folder: str | Path) -> None:
    """Write a baseline scorer folder: ``scorer.json`` + ``metadata.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / SCORER_FILE, dumps_json(scorer.to_dict()))
    write_text_atomic(folder / METADATA_FILE, dumps_json(scorer.metadata))


def load_scorer(folder: str | Path) -> AnyScorer:
    """Any scorer folder: a baseline (``scorer.json``) or the LightGBM model (``booster.txt``)."""
    folder = Path(folder)
    path = folder / SCORER_FILE
    if not path.exists():
        return ChurnModel.load(folder)
    d = _read_json(path)
    kind = d.get("kind") if isinstance(d, dict) else None
    cls = BASELINE_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise _broken(path, f'"kind" is {kind!r}, expected one of {sorted(BASELINE_CLASSES)}')
    meta_path = folder / METADATA_FILE
    meta = _metadata_from_json(_read_json(meta_path), meta_path) if meta_path.exists() else {}
    return cls.from_dict(d, path, meta)


def scorer_files(folder: str | Path) -> list[str]:
    """The files that define the scorer in ``folder`` (what its digest covers)."""
    folder = Path(folder)
    if (folder / SCORER_FILE).exists():
        return [SCORER_FILE]
    return [BOOSTER_FILE, CALIBRATOR_FILE, FEATURES_FILE]


def scorer_digest(folder: str | Path) -> str:
    """md5 over the md5 of each defining file (``booster.txt`` + ``calibrator.json`` +
    ``features.json`` for LightGBM, as before; ``scorer.json`` for a baseline)."""
    folder = Path(folder)
    h = hashlib.md5()
    for name in scorer_files(folder):
        if not (folder / name).exists():
            raise ModelError(f"{folder}: missing {name}; re-run `churnguard train`")
        h.update(file_md5(folder / name).encode())
    return h.hexdigest()


def scorer_folder(model_dir: str | Path, name: str) -> Path:
    """Where the scorer ``name`` of one training run lives under its model folder."""
    if name == MODEL:
        return Path(model_dir)
    if name not in BASELINE_SCORERS:
        raise ModelError(f"unknown scorer {name!r}; expected one of {list(CANDIDATES)}")
    return Path(model_dir) / BASELINES_DIR / name


def evaluated_folder(model_dir: str | Path) -> Path:
    """The LightGBM fit the gate judges on the test cutoff: ``<model_dir>/eval/evaluated``
    (the shipped model in ``<model_dir>`` is a refit of it when ``train.refit``); the model
    folder itself for models trained before refits existed."""
    folder = Path(model_dir) / EVALUATED_DIR
    return folder if (folder / BOOSTER_FILE).exists() else Path(model_dir)


def find_scorer_folder(root: str | Path) -> Path | None:
    """The outermost folder under ``root`` holding a scorer (``booster.txt`` or
    ``scorer.json``): a registered LightGBM model's copy also holds its baselines below it."""
    root = Path(root)
    found = [p.parent for name in (BOOSTER_FILE, SCORER_FILE) for p in root.rglob(name)]
    return min(found, key=lambda p: (len(p.parts), str(p))) if found else None


def read_drift_reference(folder: str | Path) -> dict[str, Any] | None:
    """The training feature profile saved beside a scorer (None for older models)."""
    path = Path(folder) / DRIFT_FILE
    if not path.exists():
        return None
    d = _read_json(path)
    return d if isinstance(d, dict) else None
