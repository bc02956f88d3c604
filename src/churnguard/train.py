"""The train stage (``churnguard train``): read the snapshots and the plan, fit, write ``models/``.

The fitting itself (time split, LightGBM, out-of-time calibration, the chained horizon,
the refit, baselines) is :mod:`churnguard.fitting`, in memory; this module reads the
features stage's folder and writes the shipped model, the evaluated fit, the baseline
scorers, their drift reference and the validation/test predictions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from churnguard.baselines import CANDIDATES
from churnguard.config import TrainParams
from churnguard.errors import DataError
from churnguard.feature_defs import CHAIN_FILE, CUTOFFS_FILE, SNAPSHOTS_FILE
from churnguard.fitting import BoosterFit, fit_models
from churnguard.horizon import Plan
from churnguard.io import atomic_path, write_json_atomic
from churnguard.modeling import ChurnModel
from churnguard.predictors import LogisticScorer, RecencyScorer
from churnguard.scorers import DRIFT_FILE, EVALUATED_DIR, save_scorer, scorer_folder

EVAL_DIR = "eval"
PREDICTIONS_FILE = "predictions.parquet"


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


def load_plan(features_dir: str | Path, frame: pd.DataFrame) -> tuple[Plan | None, pd.DataFrame]:
    """The plan the features stage recorded in ``cutoffs.json`` (None for older folders) and
    ``chain.parquet`` (empty unless the plan is chained)."""
    folder = Path(features_dir)
    meta = json.loads((folder / CUTOFFS_FILE).read_text(encoding="utf-8"))
    plan = None
    if isinstance(meta.get("plan"), dict):
        plan = Plan.from_dict(meta["plan"], sorted(frame["cutoff_date"].unique()))
    chain_path = folder / CHAIN_FILE
    chain = pd.read_parquet(chain_path) if chain_path.exists() else pd.DataFrame()
    if plan is not None and plan.chain_origins and chain.empty:
        raise DataError(
            f"{chain_path}: missing or empty, but the plan in {folder / CUTOFFS_FILE} chains "
            f"over {len(plan.chain_origins)} origin(s); re-run `churnguard features`"
        )
    return plan, chain


@dataclass(frozen=True)
class Trained:
    """One training run: the shipped model, the evaluated fit, baselines, predictions, summary.

    ``evaluated`` is the fit judged on the test cutoff (its predictions are in
    ``predictions``); ``model`` is what ships: the same fit, or (``train.refit``) the refit
    on every labelled cutoff with the evaluated fit's number of rounds.
    """

    model: ChurnModel
    baselines: dict[str, LogisticScorer | RecencyScorer]
    predictions: pd.DataFrame
    summary: dict[str, Any]
    drift_reference: dict[str, Any]  # feature distributions of the shipped fit's rows (PSI)
    evaluated: ChurnModel | None = None


def _churn_model(fit: BoosterFit) -> ChurnModel:
    return ChurnModel(fit.booster, fit.calibrator, fit.features, fit.dtypes, fit.metadata)


def train_model(
    frame: pd.DataFrame,
    horizon_days: int,
    p: TrainParams,
    step_hint: int | None = None,
    plan: Plan | None = None,
    chain: pd.DataFrame | None = None,
) -> Trained:
    """:func:`churnguard.fitting.fit_models`, its LightGBM fits as :class:`ChurnModel` (the
    model as files: ``save``); no I/O. Without ``train.refit`` both are one object."""
    fitted = fit_models(frame, horizon_days, p, step_hint, plan, chain)
    evaluated = _churn_model(fitted.evaluated)
    model = evaluated if fitted.model is fitted.evaluated else _churn_model(fitted.model)
    return Trained(
        model,
        fitted.baselines,
        fitted.predictions,
        fitted.summary,
        fitted.drift_reference,
        evaluated,
    )


def run_train(p: TrainParams) -> dict[str, Any]:
    """Read snapshots, train, and write ``models/`` plus validation/test predictions.

    ``models/`` holds the shipped model; ``models/eval/evaluated/`` the fit the gate judges
    on the test cutoff (the same one unless ``train.refit``).
    """
    frame, horizon_days, step = load_training_frame(p.features_dir)
    plan, chain = load_plan(p.features_dir, frame)
    trained = train_model(frame, horizon_days, p, step, plan, chain)
    model_dir = Path(p.model_dir)
    trained.model.save(model_dir)
    assert trained.evaluated is not None
    trained.evaluated.save(model_dir / EVALUATED_DIR)
    for name, scorer in trained.baselines.items():
        save_scorer(scorer, scorer_folder(model_dir, name))
    for name in CANDIDATES:  # each scorer carries it (a registered copy is on its own)
        write_json_atomic(scorer_folder(model_dir, name) / DRIFT_FILE, trained.drift_reference)
    with atomic_path(model_dir / EVAL_DIR / PREDICTIONS_FILE) as tmp:
        trained.predictions.to_parquet(tmp, index=False)
    return trained.summary
