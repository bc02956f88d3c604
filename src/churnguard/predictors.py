"""The scorers in memory: the interface every candidate shares and the two baselines.

:class:`FeatureScorer` holds what every scorer kind checks before it scores (the exact
feature list and dtypes it was fitted on, the training label horizon);
:class:`LogisticScorer` and :class:`RecencyScorer` are the baselines that can rank the
lists, as numbers (no pickle) with ``to_dict``/``from_dict``. The LightGBM model
(:class:`churnguard.modeling.ChurnModel`) shares the interface. Folders, files and
digests are :mod:`churnguard.scorers` and :mod:`churnguard.modeling`; nothing here
touches the disk (``from_dict`` checks a dict already read and names its file in errors).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from churnguard.baselines import LogisticBaseline
from churnguard.calibration import CALIBRATOR_KINDS, RETRAIN_HINT, Calibrator, _logit
from churnguard.errors import ModelError

FEATURES_FILE = "features.json"
METADATA_FILE = "metadata.json"
SCORER_FILE = "scorer.json"


def _broken(path: Path, problem: str) -> ModelError:
    """A :class:`ModelError` that names the damaged file, what is wrong and what to do."""
    return ModelError(
        f"{path}: {problem}. The model folder is damaged or was not written by `churnguard train`: {RETRAIN_HINT}"
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _dtype_class(dtype: Any) -> str | None:
    """``"number"`` (int/float), ``"bool"``, or None (text, category, dates: not model input)."""
    if isinstance(dtype, str):
        try:
            dtype = pd.api.types.pandas_dtype(dtype)
        except (TypeError, ValueError):
            return None
    kind = getattr(dtype, "kind", "O")
    return "number" if kind in ("i", "u", "f") else "bool" if kind == "b" else None


def _calibrator_from_json(d: Any, path: Path) -> Calibrator:
    """calibrator.json with a known kind and finite parameters; an unknown kind is refused."""
    kind = d.get("kind") if isinstance(d, dict) else None
    if kind not in CALIBRATOR_KINDS:
        raise _broken(path, f'"kind" is {kind!r}, expected one of {", ".join(CALIBRATOR_KINDS)}')
    if kind == "isotonic":
        x, y = d.get("x"), d.get("y")
        if not (isinstance(x, list) and isinstance(y, list) and x and len(x) == len(y)):
            raise _broken(path, 'isotonic "x" and "y" must be non-empty lists of the same length')
        if not all(_is_number(v) for v in [*x, *y]):
            raise _broken(path, 'isotonic "x" and "y" must hold finite numbers only')
        if any(b < a for a, b in itertools.pairwise(x)) or any(
            b < a for a, b in itertools.pairwise(y)
        ):
            raise _broken(path, 'isotonic "x" and "y" must be non-decreasing')
        if not all(0.0 <= v <= 1.0 for v in y):
            raise _broken(path, 'isotonic "y" must be probabilities in [0, 1]')
    if kind == "sigmoid" and not (_is_number(d.get("a")) and _is_number(d.get("b"))):
        raise _broken(path, 'sigmoid "a" and "b" must be finite numbers')
    return Calibrator.from_dict(d)


class FeatureScorer:
    """What every scorer kind shares (LightGBM model, logistic regression, recency rule):
    the exact feature list it was fitted on, checked before scoring, and the training
    label horizon, checked against ``features.horizon_days``."""

    features: list[str]
    dtypes: dict[str, str]
    metadata: dict[str, Any]
    folder: Path | None
    features_file: str = FEATURES_FILE

    def _file(self, name: str) -> str:
        return str(self.folder / name) if self.folder else f"the model's {name}"

    def check_features(self, frame: pd.DataFrame) -> None:
        """Raise :class:`ModelError` when ``frame`` lacks a feature or holds one the trees cannot read.

        Text, categories and dates are refused rather than coerced (or crashing in ``astype``);
        int and float interchange freely; a bool column may stand for a number (0/1), but a
        number where a bool was trained is refused.
        """
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise ModelError(
                f"feature mismatch: the model was trained on {len(self.features)} features, "
                f"the scoring data lacks {missing}. Re-run `churnguard features` with the same "
                "churnguard version, or retrain (`dvc repro train`)."
            )
        twice = sorted({c for c in frame.columns[frame.columns.duplicated()] if c in self.features})
        if twice:
            raise ModelError(f"the scoring data has the feature column(s) {twice} more than once")
        wrong = []
        for name in self.features:
            got, trained = (
                _dtype_class(frame[name].dtype),
                _dtype_class(self.dtypes.get(name, "float64")),
            )
            if got is None or (trained == "bool" and got != "bool"):
                wrong.append(
                    f"{name} is {frame[name].dtype} (trained as {self.dtypes.get(name, 'float64')})"
                )
        if wrong:
            raise ModelError(
                f"feature type mismatch: {'; '.join(wrong)}. The model ({self._file(self.features_file)}) reads "
                "numbers only. Re-run `churnguard features` with the same churnguard version, or "
                f"{RETRAIN_HINT}."
            )

    def check_horizon(self, horizon_days: int) -> None:
        """Refuse a label horizon other than the training one: p_churn would answer another question."""
        trained = self.metadata.get("horizon_days")
        if not isinstance(trained, int) or isinstance(trained, bool):
            raise ModelError(
                f"{self._file(METADATA_FILE)}: missing, or records no training horizon_days, so the "
                f"model cannot be matched to features.horizon_days ({horizon_days}): {RETRAIN_HINT}"
            )
        if trained != horizon_days:
            raise ModelError(
                f"{self._file(METADATA_FILE)}: model trained for a {trained}-day horizon, "
                f"features.horizon_days is {horizon_days}: set features.horizon_days: {trained} in "
                "params.yaml or retrain (`dvc repro train` or `churnguard train`)"
            )

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """Features in training order as float64; pandas NA becomes NaN (LightGBM's missing)."""
        self.check_features(frame)
        return frame[self.features].to_numpy(dtype="float64", na_value=np.nan)


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
