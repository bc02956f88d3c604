"""Baselines the model must beat, scored on the same snapshots and split.

The rules are what retention teams already use (a 6-month inactivity report, a recency
ranking, the RFM score); the logistic regression is the cheapest learned model on the
same features. Every score is "higher = more likely to churn"; the rule scores are not
probabilities (train calibrates them before they are compared on money).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from churnguard.errors import DataError

RECENCY_RULE_DAYS = 180

# short names for people (report, warnings); the same keys as BASELINES
BASELINE_LABELS: dict[str, str] = {
    "recency_rule": f"no purchase in {RECENCY_RULE_DAYS} days",
    "recency_rank": "days since last purchase",
    "rfm": "RFM score",
    "logreg": "logistic regression",
}
# the scorers that can rank the lists (become champion), as named in predictions (p_<name>)
# and metrics: the LightGBM model and the two baselines saved as scorers beside it
MODEL = "model"
BASELINE_SCORERS = ("logreg", "recency_rank")
CANDIDATES = (MODEL, *BASELINE_SCORERS)
SCORER_LABELS: dict[str, str] = {
    MODEL: "LightGBM model",
    **{name: BASELINE_LABELS[name] for name in BASELINE_SCORERS},
}
BASELINES: dict[str, str] = {
    "recency_rule": (
        f"No purchase in the last {RECENCY_RULE_DAYS} days (the 6-month inactivity report), "
        "calibrated on the validation cutoff."
    ),
    "recency_rank": "Days since the last purchase: the longer the silence, the higher the risk.",
    "rfm": "15 - RFM score (r + f + m quintiles): a low RFM score means a high risk.",
    "logreg": (
        "Logistic regression on the model's features (median imputation with missing "
        "indicators, standard scaling)."
    ),
}


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        raise DataError(
            f"baseline needs column '{name}', which the snapshot lacks; "
            f"columns present: {sorted(map(str, frame.columns))}"
        )
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def recency_rule_score(frame: pd.DataFrame, threshold_days: int = RECENCY_RULE_DAYS) -> np.ndarray:
    """1.0 where ``recency_days > threshold_days`` else 0.0 (NaN stays NaN)."""
    recency = _column(frame, "recency_days")
    out = (recency > threshold_days).astype(float)
    out[np.isnan(recency)] = np.nan
    return out


def recency_rank_score(frame: pd.DataFrame) -> np.ndarray:
    """``recency_days`` as float: a longer silence ranks higher."""
    return _column(frame, "recency_days")


def rfm_baseline_score(frame: pd.DataFrame) -> np.ndarray:
    """``15 - rfm_score``: the lowest RFM score (3) gets the highest risk (12)."""
    return 15.0 - _column(frame, "rfm_score")


def rule_baseline_scores(
    frame: pd.DataFrame, threshold_days: int = RECENCY_RULE_DAYS
) -> dict[str, np.ndarray]:
    """The three rule baselines by name (keys match :data:`BASELINES`)."""
    return {
        "recency_rule": recency_rule_score(frame, threshold_days),
        "recency_rank": recency_rank_score(frame),
        "rfm": rfm_baseline_score(frame),
    }


class LogisticBaseline(BaseEstimator):
    """Median imputation (+ missing indicators) → standard scaling → logistic regression.

    ``predict_proba`` returns a 1-D array of P(churn), like the other scorers. Columns are
    matched by name at predict time, so a frame with the columns in another order scores
    the same. Infinite values are treated as missing.
    """

    def __init__(self, C: float = 1.0, max_iter: int = 2000) -> None:
        self.C = C
        self.max_iter = max_iter

    @staticmethod
    def _matrix(X: pd.DataFrame) -> np.ndarray:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"LogisticBaseline expects a pandas DataFrame, got {type(X).__name__}")
        bad = [
            str(c)
            for c in X.columns
            if not (pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c]))
        ]
        if bad:
            raise DataError(
                f"LogisticBaseline needs numeric feature columns; not numeric: {bad} "
                "(encode them as numeric codes or leave them out of the feature list)"
            )
        matrix = X.astype(float).to_numpy(dtype=float, na_value=np.nan, copy=True)
        matrix[~np.isfinite(matrix)] = np.nan
        return matrix

    def fit(self, X: pd.DataFrame, y: Any) -> LogisticBaseline:
        matrix = self._matrix(X)
        target = np.asarray(y, dtype=float).ravel()
        if target.shape[0] != matrix.shape[0]:
            raise ValueError(f"X has {matrix.shape[0]} rows but y has {target.shape[0]}")
        if np.isnan(target).any() or not np.isin(target, (0.0, 1.0)).all():
            raise DataError("LogisticBaseline needs a 0/1 label without missing values")
        if np.unique(target).size < 2:
            raise DataError(
                "LogisticBaseline needs both churned and retained customers in the training rows"
            )
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = matrix.shape[1]
        self.pipeline_ = Pipeline(
            [
                (
                    "impute",
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                ),
                ("scale", StandardScaler()),
                ("logreg", LogisticRegression(C=self.C, max_iter=self.max_iter)),
            ]
        ).fit(matrix, target.astype(int))
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """P(churn) per row, as a 1-D array."""
        check_is_fitted(self, "pipeline_")
        names = list(self.feature_names_in_)
        missing = [c for c in names if c not in X.columns]
        if missing:
            raise DataError(f"LogisticBaseline was fitted on columns the frame lacks: {missing}")
        return self.pipeline_.predict_proba(self._matrix(X[names]))[:, 1]
