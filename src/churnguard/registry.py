"""Training runs and the gated registry: glue between models/, metrics and MLflow."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnguard import tracking
from churnguard.config import EvaluateParams, TrainParams
from churnguard.errors import ModelError
from churnguard.feature_defs import SNAPSHOTS_FILE
from churnguard.gate import GateDecision, gate_decision
from churnguard.io import file_md5
from churnguard.modeling import BOOSTER_FILE, METADATA_FILE

log = logging.getLogger(__name__)

DVC_EXP_ENV = "DVC_EXP_NAME"  # set by DVC for the stages of `dvc exp run`


def _model_md5(model_dir: str | Path) -> str:
    path = Path(model_dir) / BOOSTER_FILE
    if not path.exists():
        raise ModelError(f"{path}: no trained model (train.model_dir; run `churnguard train`)")
    return file_md5(path)


def _test_rows(features_dir: str | Path, test_cutoff: str) -> pd.DataFrame:
    frame = pd.read_parquet(Path(features_dir) / SNAPSHOTS_FILE)
    keep = (
        (frame["cutoff_date"].astype(str) == test_cutoff)
        & (frame["lapsed"] == 0)
        & frame["churned"].notna()
    )
    return frame[keep].reset_index(drop=True)


def log_training_run(p: TrainParams, summary: dict[str, Any], dataset: str = "") -> str:
    """Create an MLflow run for the model in ``p.model_dir``; return the run id."""
    import mlflow

    tracking.init_tracking()
    md5 = _model_md5(p.model_dir)
    example = _test_rows(p.features_dir, summary["test_cutoff"]).head(5)
    tags = {
        **tracking.git_state(),
        **tracking.dvc_lock_hashes(),
        tracking.MODEL_MD5_TAG: md5,
        "dataset": dataset,
        "test_cutoff": summary["test_cutoff"],
    }
    params = {
        "train": summary["params"],
        "split": {
            "train_cutoffs": ",".join(summary["train_cutoffs"]),
            "valid_cutoff": summary["valid_cutoff"],
            "test_cutoff": summary["test_cutoff"],
            "horizon_days": summary["horizon_days"],
        },
        "calibration": summary["calibration"],
    }
    exp = os.environ.get(DVC_EXP_ENV)
    run_name = f"train-{summary['test_cutoff']}" + (f"-{exp}" if exp else "")
    with tracking.training_run(p.experiment_name, run_name=run_name) as run:
        model_uri = tracking.log_training(p.model_dir, params, summary, example, tags)
        mlflow.set_tag("churnguard.model_uri", model_uri)
        return str(run.info.run_id)


def _champion_metrics(p: TrainParams, test: pd.DataFrame) -> tuple[dict[str, float] | None, str]:
    from churnguard.evaluate import binary_metrics

    loaded = tracking.load_champion(p.registered_model_name)
    if loaded is None:
        return None, "no current champion"
    model, version = loaded
    schema = model.metadata.get_input_schema()
    columns = schema.input_names() if schema is not None else list(test.columns)
    try:
        p_champ = np.asarray(model.predict(test[columns]), dtype=float).ravel()
    except Exception as exc:  # the champion's own input checks, e.g. a changed feature list
        return (
            None,
            f"champion v{version} cannot score the test rows ({type(exc).__name__}); compared with baselines only",
        )
    metrics = binary_metrics(test["churned"].to_numpy(dtype=int), p_champ)
    return {
        k: float(metrics[k]) for k in ("roc_auc", "pr_auc")
    }, f"champion v{version} re-scored on the same test rows"


def _candidate_metrics(p: TrainParams, test: pd.DataFrame) -> dict[str, float]:
    """The candidate scored exactly as the champion is (same rows, unrounded probabilities),
    so that 'at least as good' compares like with like: with no tolerance, the rounding in
    the evaluate stage's predictions would otherwise make a model lose against itself."""
    from churnguard.evaluate import binary_metrics
    from churnguard.modeling import ChurnModel

    p_new = ChurnModel.load(p.model_dir).predict(test)
    metrics = binary_metrics(test["churned"].to_numpy(dtype=int), p_new)
    return {k: float(metrics[k]) for k in ("roc_auc", "pr_auc")}


def gate_and_register(p: TrainParams, ev: EvaluateParams, metrics: dict[str, Any]) -> GateDecision:
    """Log test metrics and plots to the model's run, apply the gate, register, move the alias."""
    import mlflow

    tracking.init_tracking()
    md5 = _model_md5(p.model_dir)
    run = tracking.find_run_by_model(p.experiment_name, md5)
    if run is None:
        summary = json.loads((Path(p.model_dir) / METADATA_FILE).read_text(encoding="utf-8"))
        log_training_run(p, summary)
        run = tracking.find_run_by_model(p.experiment_name, md5)
    assert run is not None
    scorers = metrics["scorers"]
    test = _test_rows(p.features_dir, metrics["test_cutoff"])
    champion, champ_note = _champion_metrics(p, test)
    baselines = {k: v for k, v in scorers.items() if k not in ("model", "model_raw")}
    decision = gate_decision(
        scorers["model"],
        baselines,
        champion,
        p.gate_tolerance,
        _candidate_metrics(p, test) if champion is not None else None,
    )
    experiment = os.environ.get(DVC_EXP_ENV)
    if experiment and decision.promote:
        # an experiment is a question, not a release: it never changes what scheduled
        # scoring uses (the alias); promotion happens on an applied, evaluated model
        decision = GateDecision(
            False,
            [
                *decision.reasons,
                f"passed the gate, but this is `dvc exp run` ({DVC_EXP_ENV}={experiment}): "
                "registered without moving @champion. To promote it: `dvc exp apply "
                f"{experiment}`, then `churnguard evaluate` (the gate, outside an experiment)",
            ],
        )
    if champion is not None or champ_note != "no current champion":
        decision.reasons.insert(0, champ_note)
    flat = {
        f"test.{name}.{k}": float(v)
        for name, vals in scorers.items()
        for k, v in vals.items()
        if isinstance(v, int | float) and v is not None and np.isfinite(v)
    }
    eval_dir = Path(ev.model_dir) / "eval"
    with mlflow.start_run(run_id=run.info.run_id):
        mlflow.log_metrics(flat)
        if (eval_dir / "metrics.json").exists():
            mlflow.log_artifact(str(eval_dir / "metrics.json"), "eval")
        for png in sorted((eval_dir / "png").glob("*.png")):
            mlflow.log_artifact(str(png), "plots")
        mlflow.set_tags(
            {
                "gate.promote": str(decision.promote).lower(),
                "gate.reasons": " | ".join(decision.reasons)[:5000],
            }
        )
        if p.register_model:
            version = tracking.register(
                run.data.tags["churnguard.model_uri"],
                p.registered_model_name,
                decision.promote,
                {"gate": "passed" if decision.promote else "refused", tracking.MODEL_MD5_TAG: md5},
            )
            decision.reasons.append(
                f"registered {p.registered_model_name} v{version}"
                + (" with alias @champion" if decision.promote else " without the champion alias")
            )
    return decision
