"""A backtest at a past date sees nothing after it, and the new features are what they say.

``churnguard backtest`` builds every as-of date's features from the full canonical file
(no re-ingest): the features stage hides the lines after the as-of date. Property: every
file it writes (snapshots, scoring snapshot, chain) is identical to what the same stage
writes from a file physically cut at the as-of date, whatever the date and the plan.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnguard import features as F
from churnguard.config import EngineParams, FeaturesParams
from churnguard.feature_defs import BTYD_FEATURES, CHAIN_FILE

D = dt.date
START = D(2023, 1, 1)


def _history(n_customers: int = 60, seed: int = 5) -> pd.DataFrame:
    """Canonical lines over two years: irregular buyers, some returns, quantities 1-4."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_customers):
        first = int(rng.integers(0, 500))
        gap = float(rng.uniform(10, 120))
        day, k = first, 0
        while day < 730:
            qty = int(rng.integers(1, 5))
            rows.append((f"c{i:03d}", f"o{i}-{k}", START + dt.timedelta(days=day), 12.5 * qty, qty))
            if rng.random() < 0.1:
                rows.append(
                    (f"c{i:03d}", f"o{i}-{k}r", START + dt.timedelta(days=day + 3), -5.0, -1)
                )
            day += int(rng.exponential(gap)) + 1
            k += 1
    df = pd.DataFrame(rows, columns=["customer_id", "order_id", "ts", "amount", "quantity"])
    df["ts"] = pd.to_datetime(df["ts"]).astype("datetime64[us]")
    df["quantity"] = df["quantity"].astype(float)
    df["product_id"] = None
    df["account_manager"] = "Sara"
    df["customer_name"] = df["customer_id"]
    df["region"] = "North"
    df = df.sort_values(["customer_id", "ts"], kind="stable").reset_index(drop=True)
    df["source_row"] = range(1, len(df) + 1)
    return df


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("pit")
    df = _history()
    df.to_parquet(root / "full.parquet", index=False)
    return root, df


@pytest.mark.parametrize("btyd", [False, True])
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    offset=st.integers(300, 640),
    horizon=st.sampled_from([30, 120]),
    mode=st.sampled_from(["auto", "chained"]),
)
def test_features_at_a_past_date_never_see_later_lines(files, offset, horizon, mode, btyd) -> None:
    root, df = files
    as_of = START + dt.timedelta(days=offset)
    engine = EngineParams(temp_directory=str(root / "duck"), memory_limit="1GB", threads=1)
    cut = root / f"cut_{offset}.parquet"
    df[df["ts"].dt.date <= as_of].to_parquet(cut, index=False)
    fp = FeaturesParams(
        as_of=as_of,
        horizon_days=horizon,
        cutoff_step_days=30,
        n_cutoffs=6,
        horizon_mode=mode,
        base_horizon_days=14,
        base_cutoff_step_days=14,
        calibration_cutoffs=3,
        btyd_features=btyd,  # the MBG/NBD is fitted on each cutoff's own rows
    )
    out_full = root / f"full_{offset}_{horizon}_{mode}_{btyd}"
    out_cut = root / f"cut_{offset}_{horizon}_{mode}_{btyd}"
    a = F.run_features(
        fp.model_copy(update={"input": str(root / "full.parquet"), "output_dir": str(out_full)}),
        engine,
    )
    b = F.run_features(
        fp.model_copy(update={"input": str(cut), "output_dir": str(out_cut)}), engine
    )
    assert a["plan"] == b["plan"]
    for name in (F.SNAPSHOTS_FILE, F.CURRENT_FILE, CHAIN_FILE):
        x, y = pd.read_parquet(out_full / name), pd.read_parquet(out_cut / name)
        pd.testing.assert_frame_equal(x, y, check_dtype=False)
        if name != CHAIN_FILE or len(x):
            assert (set(BTYD_FEATURES) <= set(x)) == btyd
    chain = pd.read_parquet(out_full / CHAIN_FILE)
    if a["plan"]["mode"] == "chained" and a["plan"]["chain_origins"]:
        # each chain step is the origin's history seen later: recency grows by the step
        first = chain[chain["chain_step"] == 0].set_index(["chain_origin", "customer_id"])
        for k, part in chain.groupby("chain_step"):
            part = part.set_index(["chain_origin", "customer_id"])
            shift = k * a["plan"]["label_horizon_days"]
            assert (part["recency_days"] == first.loc[part.index, "recency_days"] + shift).all()
            assert (part["purchase_days"] == first.loc[part.index, "purchase_days"]).all()


def test_basket_first_purchase_and_tenure_rates_by_hand(tmp_path: Path) -> None:
    rows = [
        # customer A: 2 units for 20 on day 1 (first), then 3 + 1 units for 40 on day 31
        ("A", "a1", "2024-01-01", 20.0, 2.0),
        ("A", "a2", "2024-01-31", 30.0, 3.0),
        ("A", "a3", "2024-01-31", 10.0, 1.0),
        ("A", "a2r", "2024-02-05", -10.0, -1.0),  # a return: no units, no purchase day
        ("B", "b1", "2024-02-20", 15.0, None),  # no quantity recorded
    ]
    df = pd.DataFrame(rows, columns=["customer_id", "order_id", "ts", "amount", "quantity"])
    df["ts"] = pd.to_datetime(df["ts"]).astype("datetime64[us]")
    df["product_id"] = None
    df["account_manager"] = df["customer_name"] = df["region"] = "x"
    df["source_row"] = range(1, len(df) + 1)
    df.to_parquet(tmp_path / "tx.parquet", index=False)
    engine = EngineParams(temp_directory=str(tmp_path / "duck"), memory_limit="1GB", threads=1)
    snap = F.snapshot_frame(tmp_path / "tx.parquet", D(2024, 3, 1), 365, engine)
    a = snap.set_index("customer_id").loc["A"]
    assert a["units_total"] == 6.0
    assert a["units_per_order"] == pytest.approx(6 / 3)  # three orders
    assert a["avg_unit_price"] == pytest.approx(60 / 6)  # gross purchases / units
    assert a["max_order_units"] == 3.0
    assert a["last_day_units"] == 4.0
    assert (a["first_day_spend"], a["first_day_units"]) == (20.0, 2.0)
    # tenure 60 days, 2 purchase days, net spend 50, silent 30 days
    assert a["purchase_days_per_30d"] == pytest.approx(30 * 2 / 60)
    assert a["spend_per_30d"] == pytest.approx(30 * 50 / 60)
    assert a["recency_to_tenure"] == pytest.approx(30 / 60)
    b = snap.set_index("customer_id").loc["B"]
    assert pd.isna(b["units_total"]) and pd.isna(b["units_per_order"])
    assert pd.isna(b["avg_unit_price"]) and pd.isna(b["first_day_units"])
    assert b["first_day_spend"] == 15.0
    # tenure 10 days is floored at 30: one purchase day per 30 days
    assert b["purchase_days_per_30d"] == pytest.approx(1.0)
    assert b["recency_to_tenure"] == pytest.approx(1.0)  # one-time buyer: silent all along
