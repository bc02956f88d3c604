"""train.stack_btyd: the Pareto/NBD fit, its P(no purchase), and the two-input calibrator."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from churnguard import paretonbd as PN
from churnguard.btyd import monte_carlo_paretonbd_no_purchase
from churnguard.errors import ModelError
from churnguard.modeling import BtydStack, ChurnModel

TRUTH = {"r": 0.55, "alpha": 10.0, "s": 0.6, "beta": 12.0}


def _simulate(n: int, p: dict[str, float], seed: int) -> tuple[np.ndarray, ...]:
    """Pareto/NBD customers in weeks: Gamma(r, alpha) purchase rates, Gamma(s, beta)
    drop-out rates, exponential lifetimes; observed for T weeks (whole days)."""
    rng = np.random.default_rng(seed)
    lam, mu = rng.gamma(p["r"], 1 / p["alpha"], n), rng.gamma(p["s"], 1 / p["beta"], n)
    T, life = rng.uniform(30, 70, n), rng.exponential(1 / mu)
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = rng.exponential(1 / lam[i])
        while t <= min(T[i], life[i]):
            x[i], t_x[i] = x[i] + 1, t
            t += rng.exponential(1 / lam[i])
    return x, np.floor(t_x * 7) / 7, np.floor(T * 7) / 7


def test_maximum_likelihood_recovers_the_simulated_parameters() -> None:
    x, t_x, T = _simulate(6000, TRUTH, seed=3)
    fitted = PN.fit(x, t_x, T)
    ll = {k: PN.log_likelihood(x, t_x, T, v).mean() for k, v in (("fit", fitted), ("truth", TRUTH))}
    assert ll["fit"] >= ll["truth"]
    # the mean purchase and drop-out rates are well identified
    assert fitted["r"] / fitted["alpha"] == pytest.approx(TRUTH["r"] / TRUTH["alpha"], rel=0.15)
    assert fitted["s"] / fitted["beta"] == pytest.approx(TRUTH["s"] / TRUTH["beta"], rel=0.3)
    assert PN.fit(x, t_x, T) == fitted  # deterministic


@pytest.mark.parametrize("p", [TRUTH, {"r": 0.8, "alpha": 6.0, "s": 0.4, "beta": 2.0}])
def test_no_purchase_is_the_likelihood_ratio_and_matches_a_simulation(p) -> None:
    """Both branches of A0 (alpha ≥ beta and alpha < beta) against Monte Carlo."""
    x = np.array([0.0, 0.0, 1.0, 4.0, 10.0, 3.0])
    t_x = np.array([0.0, 0.0, 5.0, 20.0, 38.0, 40.0])
    T = np.array([10.0, 40.0, 40.0, 40.0, 40.0, 40.0])  # the last bought on the cutoff day
    got = PN.no_purchase(x, t_x, T, 3.0, p)
    rng = np.random.default_rng(0)
    mc = monte_carlo_paretonbd_no_purchase(PN.p_alive(x, t_x, T, p), x, T, 3.0, p, rng, 200_000)
    np.testing.assert_allclose(got, mc, atol=0.005)
    # a longer silence: less likely alive, more likely to stay silent; more purchases: the reverse
    assert got[1] > got[0] and got[4] < got[3]
    # the chain rule, exactly: none in (T, T+5] = none in (T, T+2] · none in (T+2, T+5] | none before
    chained = PN.no_purchase(x, t_x, T, 2.0, p) * PN.no_purchase(x, t_x, T + 2.0, 3.0, p)
    np.testing.assert_allclose(PN.no_purchase(x, t_x, T, 5.0, p), chained, rtol=1e-9)


def test_heavy_buyers_and_extreme_parameters_stay_finite() -> None:
    """Hundreds of repeat purchases match the simulation; at the corners the optimiser may
    visit, Euler's form of 2F1 keeps the log-likelihood finite (the direct series is NaN)."""
    p = {"r": 0.5, "alpha": 40.0, "s": 0.8, "beta": 0.5}
    x, t_x, T = np.array([100.0, 300.0, 600.0]), np.array([39.9, 39.95, 39.99]), np.full(3, 40.0)
    got = PN.no_purchase(x, t_x, T, 0.2, p)
    rng = np.random.default_rng(0)
    mc = monte_carlo_paretonbd_no_purchase(PN.p_alive(x, t_x, T, p), x, T, 0.2, p, rng, 100_000)
    np.testing.assert_allclose(got, mc, atol=0.005)
    x, t_x, T = _simulate(500, TRUTH, seed=1)
    corner = {"r": 1e-3, "alpha": 1096.6, "s": 1096.6, "beta": 1e-3}
    assert np.isfinite(PN.log_likelihood(x, t_x, T, corner)).all()


def _snapshot(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> pd.DataFrame:
    days = np.round(T * 7)
    return pd.DataFrame(
        {
            "cutoff_date": pd.Timestamp("1997-06-30"),
            "customer_id": np.arange(x.size),
            "purchase_days": x + 1,
            "tenure_days": days,
            "recency_days": days - np.round(t_x * 7),
        }
    )


def test_the_stack_learns_both_weights_and_scores_from_the_snapshot_columns(tmp_path) -> None:
    rng = np.random.default_rng(5)
    n = 5000
    x, t_x, T = _simulate(n, TRUTH, seed=4)
    frame = _snapshot(x, t_x, T)
    pn = PN.snapshot_no_purchase(frame, 21, TRUTH)
    np.testing.assert_allclose(pn, PN.no_purchase(x, t_x, T, 3.0, TRUTH).clip(1e-6, 1 - 1e-6))
    # an outcome driven by both the "model" (its own signal) and Pareto/NBD
    own = rng.normal(size=n)
    raw = 1 / (1 + np.exp(-own))
    logit_pn = np.log(pn / (1 - pn))
    y = (rng.random(n) < 1 / (1 + np.exp(-(0.8 * own + 1.2 * logit_pn - 0.3)))).astype(int)
    stack = BtydStack.fit(raw, pn, y, TRUTH, 21)
    assert stack.a == pytest.approx(0.8, abs=0.15) and stack.c == pytest.approx(1.2, abs=0.2)
    p = stack.predict(raw, frame)
    np.testing.assert_allclose(p, stack.combine(raw, pn))
    assert BtydStack.from_dict(json.loads(json.dumps(stack.to_dict()))) == stack
    with pytest.raises(ModelError, match="recency_days"):
        stack.predict(raw, frame.drop(columns="recency_days"))


def test_a_stacked_model_scores_through_its_metadata(tiny_model, tmp_path) -> None:
    frame = pd.DataFrame(
        {
            "recency_days": [10, 200, 300],
            "orders_90d": [3, 0, 0],
            "purchase_days": [5, 2, 1],
            "tenure_days": [300, 300, 300],
        }
    )
    stack = BtydStack(TRUTH, 90, 1.0, 0.5, -0.2)
    model = ChurnModel(
        tiny_model.booster,
        tiny_model.calibrator,
        tiny_model.features,
        tiny_model.dtypes,
        {"stack_btyd": stack.to_dict()},
    )
    expected = stack.combine(tiny_model.predict_raw(frame), stack.p_none(frame))
    np.testing.assert_allclose(model.predict(frame), expected)
    assert not np.allclose(model.predict(frame), tiny_model.predict(frame))
    model.save(tmp_path)
    np.testing.assert_allclose(ChurnModel.load(tmp_path).predict(frame), expected)
    meta = json.loads((tmp_path / "metadata.json").read_text())
    meta["stack_btyd"]["params"]["beta"] = -1.0
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="stack_btyd"):
        ChurnModel.load(tmp_path)


def test_train_model_stacks_on_out_of_time_rows(pipeline) -> None:
    from churnguard.config import TrainParams
    from churnguard.train import load_plan, load_training_frame, train_model

    frame, horizon, step = load_training_frame(pipeline.features.output_dir)
    plan, chain = load_plan(pipeline.features.output_dir, frame)
    tp = TrainParams(min_rows=100, stack_btyd=True, chain_calibration=False)
    trained = train_model(frame, horizon, tp, step, plan, chain)
    evaluated, shipped = trained.evaluated, trained.model
    assert evaluated is not None
    ev, sh = evaluated.metadata["stack_btyd"], shipped.metadata["stack_btyd"]
    assert ev["horizon_days"] == plan.label_horizon_days and ev["params"] == sh["params"]
    assert ev != sh  # the shipped stack adds the test cutoff's rows
    # the test predictions are the evaluated model's own scores of the test snapshot
    te = frame[(frame["cutoff_date"] == plan.test_cutoff) & (frame["lapsed"] == 0)]
    te = te.sort_values("customer_id")
    pred = trained.predictions[trained.predictions["split"] == "test"].sort_values("customer_id")
    np.testing.assert_allclose(evaluated.predict(te), pred["p_model"], atol=1e-7)
