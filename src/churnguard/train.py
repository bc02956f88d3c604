"""Train the LightGBM churn model on rolling snapshots, split by cutoff date (``churnguard train``).

Split: the latest labelled cutoff is *test*, the one before it *validation*, and the
training rows come from cutoffs whose label window ends on or before the validation
cutoff, so no training label peeks past it. LightGBM early-stops on validation; the
probability calibrator is fitted on validation; baselines are fitted on the same
training rows, calibrated on the same validation rows and scored on the same test rows.
The two baselines that can become champion (logistic regression, days since last
purchase) are saved as scorers under ``models/baselines/`` (see :mod:`churnguard.scorers`).
Lapsed customers (win-back) are left out of every split.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from churnguard import baselines
from churnguard.baselines import CANDIDATES
from churnguard.config import TrainParams
from churnguard.drift import reference_profile
from churnguard.errors import DataError
from churnguard.feature_defs import CUTOFFS_FILE, MODEL_FEATURES, SNAPSHOTS_FILE
from churnguard.io import atomic_path, write_json_atomic
from churnguard.modeling import Calibrator, ChurnModel, fit_calibrator
from churnguard.scorers import (
    DRIFT_FILE,
    LogisticScorer,
    RecencyScorer,
    save_scorer,
    scorer_folder,
)

log = logging.getLogger(__name__)

EVAL_DIR = "eval"
PREDICTIONS_FILE = "predictions.parquet"
KEEP_COLUMNS = [
    "cutoff_date",
    "customer_id",
    "churned",
    "rfm_segment",
    "tenure_days",
    "recency_days",
    "monetary_total",
    "purchase_days",  # value if retained (evaluate)
]


@dataclass(frozen=True)
class Split:
    train_cutoffs: list[dt.date]
    valid_cutoff: dt.date
    test_cutoff: dt.date
    horizon_days: int


def plan_split(cutoffs: list[dt.date], horizon_days: int, step_hint: int | None = None) -> Split:
    """Test = latest cutoff, validation = the one before; training labels end ≤ validation cutoff."""
    cutoffs = sorted(set(cutoffs))
    if len(cutoffs) < 3:
        raise DataError(
            f"too few cutoffs to split by time: {len(cutoffs)} labelled cutoff(s), need at least 3 "
            "(train, validation, test); raise features.n_cutoffs"
        )
    test, valid = cutoffs[-1], cutoffs[-2]
    horizon = dt.timedelta(days=horizon_days)
    train = [c for c in cutoffs[:-2] if c + horizon <= valid]
    if not train:
        need = f" (about {horizon_days // step_hint + 3})" if step_hint else ""
        raise DataError(
            f"no training cutoff has its {horizon_days}-day label window end by the validation "
            f"cutoff {valid}; raise features.n_cutoffs{need} or lower features.horizon_days"
        )
    return Split(train, valid, test, horizon_days)


def _check_rows(frame: pd.DataFrame, name: str, min_rows: int) -> None:
    if len(frame) < min_rows:
        raise DataError(
            f"too few {name} rows: {len(frame)} (train.min_rows = {min_rows}); "
            "use more data or more cutoffs (features.n_cutoffs)"
        )
    classes = sorted(frame["churned"].unique().tolist())
    if len(classes) < 2:
        raise DataError(
            f"the {name} rows have a single class (churned = {classes[0]}) — nothing to learn. "
            "Check features.horizon_days (too short or too long a label window) and the input dates"
        )


def lgb_params(p: TrainParams) -> dict[str, Any]:
    return {
        "objective": "binary",
        "metric": ["binary_logloss", "auc"],
        "learning_rate": p.learning_rate,
        "num_leaves": p.num_leaves,
        "max_depth": p.max_depth,
        "min_child_samples": p.min_child_samples,
        "bagging_fraction": p.subsample,
        "bagging_freq": 1 if p.subsample < 1 else 0,
        "feature_fraction": p.colsample_bytree,
        "lambda_l2": p.reg_lambda,
        "seed": p.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 2,
        "verbosity": -1,
    }


def _xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    return frame[list(MODEL_FEATURES)].astype("float64"), frame["churned"].to_numpy(dtype=int)


def load_training_frame(features_dir: str | Path) -> tuple[pd.DataFrame, int, int | None]:
    folder = Path(features_dir)
    snap_path, meta_path = folder / SNAPSHOTS_FILE, folder / CUTOFFS_FILE
    if not snap_path.exists() or not meta_path.exists():
        raise DataError(
            f"{folder}: snapshots not found (train.features_dir; run `churnguard features`)"
        )
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    frame = pd.read_parquet(snap_path)
    step = None
    cuts = sorted(frame["cutoff_date"].unique())
    if len(cuts) > 1:
        step = (cuts[-1] - cuts[-2]).days
    return frame, int(meta["horizon_days"]), step


@dataclass(frozen=True)
class Trained:
    """One training run: the LightGBM model, the baseline scorers, predictions, summary."""

    model: ChurnModel
    baselines: dict[str, LogisticScorer | RecencyScorer]
    predictions: pd.DataFrame
    summary: dict[str, Any]
    drift_reference: dict[str, Any]  # feature distributions of the training rows (PSI)


def train_model(
    frame: pd.DataFrame, horizon_days: int, p: TrainParams, step_hint: int | None = None
) -> Trained:
    """Fit model, calibrator and baseline scorers on one time split (no I/O)."""
    frame = frame[(frame["lapsed"] == 0) & frame["churned"].notna()].copy()
    frame["churned"] = frame["churned"].astype(int)
    split = plan_split(list(frame["cutoff_date"].unique()), horizon_days, step_hint)
    tr = frame[frame["cutoff_date"].isin(split.train_cutoffs)]
    va = frame[frame["cutoff_date"] == split.valid_cutoff]
    te = frame[frame["cutoff_date"] == split.test_cutoff]
    for name, part in (("training", tr), ("validation", va), ("test", te)):
        _check_rows(part, name, p.min_rows if name == "training" else 1)
    log.info(
        "split by time: train %s rows from %d cutoff(s) %s..%s, validation %s rows at %s, test %s rows at %s",
        f"{len(tr):,}",
        len(split.train_cutoffs),
        split.train_cutoffs[0],
        split.train_cutoffs[-1],
        f"{len(va):,}",
        split.valid_cutoff,
        f"{len(te):,}",
        split.test_cutoff,
    )
    x_tr, y_tr = _xy(tr)
    x_va, y_va = _xy(va)
    x_te, _ = _xy(te)
    dtrain = lgb.Dataset(x_tr, y_tr, feature_name=list(MODEL_FEATURES), free_raw_data=False)
    dvalid = lgb.Dataset(x_va, y_va, reference=dtrain)
    evals: dict[str, Any] = {}
    booster = lgb.train(
        lgb_params(p),
        dtrain,
        num_boost_round=p.n_estimators,
        valid_sets=[dvalid],
        valid_names=["validation"],
        callbacks=[
            lgb.early_stopping(p.early_stopping_rounds, first_metric_only=True, verbose=False),
            lgb.record_evaluation(evals),
        ],
    )
    best_iter = int(booster.best_iteration or p.n_estimators)
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best_iter))
    raw_va, raw_te = booster.predict(x_va.to_numpy()), booster.predict(x_te.to_numpy())
    calibrator, cv_brier = fit_calibrator(raw_va, y_va, p.calibration, seed=p.seed)
    log.info(
        "LightGBM: best iteration %d; calibration %s (CV Brier %s)",
        best_iter,
        calibrator.kind,
        cv_brier,
    )

    scores_va: dict[str, np.ndarray] = {"model_raw": raw_va, "model": calibrator.predict(raw_va)}
    scores_te: dict[str, np.ndarray] = {"model_raw": raw_te, "model": calibrator.predict(raw_te)}
    # the baselines that can become champion are scorers like the model (saved beside it);
    # the rules stay references in the metrics
    meta = {"horizon_days": horizon_days, "test_cutoff": str(split.test_cutoff), "lapsed": False}
    fitted = baselines.LogisticBaseline().fit(x_tr, y_tr)
    logreg = LogisticScorer.from_fitted(fitted, Calibrator("identity"), {**meta, "kind": "logreg"})
    logreg.calibrator, _ = fit_calibrator(logreg.predict_raw(va), y_va, "isotonic")
    recency_cal, _ = fit_calibrator(baselines.recency_rank_score(va), y_va, "isotonic")
    recency = RecencyScorer(
        recency_cal,
        float(np.nanmedian(va["recency_days"].to_numpy(dtype=float))),
        {**meta, "kind": "recency_rank"},
    )
    baseline_scorers: dict[str, LogisticScorer | RecencyScorer] = {
        "logreg": logreg,
        "recency_rank": recency,
    }
    raw_baselines = {
        "recency_rule": baselines.recency_rule_score,
        "rfm": baselines.rfm_baseline_score,
    }
    for name, fn in raw_baselines.items():
        cal, _ = fit_calibrator(fn(va), y_va, "isotonic")
        scores_va[name], scores_te[name] = cal.predict(fn(va)), cal.predict(fn(te))
    for name, scorer in baseline_scorers.items():
        scores_va[name], scores_te[name] = scorer.predict(va), scorer.predict(te)

    preds = []
    for split_name, part, scores in (("valid", va, scores_va), ("test", te, scores_te)):
        out = part[KEEP_COLUMNS].copy()
        out.insert(0, "split", split_name)
        for name, values in scores.items():
            out[f"p_{name}"] = np.round(values, 8)
        preds.append(out)
    predictions = pd.concat(preds, ignore_index=True).sort_values(
        ["split", "customer_id"], kind="stable"
    )

    importance = dict(
        zip(MODEL_FEATURES, booster.feature_importance("gain").round(4).tolist(), strict=True)
    )
    summary = {
        "train_cutoffs": [str(c) for c in split.train_cutoffs],
        "valid_cutoff": str(split.valid_cutoff),
        "test_cutoff": str(split.test_cutoff),
        "horizon_days": horizon_days,
        "rows": {"train": len(tr), "valid": len(va), "test": len(te)},
        "churn_rate": {
            "train": round(float(y_tr.mean()), 6),
            "valid": round(float(y_va.mean()), 6),
            "test": round(float(te["churned"].mean()), 6),
        },
        "best_iteration": best_iter,
        "calibration": calibrator.kind,
        "calibration_cv_brier": cv_brier,
        "feature_importance_gain": importance,
        "params": p.model_dump(mode="json"),
    }
    model = ChurnModel(
        booster,
        calibrator,
        list(MODEL_FEATURES),
        {f: "float64" for f in MODEL_FEATURES},
        summary,
    )
    return Trained(
        model,
        baseline_scorers,
        predictions.reset_index(drop=True),
        summary,
        reference_profile(tr, list(MODEL_FEATURES)),
    )


def run_train(p: TrainParams) -> dict[str, Any]:
    """Read snapshots, train, and write ``models/`` plus validation/test predictions."""
    frame, horizon_days, step = load_training_frame(p.features_dir)
    trained = train_model(frame, horizon_days, p, step)
    model_dir = Path(p.model_dir)
    trained.model.save(model_dir)
    for name, scorer in trained.baselines.items():
        save_scorer(scorer, scorer_folder(model_dir, name))
    for name in CANDIDATES:  # each scorer carries it (a registered copy is on its own)
        write_json_atomic(scorer_folder(model_dir, name) / DRIFT_FILE, trained.drift_reference)
    with atomic_path(model_dir / EVAL_DIR / PREDICTIONS_FILE) as tmp:
        trained.predictions.to_parquet(tmp, index=False)
    return trained.summary
