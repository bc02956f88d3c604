"""Time split, training errors, calibration, model files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnguard.calibration import Calibrator, fit_calibrator
from churnguard.errors import DataError, ModelError
from churnguard.features import MODEL_FEATURES
from churnguard.fitting import plan_split
from churnguard.modeling import ChurnModel
from churnguard.train import run_train, train_model

D = dt.date


def test_split_is_by_time_and_training_labels_end_by_validation_cutoff():
    cutoffs = [D(2024, 1, 1) + dt.timedelta(days=30 * i) for i in range(8)]
    split = plan_split(cutoffs, horizon_days=90)
    assert split.test_cutoff == cutoffs[-1] and split.valid_cutoff == cutoffs[-2]
    assert split.train_cutoffs == cutoffs[:4]  # the 5th's window would end after validation
    for c in split.train_cutoffs:
        assert c + dt.timedelta(days=90) <= split.valid_cutoff


def test_too_few_cutoffs_are_refused():
    with pytest.raises(DataError, match="features.n_cutoffs"):
        plan_split([D(2024, 1, 1), D(2024, 2, 1)], horizon_days=30)
    with pytest.raises(DataError, match="no training cutoff"):
        plan_split([D(2024, 1, 1), D(2024, 2, 1), D(2024, 3, 1)], horizon_days=90)


def _snapshots(pipeline) -> pd.DataFrame:
    return pd.read_parquet(f"{pipeline.features.output_dir}/snapshots.parquet")


def test_single_class_training_labels_name_the_horizon(pipeline):
    frame = _snapshots(pipeline)
    frame["churned"] = 1
    with pytest.raises(DataError, match="single class.*horizon_days"):
        train_model(frame, 90, pipeline.train)


def test_too_few_rows_name_the_params_key(pipeline):
    frame = _snapshots(pipeline)
    with pytest.raises(DataError, match="train.min_rows"):
        train_model(frame, 90, pipeline.train.model_copy(update={"min_rows": 10**7}))


def test_split_and_lapsed_exclusion_in_the_real_run(pipeline):
    s = pipeline.summary
    assert s["test_cutoff"] > s["valid_cutoff"] > max(s["train_cutoffs"])
    preds = pd.read_parquet(f"{pipeline.train.model_dir}/eval/predictions.parquet")
    assert set(preds["split"]) == {"valid", "test"}
    snaps = _snapshots(pipeline)
    test_rows = snaps[(snaps.cutoff_date.astype(str) == s["test_cutoff"]) & (snaps.lapsed == 0)]
    assert len(preds[preds.split == "test"]) == len(test_rows) == s["rows"]["test"]


def test_calibration_lowers_brier_on_the_test_cutoff(pipeline):
    preds = pd.read_parquet(f"{pipeline.train.model_dir}/eval/predictions.parquet")
    test = preds[preds.split == "test"]
    y = test["churned"].to_numpy()
    raw = np.mean((test["p_model_raw"] - y) ** 2)
    cal = np.mean((test["p_model"] - y) ** 2)
    assert cal < raw


def test_calibrator_fixes_a_miscalibrated_score():
    rng = np.random.default_rng(0)
    true_p = rng.uniform(0.05, 0.95, 4000)
    y = (rng.uniform(size=true_p.size) < true_p).astype(int)
    skewed = true_p**3  # ranks right, probabilities far too low
    cal, cv = fit_calibrator(skewed, y, "auto")
    assert set(cv) == {"isotonic", "sigmoid"}
    assert np.mean((cal.predict(skewed) - y) ** 2) < np.mean((skewed - y) ** 2) - 0.02
    again = Calibrator.from_dict(cal.to_dict())
    np.testing.assert_allclose(again.predict(skewed), cal.predict(skewed))


def test_model_files_round_trip_and_are_deterministic(pipeline, tmp_path):
    model = ChurnModel.load(pipeline.train.model_dir)
    snaps = _snapshots(pipeline).head(200)
    p1 = model.predict(snaps)
    assert ((p1 >= 0) & (p1 <= 1)).all()
    run_train(pipeline.train.model_copy(update={"model_dir": str(tmp_path / "m2")}))
    first = Path(pipeline.train.model_dir)
    for name in ("booster.txt", "calibrator.json", "features.json"):
        assert (tmp_path / "m2" / name).read_bytes() == (first / name).read_bytes(), name
    meta1 = json.loads((first / "metadata.json").read_text())
    meta2 = json.loads((tmp_path / "m2" / "metadata.json").read_text())
    assert meta2["params"].pop("model_dir") != meta1["params"].pop("model_dir")
    assert meta1 == meta2
    np.testing.assert_array_equal(ChurnModel.load(tmp_path / "m2").predict(snaps), p1)


def test_feature_mismatch_is_a_model_error(pipeline):
    model = ChurnModel.load(pipeline.train.model_dir)
    snaps = _snapshots(pipeline).head(5).drop(columns=[MODEL_FEATURES[3]])
    with pytest.raises(ModelError, match=MODEL_FEATURES[3]):
        model.predict(snaps)


def test_shap_contributions_add_up_to_the_raw_log_odds(pipeline):
    model = ChurnModel.load(pipeline.train.model_dir)
    snaps = _snapshots(pipeline).head(50)
    contrib = model.booster.predict(model.matrix(snaps), pred_contrib=True)
    raw = model.predict_raw(snaps)
    np.testing.assert_allclose(1 / (1 + np.exp(-contrib.sum(axis=1))), raw, rtol=1e-6)
    assert list(model.contributions(snaps).columns) == list(MODEL_FEATURES)
