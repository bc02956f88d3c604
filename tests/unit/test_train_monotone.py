"""train.monotone: LightGBM monotone constraints by feature name."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnguard.config import TrainParams
from churnguard.fitting import model_features


def test_monotone_constraints_hold_in_the_fitted_model() -> None:
    """train.monotone: P(churn) never falls as recency grows, whatever the other features."""
    from churnguard.errors import ConfigError
    from churnguard.fitting import _fit_booster

    rng = np.random.default_rng(0)
    n = 3000
    x = pd.DataFrame(
        {"recency_days": rng.uniform(0, 300, n), "purchase_days": rng.integers(1, 10, n)}
    ).astype(float)
    # a noisy, locally non-monotone truth: churn mostly rises with recency
    logit = (
        0.01 * x["recency_days"] + 0.8 * np.sin(x["recency_days"] / 15) - 0.2 * x["purchase_days"]
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()
    features = list(x.columns)
    p = TrainParams(num_leaves=15, min_child_samples=5, monotone={"recency_days": 1})
    booster, _ = _fit_booster(x, y, features, p, 150)
    grid = pd.DataFrame(
        {
            "recency_days": np.repeat(np.linspace(0, 300, 301)[None, :], 9, 0).ravel(),
            "purchase_days": np.repeat(np.arange(1.0, 10.0), 301),
        }
    )
    pred = booster.predict(grid[features].to_numpy()).reshape(9, 301)
    assert (np.diff(pred, axis=1) >= -1e-12).all()
    free, _ = _fit_booster(x, y, features, TrainParams(num_leaves=15, min_child_samples=5), 150)
    assert (np.diff(free.predict(grid[features].to_numpy()).reshape(9, 301), axis=1) < 0).any()
    with pytest.raises(ConfigError, match="train.monotone"):
        model_features(TrainParams(monotone={"no_such_feature": 1}))
