"""``churnguard backtest`` end to end, the refit, and the gate judging the evaluated fit.

Real runs on the shared synthetic pipeline's transactions (copied params, own folders).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from churnguard import backtest as B
from churnguard.cli import app
from churnguard.config import EvaluateParams, FeaturesParams
from churnguard.features import run_features
from churnguard.scorers import EVALUATED_DIR, scorer_digest
from churnguard.train import load_plan, run_train, train_model

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()
D = dt.date


def _params(tmp_path: Path, pipeline, **features) -> Path:
    data = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    data["engine"].update(temp_directory=str(tmp_path / "duck"), memory_limit="1GB")
    data["features"].update(input=str(pipeline.transactions), n_cutoffs=6, **features)
    data["train"].update(min_rows=100, n_estimators=200)
    data["backtest"].update(output_dir=str(tmp_path / "backtests"), resamples=200)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def test_backtest_command_writes_results_and_an_mlflow_run(tmp_path, pipeline, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    params = _params(tmp_path, pipeline)
    result = runner.invoke(
        app,
        ["backtest", "-p", str(params), "--as-of", "2024-06-30", "--window", "90d", "--no-btyd"],
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "backtests" / "2024-06-30_90d"
    res = json.loads((out / "backtest.json").read_text(encoding="utf-8"))
    assert (out / "backtest.png").stat().st_size > 10_000
    md = (out / "backtest.md").read_text(encoding="utf-8")
    assert "## As of 2024-06-30" in md and "churnguard lead over" in md
    (table,) = res["dates"]
    assert table["as_of"] == "2024-06-30" and table["window_days"] == 90
    assert set(table["scorers"]) == {"model", "model_evaluated", "logreg", "recency", "rfm"}
    # the outcome: active customers at the date, labelled from the 90 days after it
    snap = pd.read_parquet(Path(pipeline.features.output_dir) / "snapshots.parquet")
    assert table["n"] > 500 and 0 < table["churn_rate"] < 1
    for name, row in table["scorers"].items():
        lo, hi = row["roc_auc_ci"]
        assert lo <= row["roc_auc"] <= hi, name
    lead = table["leads"]["roc_auc"]["best_baseline"]
    assert lead["baseline"] in ("logreg", "recency", "rfm")
    assert lead["lead_ci"][0] <= lead["lead"] <= lead["lead_ci"][1]
    assert table["plan"]["as_of"] == "2024-06-30" and table["plan"]["mode"] == "direct"
    assert max(table["plan"]["train_cutoffs"]) < "2024-06-30"
    assert snap is not None
    # one MLflow run with the metrics and the three files
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = mlflow.search_runs(experiment_names=["churnguard-backtest"], output_format="list")
    assert run.data.metrics["2024-06-30.model.roc_auc"] == pytest.approx(
        table["scorers"]["model"]["roc_auc"], abs=1e-6
    )
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"backtest.json", "backtest.md", "backtest.png"} <= artifacts


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--as-of", "2024-12-01", "--window", "90d"], 3, "after the last transaction"),
        (["--as-of", "2024-06-30", "--window", "ninety"], 2, "--window"),
        (["--as-of", "2024-06-30", "--dates", "2024-05-31"], 2, "not both"),
        ([], 2, "--as-of DATE"),
    ],
    ids=[
        "a window that ends after the data is refused as input data",
        "a window that is not a length is a usage error",
        "one date and several dates at once is a usage error",
        "no date at all is a usage error",
    ],
)
def test_backtest_refusals_name_the_fix(tmp_path, pipeline, args, code, needle):
    params = _params(tmp_path, pipeline)
    result = runner.invoke(app, ["backtest", "-p", str(params), "--no-btyd", "--no-mlflow", *args])
    assert result.exit_code == code, result.output
    assert needle in result.output


def test_dates_and_windows_parse_as_documented():
    assert B.parse_window("273d") == 273 and B.parse_window("39w") == 273
    assert B.parse_window("92") == 92
    assert B.parse_dates("1997-06-30..1997-08-31/30d") == [
        D(1997, 6, 30),
        D(1997, 7, 30),
        D(1997, 8, 29),
    ]
    assert B.parse_dates("1997-09-30, 1997-06-30") == [D(1997, 6, 30), D(1997, 9, 30)]
    with pytest.raises(ValueError):
        B.parse_window("0d")


def test_refit_uses_no_row_whose_label_window_ends_after_the_as_of_date(tmp_path, pipeline):
    """The refit on every labelled cutoff reads nothing after the as-of date: built from the
    full history or from one cut at the as-of date, the shipped booster is the same, and its
    newest training labels end exactly at the as-of date."""
    as_of = D(2024, 6, 30)
    full = pd.read_parquet(pipeline.transactions)
    cut = tmp_path / "cut.parquet"
    full[full["ts"].dt.date <= as_of].to_parquet(cut, index=False)
    fp = FeaturesParams(as_of=as_of, horizon_days=90, n_cutoffs=6)
    tp = pipeline.train.model_copy(update={"refit": True})
    boosters = []
    for name, source in (("full", pipeline.transactions), ("cut", cut)):
        out = tmp_path / name
        run_features(
            fp.model_copy(update={"input": str(source), "output_dir": str(out)}), pipeline.engine
        )
        frame = pd.read_parquet(out / "snapshots.parquet")
        plan, chain = load_plan(out, frame)
        trained = train_model(frame, 90, tp, None, plan, chain)
        boosters.append(
            (trained.model.booster.model_to_string(), trained.evaluated.booster.model_to_string())
        )
        shipped = trained.summary["shipped_fit"]
        assert shipped["fit"] == "refit"
        ends = [dt.date.fromisoformat(c) + dt.timedelta(days=90) for c in shipped["train_cutoffs"]]
        assert max(ends) == as_of and all(e <= as_of for e in ends)
        assert trained.summary["evaluated_fit"]["rows"] < shipped["rows"]
    assert boosters[0] == boosters[1]


def test_the_gate_judges_the_evaluated_fit_and_the_refit_ships(pipeline, tmp_path, monkeypatch):
    from churnguard import registry
    from churnguard.evaluate import run_evaluate

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    tp = pipeline.train.model_copy(update={"model_dir": str(tmp_path / "models"), "refit": True})
    run_train(tp)
    ev = EvaluateParams(model_dir=tp.model_dir, gate_resamples=200)
    metrics = run_evaluate(ev)
    registry.gate_and_register(tp, ev, metrics)
    gate = json.loads((tmp_path / "models" / "eval" / "gate.json").read_text(encoding="utf-8"))
    meta = json.loads((tmp_path / "models" / "metadata.json").read_text(encoding="utf-8"))
    evaluated = tmp_path / "models" / EVALUATED_DIR
    assert meta["shipped_fit"]["fit"] == "refit" and meta["evaluated_fit"]["fit"] == "evaluated"
    assert gate["shipped_fit"] == "refit"
    if gate["scorer"] == "model":
        # what ships is the refit; what the gate judged is the evaluated fit, the one whose
        # test predictions the metrics were computed from
        assert gate["scorer_digest"] == scorer_digest(tmp_path / "models")
        assert gate["judged_digest"] == scorer_digest(evaluated)
        assert gate["scorer_digest"] != gate["judged_digest"]
        primary = metrics["scorers"]["model"][ev.primary_metric]
        assert gate["candidate"] == pytest.approx(primary, abs=1e-5)
    # the evaluated fit's own metadata says which fit shipped
    ev_meta = json.loads((evaluated / "metadata.json").read_text(encoding="utf-8"))
    assert ev_meta["fit"] == "evaluated" and ev_meta["shipped_fit"]["fit"] == "refit"


@pytest.mark.parametrize(
    ("horizon", "mode", "calibrated"),
    [(400, "auto", False), (120, "chained", True)],
    ids=[
        "a 400-day target on three years of history chains, with no realised window to calibrate on",
        "a chained 120-day target is calibrated on realised 120-day outcomes",
    ],
)
def test_a_long_horizon_trains_and_scores_chained(tmp_path, pipeline, horizon, mode, calibrated):
    """Features plan a chain, train fits it (and calibrates the chained horizon where a
    realised window exists), and scoring returns P(churn over the whole horizon)."""
    from churnguard.engines import get_engine
    from churnguard.modeling import ChainedScores, ChurnModel, LoadedModel

    fp = pipeline.features.model_copy(
        update={
            "output_dir": str(tmp_path / "features"),
            "horizon_days": horizon,
            "horizon_mode": mode,
            "calibration_cutoffs": 2,
        }
    )
    summary = run_features(fp, pipeline.engine)
    assert summary["plan"]["mode"] == "chained"
    assert bool(summary["plan"]["chain_origins"]) == calibrated
    tp = pipeline.train.model_copy(
        update={
            "features_dir": fp.output_dir,
            "model_dir": str(tmp_path / "models"),
            "n_estimators": 120,
            "refit": False,
        }
    )
    out = run_train(tp)
    assert out["horizon_days"] == horizon and out["label_horizon_days"] == 21
    assert (out["chain_calibration"]["kind"] == "sigmoid") == calibrated
    assert (out["chain_calibrator"] is not None) == calibrated
    model = ChurnModel.load(tmp_path / "models")
    loaded = LoadedModel(model=model, ref="models", version="file", digest="")
    snap, scorer = get_engine(pipeline.engine).score_snapshot(
        pipeline.transactions, D(2024, 12, 31), 365, loaded
    )
    assert isinstance(scorer, ChainedScores)
    active = snap[snap["lapsed"] == 0]
    p_long, p_step = scorer.predict(active), model.predict(active)
    assert ((p_long > 0) & (p_long < 1)).all()
    # no purchase in the whole horizon is rarer than none in its first 21 days
    assert np.mean(p_long) < np.mean(p_step)
    if not calibrated:  # a bare product of step probabilities, each at most 1
        assert (p_long <= p_step + 1e-12).all()


@pytest.mark.parametrize("horizon", [90, 120], ids=["direct", "chained"])
def test_btyd_features_train_and_score_through_the_engine(tmp_path, pipeline, horizon):
    """features.btyd_features: the snapshots, the chain and the scoring snapshot carry the
    MBG/NBD columns; the model is fitted on them and scores with them after a reload."""
    from churnguard.engines import get_engine
    from churnguard.feature_defs import BTYD_FEATURES
    from churnguard.modeling import ChurnModel, LoadedModel

    fp = pipeline.features.model_copy(
        update={
            "output_dir": str(tmp_path / "features"),
            "horizon_days": horizon,
            "horizon_mode": "auto" if horizon == 90 else "chained",
            "calibration_cutoffs": 2,
            "btyd_features": True,
        }
    )
    summary = run_features(fp, pipeline.engine)
    snaps = pd.read_parquet(tmp_path / "features" / "snapshots.parquet")
    bought = snaps["purchase_days"] > 0  # a customer with only returns has no MBG/NBD history
    assert snaps.loc[bought, list(BTYD_FEATURES)].notna().all().all()
    assert snaps.loc[~bought, list(BTYD_FEATURES)].isna().all().all()
    if summary["plan"]["chain_origins"]:
        chain = pd.read_parquet(tmp_path / "features" / "chain.parquet")
        bought = chain["purchase_days"] > 0
        assert chain.loc[bought, list(BTYD_FEATURES)].notna().all().all()
    tp = pipeline.train.model_copy(
        update={
            "features_dir": fp.output_dir,
            "model_dir": str(tmp_path / "models"),
            "n_estimators": 80,
        }
    )
    run_train(tp)
    model = ChurnModel.load(tmp_path / "models")
    assert set(BTYD_FEATURES) <= set(model.features)
    loaded = LoadedModel(model=model, ref="models", version="file", digest="")
    snap, scorer = get_engine(pipeline.engine).score_snapshot(
        pipeline.transactions, D(2024, 12, 31), 365, loaded
    )
    active = snap[snap["lapsed"] == 0]
    p = scorer.predict(active)
    assert ((p > 0) & (p < 1)).all()
    assert active.loc[active["purchase_days"] > 0, list(BTYD_FEATURES)].notna().all().all()
    # the scoring snapshot's columns are the same fit the features stage makes at that date
    same = run_features(
        fp.model_copy(update={"output_dir": str(tmp_path / "asof"), "as_of": D(2024, 12, 31)}),
        pipeline.engine,
    )
    assert same["as_of"] == "2024-12-31"
    current = pd.read_parquet(tmp_path / "asof" / "current.parquet").set_index("customer_id")
    got = snap.set_index("customer_id")
    for name in BTYD_FEATURES:
        np.testing.assert_allclose(got[name], current.loc[got.index, name])
