"""Gate logic, the MLflow registry alias flow on a temporary SQLite store, pyfunc round trip."""

from __future__ import annotations

import copy
import multiprocessing as mp
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnguard.config import EvaluateParams
from churnguard.gate import gate_decision

BASE = {"logreg": {"roc_auc": 0.70, "pr_auc": 0.60}, "rfm": {"roc_auc": 0.65, "pr_auc": 0.55}}


def test_gate_promotes_a_model_that_beats_every_baseline():
    d = gate_decision({"roc_auc": 0.75, "pr_auc": 0.65}, BASE, None, 0.005)
    assert d.promote
    assert any("no current champion" in r for r in d.reasons)


@pytest.mark.parametrize(
    "model",
    [{"roc_auc": 0.69, "pr_auc": 0.65}, {"roc_auc": 0.75, "pr_auc": 0.60}],
    ids=["loses on roc-auc", "ties on pr-auc"],
)
def test_gate_refuses_a_model_that_does_not_beat_a_baseline(model):
    d = gate_decision(model, BASE, None, 0.005)
    assert not d.promote
    assert any("does not beat baseline logreg" in r for r in d.reasons)


@pytest.mark.parametrize(
    ("champion_roc", "promote"),
    [(0.752, True), (0.755, True), (0.7551, False), (0.80, False)],
    ids=["slightly better", "exactly at tolerance", "just past tolerance", "clearly better"],
)
def test_gate_tolerance_against_the_champion(champion_roc, promote):
    d = gate_decision(
        {"roc_auc": 0.75, "pr_auc": 0.65}, BASE, {"roc_auc": champion_roc, "pr_auc": 0.6}, 0.005
    )
    assert d.promote is promote
    if not promote:
        assert any("train.gate_tolerance" in r for r in d.reasons)


def test_gate_refuses_when_metrics_are_undefined():
    d = gate_decision({"roc_auc": None, "pr_auc": None}, BASE, None, 0.005)
    assert not d.promote


def _init(uri: str) -> str:
    from churnguard.tracking import init_tracking

    return init_tracking(uri)


def test_concurrent_processes_initialise_a_fresh_store_safely(tmp_path):
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    with mp.get_context("spawn").Pool(2) as pool:
        assert pool.map(_init, [uri] * 2) == [uri] * 2
    assert (tmp_path / "fresh.db").stat().st_size > 0


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # git/dvc tags read the working folder
    return tmp_path


def test_registry_alias_moves_only_through_the_gate(pipeline, store):
    import mlflow
    from mlflow.tracking import MlflowClient

    from churnguard import registry, tracking
    from churnguard.evaluate import run_evaluate
    from churnguard.modeling import ChurnModel

    ev = EvaluateParams(model_dir=pipeline.train.model_dir)
    metrics = run_evaluate(ev)
    registry.log_training_run(pipeline.train, pipeline.summary, "synthetic")
    first = registry.gate_and_register(pipeline.train, ev, metrics)
    client = MlflowClient()
    scorers = metrics["scorers"]
    baselines = {k: v for k, v in scorers.items() if k not in ("model", "model_raw")}
    expected = gate_decision(scorers["model"], baselines, None, pipeline.train.gate_tolerance)
    assert first.promote is expected.promote
    assert first.promote, f"the fixture model should beat its baselines: {first.reasons}"
    assert str(client.get_model_version_by_alias("churnguard", "champion").version) == "1"

    # the same model again: re-scored champion is equal → promoted within tolerance
    second = registry.gate_and_register(pipeline.train, ev, metrics)
    assert second.promote
    assert str(client.get_model_version_by_alias("churnguard", "champion").version) == "2"
    assert any("re-scored on the same test rows" in r for r in second.reasons)

    # a candidate that regresses against the champion keeps the alias where it is
    worse = copy.deepcopy(metrics)
    worse["scorers"]["model"]["roc_auc"] = scorers["model"]["roc_auc"] - 0.05
    third = registry.gate_and_register(pipeline.train, ev, worse)
    assert not third.promote
    assert str(client.get_model_version_by_alias("churnguard", "champion").version) == "2"
    assert client.get_model_version("churnguard", "3").tags["gate"] == "refused"

    # the champion's pyfunc returns calibrated probabilities equal to booster + calibrator
    model = ChurnModel.load(pipeline.train.model_dir)
    snaps = pd.read_parquet(Path(pipeline.features.output_dir) / "snapshots.parquet").head(300)
    pyfunc = mlflow.pyfunc.load_model(f"models:/churnguard@{tracking.CHAMPION}")
    got = np.asarray(pyfunc.predict(snaps[model.features].astype("float64")), dtype=float).ravel()
    np.testing.assert_allclose(got, model.predict(snaps), rtol=0, atol=1e-12)
    assert ((got > 0) & (got < 1)).all() and len(np.unique(got)) > 2  # probabilities, not labels

    run = tracking.find_run_by_model(
        pipeline.train.experiment_name, registry._model_md5(pipeline.train.model_dir)
    )
    assert run is not None
    assert "test.model.roc_auc" in run.data.metrics and "git.commit" in run.data.tags
    assert run.data.params["train.num_leaves"] == str(pipeline.train.num_leaves)


def test_an_experiment_run_never_moves_the_champion_alias(pipeline, store, monkeypatch):
    """Inside `dvc exp run` (DVC sets DVC_EXP_NAME) a model that passes the gate is
    registered, but what scheduled scoring uses does not change."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from churnguard import registry
    from churnguard.evaluate import run_evaluate

    ev = EvaluateParams(model_dir=pipeline.train.model_dir)
    metrics = run_evaluate(ev)
    monkeypatch.setenv("DVC_EXP_NAME", "tuned-leaves")
    decision = registry.gate_and_register(pipeline.train, ev, metrics)
    assert not decision.promote
    assert any("dvc exp apply tuned-leaves" in r for r in decision.reasons)
    client = MlflowClient()
    assert client.get_model_version("churnguard", "1") is not None  # registered
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias("churnguard", "champion")  # alias never set
    run = client.get_run(client.get_model_version("churnguard", "1").run_id)
    assert run.info.run_name.endswith("-tuned-leaves")
    monkeypatch.delenv("DVC_EXP_NAME")
    assert registry.gate_and_register(
        pipeline.train, ev, metrics
    ).promote  # outside: the gate decides
