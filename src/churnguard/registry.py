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
from churnguard.gate import GateDecision, replaces_champion
from churnguard.io import file_md5, write_json_atomic
from churnguard.modeling import BOOSTER_FILE, METADATA_FILE

log = logging.getLogger(__name__)

DVC_EXP_ENV = "DVC_EXP_NAME"  # set by DVC for the stages of `dvc exp run`
SCORER_TAG = "churnguard.scorer"  # on a registered version: model, logreg or recency_rank


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


def _primary_value(primary: str, y: np.ndarray, p: np.ndarray) -> float:
    from churnguard.stats import point_metric

    return float(point_metric(primary, np.asarray(p, dtype=float), y))


def _champion_value(
    name: str, primary: str, test: pd.DataFrame
) -> tuple[float | None, str | None, str]:
    """(primary metric, version, note) of the current champion re-scored on ``test``."""
    loaded = tracking.load_champion(name)
    if loaded is None:
        return None, None, "no current champion"
    model, version = loaded
    try:
        p_champ = _judged_predict(model, test)
    except Exception as exc:  # the champion's own input checks, e.g. a changed feature list
        return (
            None,
            version,
            f"champion v{version} cannot score the test rows ({type(exc).__name__}): it cannot "
            "be compared, so it is replaced only by an explicit `churnguard promote --force`",
        )
    value = _primary_value(primary, test["churned"].to_numpy(dtype=int), p_champ)
    return value, version, f"champion v{version} re-scored on the same test rows"


def _judged_predict(pyfunc: Any, test: pd.DataFrame) -> np.ndarray:
    """A registered version's probabilities on ``test`` as the gate judges it: its
    evaluated fit (``eval/evaluated`` in the logged folder) when the version ships a refit —
    a refit has seen its own test cutoff's labels, so scoring it on those rows would flatter
    it — else the pyfunc itself."""
    from churnguard.scorers import EVALUATED_DIR, load_scorer

    try:
        inner = pyfunc.unwrap_python_model().model
    except Exception:  # not a churnguard pyfunc: score it as it is
        inner = None
    folder = getattr(inner, "folder", None)
    if folder is not None and (Path(folder) / EVALUATED_DIR / BOOSTER_FILE).exists():
        return np.asarray(load_scorer(Path(folder) / EVALUATED_DIR).predict(test), dtype=float)
    schema = pyfunc.metadata.get_input_schema()
    columns = schema.input_names() if schema is not None else list(test.columns)
    return np.asarray(pyfunc.predict(test[columns]), dtype=float).ravel()


def gate_and_register(p: TrainParams, ev: EvaluateParams, metrics: dict[str, Any]) -> GateDecision:
    """Log test metrics and plots to the run, register the chosen scorer, move the alias
    only when it is at least as good as the champion (never inside `dvc exp run`), and
    write ``eval/gate.json``: the scorer the DVC score stage must use."""
    import mlflow

    from churnguard.scorers import (
        GATE_FILE,
        evaluated_folder,
        load_scorer,
        scorer_digest,
        scorer_folder,
    )

    tracking.init_tracking()
    choice = metrics.get("choice") or {}
    chosen = choice.get("scorer")
    if chosen is None:
        raise ModelError(
            "the gate could not choose a scorer: " + " ".join(choice.get("reasons") or [])
        )
    primary = ev.primary_metric
    md5 = _model_md5(p.model_dir)
    run = tracking.find_run_by_model(p.experiment_name, md5)
    if run is None:
        summary = json.loads((Path(p.model_dir) / METADATA_FILE).read_text(encoding="utf-8"))
        log_training_run(p, summary)
        run = tracking.find_run_by_model(p.experiment_name, md5)
    assert run is not None
    folder = scorer_folder(p.model_dir, chosen)
    test = _test_rows(p.features_dir, metrics["test_cutoff"])
    # the candidate scored exactly as the champion is (same rows, unrounded probabilities),
    # so "at least as good" compares like with like. The LightGBM model is judged by its
    # evaluated fit: a refit (train.refit, what ships) has seen the test cutoff's labels
    judged = evaluated_folder(p.model_dir) if chosen == "model" else folder
    candidate = _primary_value(
        primary, test["churned"].to_numpy(dtype=int), load_scorer(judged).predict(test)
    )
    champion, champ_version, champ_note = _champion_value(p.registered_model_name, primary, test)
    decision = replaces_champion(primary, candidate, champion, champ_version or "?")
    if champion is None and champ_version is not None:  # a champion that cannot be compared
        decision = GateDecision(False, [])
    # the note on the champion and the decision can say the same thing ("no current champion");
    # gate.json keeps these, the run's tags and the returned decision add what happened next
    gate_reasons = list(dict.fromkeys([*choice.get("reasons", []), champ_note, *decision.reasons]))
    reasons = list(gate_reasons)
    promote = decision.promote
    experiment = os.environ.get(DVC_EXP_ENV)
    if experiment and promote:
        # an experiment is a question, not a release: it never changes what scheduled
        # scoring uses (the alias)
        promote = False
        reasons.append(
            f"passed the gate, but this is `dvc exp run` ({DVC_EXP_ENV}={experiment}): "
            "registered without moving @champion. To promote it: `churnguard promote "
            "--version N` (N below), or `dvc exp apply` then `dvc repro`"
        )
    flat = {
        f"test.{name}.{k}": float(v)
        for name, vals in metrics["scorers"].items()
        for k, v in vals.items()
        if isinstance(v, int | float) and v is not None and np.isfinite(v)
    }
    eval_dir = Path(ev.model_dir) / "eval"
    version = None
    with mlflow.start_run(run_id=run.info.run_id):
        mlflow.log_metrics(flat)
        for name in ("metrics.json", "headline.json"):
            if (eval_dir / name).exists():
                mlflow.log_artifact(str(eval_dir / name), "eval")
        for png in sorted((eval_dir / "png").glob("*.png")):
            mlflow.log_artifact(str(png), "plots")
        mlflow.set_tags(
            {
                "gate.scorer": chosen,
                "gate.promote": str(promote).lower(),
                "gate.reasons": " | ".join(reasons)[:5000],
            }
        )
        if p.register_model:
            uri = run.data.tags["churnguard.model_uri"]
            if chosen != "model":
                uri = tracking.log_scorer(folder, test.head(5), f"scorer_{chosen}")
            version = tracking.register(
                uri,
                p.registered_model_name,
                promote,
                {
                    "gate": "passed" if decision.promote else "refused",
                    SCORER_TAG: chosen,
                    tracking.MODEL_MD5_TAG: md5,
                    **({"dvc_experiment": experiment} if experiment else {}),
                },
                description=" ".join(reasons),
            )
    use_champion = not decision.promote and champ_version is not None
    write_json_atomic(
        eval_dir / GATE_FILE,
        {
            "scorer": chosen,
            "scorer_digest": scorer_digest(folder),
            # what the gate judged on the test cutoff (the evaluated fit) and what ships
            "judged_digest": scorer_digest(judged),
            "shipped_fit": _shipped_fit(folder),
            "primary_metric": primary,
            "candidate": round(candidate, 6),
            "champion": None if champion is None else round(champion, 6),
            "champion_version": champ_version,
            "replaces_champion": decision.promote,
            # what the lists of this folder are made with: this run's scorer, or the
            # champion the gate kept (never a scorer the gate refused)
            "use": (
                f"models:/{p.registered_model_name}/{champ_version}" if use_champion else chosen
            ),
            "reasons": gate_reasons,
        },
    )
    if version is not None:
        reasons.append(
            f"registered {p.registered_model_name} v{version} ({chosen})"
            + (" with alias @champion" if promote else " without the champion alias")
        )
    return GateDecision(promote, reasons)


def _shipped_fit(folder: Path) -> str:
    """``refit`` or ``evaluated``: which fit of the scorer in ``folder`` ships."""
    meta_path = folder / METADATA_FILE
    if not meta_path.exists():
        return "evaluated"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    return str((meta.get("shipped_fit") or {}).get("fit", "evaluated"))


def _latest_test_rows(features_dir: str | Path) -> pd.DataFrame:
    """The test rows of the current snapshots: the latest labelled cutoff, active customers."""
    frame = pd.read_parquet(Path(features_dir) / SNAPSHOTS_FILE)
    labelled = frame[frame["churned"].notna() & (frame["lapsed"] == 0)]
    if labelled.empty:
        raise ModelError(
            f"{features_dir}: no labelled snapshot to compare models on; run `churnguard features`"
        )
    return _test_rows(features_dir, str(labelled["cutoff_date"].max()))


def promote(
    p: TrainParams,
    ev: EvaluateParams,
    version: str | None = None,
    force: bool = False,
    reason: str | None = None,
) -> GateDecision:
    """Move ``@champion`` to ``version`` (default: the newest) after the same gate the
    evaluate stage applies: at least as good as the champion on the same test rows by
    ``evaluate.primary_metric``. ``force`` overrides a refusal and needs a ``reason``;
    who, when and why are recorded in the version's description and tags."""
    import datetime as dt
    import getpass

    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from churnguard.errors import ConfigError

    if force and not (reason and reason.strip()):
        raise ConfigError("--force needs --reason TEXT: say why the gate is overridden")
    tracking.init_tracking()
    client = MlflowClient()
    name = p.registered_model_name
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        versions = []
    if not versions:
        raise ModelError(f"no registered versions of {name!r}: run `dvc repro` (train, evaluate)")
    if version is None:
        version = str(max(int(v.version) for v in versions))
    if version not in {str(v.version) for v in versions}:
        known = ", ".join(sorted((str(v.version) for v in versions), key=int))
        raise ConfigError(f"{name} has no version {version} (versions: {known})")
    current = tracking.champion_version(name)
    if current == version:
        return GateDecision(True, [f"{name} v{version} is already @champion"])
    test = _latest_test_rows(p.features_dir)
    y = test["churned"].to_numpy(dtype=int)
    candidate_model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    try:
        p_candidate = _judged_predict(candidate_model, test)
    except Exception as exc:
        raise ModelError(
            f"{name} v{version} cannot score the current test rows ({type(exc).__name__}: {exc})"
        ) from None
    candidate = _primary_value(ev.primary_metric, y, p_candidate)
    champion, champ_version, note = _champion_value(name, ev.primary_metric, test)
    decision = replaces_champion(ev.primary_metric, candidate, champion, champ_version or "?")
    comparable = not (champion is None and champ_version is not None)
    reasons = [note, *decision.reasons]
    if not (decision.promote and comparable):
        if not force:
            raise ConfigError(
                f"refused to promote {name} v{version}: "
                + " ".join(reasons)
                + " — pass --force --reason TEXT to override"
            )
        reasons.append(f"forced by {getpass.getuser()}: {reason}")
    who = getpass.getuser()
    when = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
    client.set_registered_model_alias(name, tracking.CHAMPION, version)
    old = client.get_model_version(name, version).description or ""
    note_text = f"Promoted to @champion by {who} on {when}" + (f": {reason}" if reason else "")
    client.update_model_version(
        name, version, description=(f"{old}\n\n{note_text}. " + " ".join(reasons)).strip()[:5000]
    )
    for key, value in {
        "promoted_by": who,
        "promoted_at": when,
        "promote_forced": str(bool(force and not decision.promote)).lower(),
        **({"promote_reason": reason[:500]} if reason else {}),
    }.items():
        client.set_model_version_tag(name, version, key, value)
    previous = f" (was v{current})" if current else ""
    return GateDecision(True, [*reasons, f"{name}@champion is now v{version}{previous}"])
