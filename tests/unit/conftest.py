"""Shared fixtures of the unit tests."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from churnguard.calibration import Calibrator
from churnguard.modeling import ChurnModel

# the two features of the tiny real model below
TINY_FEATURES = ["recency_days", "orders_90d"]


@pytest.fixture(scope="module")
def tiny_model() -> ChurnModel:
    """A real booster on two features: churn when silent for long and few recent orders."""
    rng = np.random.default_rng(3)
    x = pd.DataFrame(
        {"recency_days": rng.integers(0, 360, 400), "orders_90d": rng.integers(0, 6, 400)}
    )
    y = ((x["recency_days"] > 120) & (x["orders_90d"] <= 1)).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "min_data_in_leaf": 5, "seed": 3},
        lgb.Dataset(x.to_numpy(dtype=float), y.to_numpy(), feature_name=TINY_FEATURES),
        num_boost_round=20,
    )
    features = list(TINY_FEATURES)
    return ChurnModel(
        booster, Calibrator("identity"), features, dict.fromkeys(features, "int64"), {}
    )
