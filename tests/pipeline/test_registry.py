"""Gate logic, the MLflow registry alias flow on a temporary SQLite store, pyfunc round trip."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnguard.config import EvaluateParams


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


@pytest.fixture()
def own(pipeline, tmp_path):
    """A copy of the fixture's model folder: the gate writes eval/gate.json into it, which
    must not leak into other tests that score with the shared folder."""
    import shutil

    folder = tmp_path / "models"
    shutil.copytree(pipeline.train.model_dir, folder)
    return pipeline.train.model_copy(update={"model_dir": str(folder)})


def _weak_model(pipeline, tp, folder: Path):
    """A deliberately weak training run (5 shallow trees) in ``folder``."""
    from churnguard.train import run_train

    weak = tp.model_copy(
        update={"model_dir": str(folder), "n_estimators": 5, "num_leaves": 2, "max_depth": 1,
                "learning_rate": 0.01, "early_stopping_rounds": 5}
    )  # fmt: skip
    run_train(weak)
    return weak


def test_registry_alias_moves_only_through_the_gate(pipeline, own, store, tmp_path):
    import json

    import mlflow
    from mlflow.tracking import MlflowClient

    from churnguard import registry, tracking
    from churnguard.evaluate import run_evaluate
    from churnguard.modeling import ChurnModel
    from churnguard.score import load_model

    # on this small fixture the model's lead over logistic regression is +0.007, 95% interval
    # [-0.003, +0.015]: at 95% a baseline would rank the lists; a 60% interval lets it lead
    ev = EvaluateParams(model_dir=own.model_dir, gate_confidence=0.6)
    metrics = run_evaluate(ev)
    assert metrics["choice"]["scorer"] == "model", metrics["choice"]["reasons"]
    registry.log_training_run(own, pipeline.summary, "synthetic")
    first = registry.gate_and_register(own, ev, metrics)
    client = MlflowClient()
    assert first.promote, f"the fixture model should beat its baselines: {first.reasons}"
    assert str(client.get_model_version_by_alias("churnguard", "champion").version) == "1"
    assert client.get_model_version("churnguard", "1").tags["churnguard.scorer"] == "model"
    said = json.loads((Path(own.model_dir) / "eval" / "gate.json").read_text())["reasons"]
    assert said.count("no current champion") == 1 and len(set(said)) == len(said)

    # the same model again: re-scored champion is equal → at least as good → promoted
    second = registry.gate_and_register(own, ev, metrics)
    assert second.promote
    assert str(client.get_model_version_by_alias("churnguard", "champion").version) == "2"
    assert any("re-scored on the same test rows" in r for r in second.reasons)

    # a weak run: its best scorer is a baseline, and that baseline is worse than the
    # champion on the same rows → registered (as a pyfunc of its own) but refused
    weak = _weak_model(pipeline, own, tmp_path / "weak")
    wev = EvaluateParams(model_dir=weak.model_dir)
    wmetrics = run_evaluate(wev)
    assert wmetrics["choice"]["scorer"] in ("logreg", "recency_rank")
    third = registry.gate_and_register(weak, wev, wmetrics)
    assert not third.promote
    assert str(client.get_model_version_by_alias("churnguard", "champion").version) == "2"
    v3 = client.get_model_version("churnguard", "3")
    assert v3.tags["gate"] == "refused" and v3.tags["churnguard.scorer"] != "model"
    assert "worse than champion v2" in v3.description
    gate = json.loads((Path(weak.model_dir) / "eval" / "gate.json").read_text())
    assert gate["use"] == "models:/churnguard/2" and not gate["replaces_champion"]
    # ... so lists made from that folder (the DVC score stage) use the champion it kept
    loaded = load_model(weak.model_dir, "churnguard")
    assert loaded.version == "2" and loaded.scorer == "model"
    assert "kept the registered champion" in loaded.selection[0]

    # the registered baseline is a real scorer: its pyfunc gives its probabilities
    snaps = pd.read_parquet(Path(pipeline.features.output_dir) / "snapshots.parquet").head(300)
    baseline = mlflow.pyfunc.load_model("models:/churnguard/3")
    cols = baseline.metadata.get_input_schema().input_names()
    got = np.asarray(baseline.predict(snaps[cols].astype("float64")), dtype=float).ravel()
    from churnguard.scorers import load_scorer, scorer_folder

    own_scorer = load_scorer(scorer_folder(weak.model_dir, v3.tags["churnguard.scorer"]))
    np.testing.assert_allclose(got, own_scorer.predict(snaps), rtol=0, atol=1e-12)

    # the champion's pyfunc returns calibrated probabilities equal to booster + calibrator
    model = ChurnModel.load(own.model_dir)
    pyfunc = mlflow.pyfunc.load_model(f"models:/churnguard@{tracking.CHAMPION}")
    got = np.asarray(pyfunc.predict(snaps[model.features].astype("float64")), dtype=float).ravel()
    np.testing.assert_allclose(got, model.predict(snaps), rtol=0, atol=1e-12)
    assert ((got > 0) & (got < 1)).all() and len(np.unique(got)) > 2  # probabilities, not labels

    run = tracking.find_run_by_model(own.experiment_name, registry._model_md5(own.model_dir))
    assert run is not None
    assert "test.model.roc_auc" in run.data.metrics and "git.commit" in run.data.tags
    assert run.data.params["train.num_leaves"] == str(own.num_leaves)


def test_promote_refuses_a_worse_model_unless_forced_with_a_reason(pipeline, own, store, tmp_path):
    from mlflow.tracking import MlflowClient

    from churnguard import registry
    from churnguard.errors import ConfigError
    from churnguard.evaluate import run_evaluate

    ev = EvaluateParams(model_dir=own.model_dir, gate_confidence=0.6)  # the model leads
    registry.gate_and_register(own, ev, run_evaluate(ev))  # v1, champion
    weak = _weak_model(pipeline, own, tmp_path / "weak")
    wev = EvaluateParams(model_dir=weak.model_dir)
    assert not registry.gate_and_register(weak, wev, run_evaluate(wev)).promote  # v2
    client = MlflowClient()

    with pytest.raises(ConfigError, match="refused to promote churnguard v2.*--force"):
        registry.promote(own, ev, "2")
    with pytest.raises(ConfigError, match="--force needs --reason"):
        registry.promote(own, ev, "2", force=True)
    with pytest.raises(ConfigError, match="no version 9"):
        registry.promote(own, ev, "9")
    assert str(client.get_model_version_by_alias("churnguard", "champion").version) == "1"

    forced = registry.promote(own, ev, "2", force=True, reason="rollback drill")
    assert forced.promote
    assert str(client.get_model_version_by_alias("churnguard", "champion").version) == "2"
    v2 = client.get_model_version("churnguard", "2")
    assert v2.tags["promote_forced"] == "true" and v2.tags["promote_reason"] == "rollback drill"
    assert v2.tags["promoted_by"] and "rollback drill" in v2.description

    # back to the better model: no force needed, and nothing forced is recorded
    assert registry.promote(own, ev, "1").promote
    v1 = client.get_model_version("churnguard", "1")
    assert v1.tags["promote_forced"] == "false"
    assert str(client.get_model_version_by_alias("churnguard", "champion").version) == "1"


def test_the_default_store_follows_the_dvc_project_root(tmp_path, monkeypatch):
    from churnguard.tracking import default_tracking_uri, project_root

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert project_root() == tmp_path.resolve()
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "proj"))
    assert default_tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'proj' / 'mlflow.db'}"
    # dvc exp run --temp / --queue: a copy under <project>/.dvc/tmp/exps/<run>
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "proj" / ".dvc" / "tmp" / "exps" / "tmpab12"))
    assert project_root() == (tmp_path / "proj").resolve()


def test_an_experiment_run_never_moves_the_champion_alias(pipeline, own, store, monkeypatch):
    """Inside `dvc exp run` (DVC sets DVC_EXP_NAME) a model that passes the gate is
    registered, but what scheduled scoring uses does not change."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from churnguard import registry
    from churnguard.evaluate import run_evaluate

    ev = EvaluateParams(model_dir=own.model_dir)
    metrics = run_evaluate(ev)
    monkeypatch.setenv("DVC_EXP_NAME", "tuned-leaves")
    decision = registry.gate_and_register(own, ev, metrics)
    assert not decision.promote
    assert any("churnguard promote --version N" in r for r in decision.reasons)
    client = MlflowClient()
    assert client.get_model_version("churnguard", "1") is not None  # registered
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias("churnguard", "champion")  # alias never set
    run = client.get_run(client.get_model_version("churnguard", "1").run_id)
    assert run.info.run_name.endswith("-tuned-leaves")
    monkeypatch.delenv("DVC_EXP_NAME")
    assert registry.gate_and_register(own, ev, metrics).promote  # outside: the gate decides
