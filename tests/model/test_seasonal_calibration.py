"""Calibration on several out-of-time dates beats calibration on one seasonal date.

A synthetic history with a strong yearly season (purchase rates × 1.9 at the peak, × 0.1
in the trough), quarterly cutoffs and a 30-day label: the validation cutoff's window is
the peak (few churners), the test cutoff's window a quarter later (an average month). A
calibrator fitted on the validation cutoff alone learns peak-season churn and
under-predicts at test; one fitted on four dates spread over the year averages the season
out. Early stopping uses the validation cutoff either way.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from churnguard.config import (
    FeaturesParams,
    GenerateParams,
    IngestParams,
    SourceParams,
    TrainParams,
)
from churnguard.features import run_features
from churnguard.ingest import run_ingest
from churnguard.synth import run_generate
from churnguard.train import load_plan, train_model


@pytest.fixture(scope="module")
def seasonal(tmp_path_factory, pipeline):
    root = tmp_path_factory.mktemp("seasonal")
    raw = root / "raw.csv"
    run_generate(
        GenerateParams(
            n_customers=2000,
            seed=3,
            start_date=dt.date(2022, 1, 1),
            end_date=dt.date(2024, 12, 31),
            orders_per_year=6.0,
            seasonality_amplitude=0.9,
            seasonality_peak_day=259,  # mid-September: the validation window
            output=str(raw),
            truth_output=str(root / "truth.parquet"),
        )
    )
    run_ingest(
        IngestParams(source=SourceParams(path=str(raw)), output_dir=str(root / "interim")),
        pipeline.engine,
    )
    fp = FeaturesParams(
        input=str(root / "interim" / "transactions.parquet"),
        output_dir=str(root / "features"),
        horizon_days=30,
        cutoff_step_days=91,
        n_cutoffs=9,
        calibration_cutoffs=4,
    )
    run_features(fp, pipeline.engine)
    frame = pd.read_parquet(root / "features" / "snapshots.parquet")
    plan, chain = load_plan(root / "features", frame)
    return frame, plan, chain


def _test_brier(trained) -> tuple[float, float]:
    test = trained.predictions[trained.predictions["split"] == "test"]
    y = test["churned"].to_numpy(dtype=float)
    return float(np.mean((test["p_model"] - y) ** 2)), float(test["p_model"].mean() - y.mean())


def test_several_calibration_dates_lower_brier_on_a_seasonal_history(seasonal):
    frame, plan, chain = seasonal
    assert plan.mode == "direct" and len(plan.calibration_dates) == 4
    months = sorted({d.month for d in plan.calibration_dates})
    assert len(months) == 4  # one date per season
    tp = TrainParams(min_rows=100, calibration="sigmoid", refit=False, n_estimators=150)
    several = train_model(frame, 30, tp, None, plan, chain)
    one = train_model(frame, 30, tp, None, dataclasses.replace(plan, calibration_dates=[]), chain)
    assert one.summary["calibration_dates"] == [str(plan.valid_cutoff)]
    assert several.summary["calibration_dates"] == [str(d) for d in plan.calibration_dates]
    # the same trees: only the calibrator differs
    assert several.summary["best_iteration"] == one.summary["best_iteration"]
    brier_several, bias_several = _test_brier(several)
    brier_one, bias_one = _test_brier(one)
    assert bias_one < -0.02  # the peak-season calibrator under-predicts churn at test
    assert abs(bias_several) < abs(bias_one)
    assert brier_several < brier_one
