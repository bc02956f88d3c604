"""The generator's optional treatment effect: the default output is untouched, the past is
never rewritten, saved customers buy inside the window, and a later list never changes
what came before it."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnguard.config import GenerateParams, TreatmentParams
from churnguard.synth import apply_treatment, generate_tables, run_generate, saved_entries

D1, D2 = dt.date(2024, 6, 3), dt.date(2024, 8, 5)
RATES = {"call": 0.5, "nothing": 0.0}
CFG = GenerateParams(
    n_customers=3000,
    seed=5,
    end_date=dt.date(2024, 12, 31),
    treatment=TreatmentParams(ledger="unused", save_rates=RATES, response_within_days=20),
)
# `churnguard generate` with the default params.yaml (make run's data): its MD5 must not move
DEFAULT_CSV_MD5 = "5d997281ea991d6b5fb2c9462a82ed96"


@pytest.fixture(scope="module")
def world():
    return generate_tables(CFG.model_copy(update={"treatment": None}))


def entries(n: int, day: dt.date, action: str = "call", start: int = 0):
    ids = [f"C{i:07d}" for i in range(start + 1, start + n + 1)]
    return ids, [day] * n, [action] * n


def lines(table) -> pd.DataFrame:
    return table.to_pandas()


def test_the_default_output_is_byte_identical(tmp_path: Path):
    out = tmp_path / "transactions.csv"
    run_generate(GenerateParams(output=str(out), truth_output=str(tmp_path / "truth.parquet")))
    assert hashlib.md5(out.read_bytes()).hexdigest() == DEFAULT_CSV_MD5


def test_nothing_on_or_before_the_list_date_changes(world):
    tx, truth = world
    treated, _, counts = apply_treatment(CFG, tx, truth, *entries(2000, D1))
    before, after = lines(tx), lines(treated)
    assert (
        before[before["ts"] <= D1]
        .reset_index(drop=True)
        .equals(after[after["ts"] <= D1].reset_index(drop=True))
    )
    assert counts == {"treated_entries": 2000, "saved": counts["saved"]}
    assert 0.45 < counts["saved"] / 2000 < 0.55


def test_every_saved_customer_buys_within_the_response_window(world):
    tx, truth = world
    ids, days, actions = entries(2000, D1)
    treated, new_truth, _ = apply_treatment(CFG, tx, truth, ids, days, actions)
    saved = set(np.asarray(ids)[saved_entries(CFG.seed, CFG.treatment, ids, days, actions)])
    after = lines(treated)
    window = after[(after["ts"] > D1) & (after["ts"] <= D1 + dt.timedelta(days=20))]
    assert saved <= set(window.loc[window["amount"] >= 0, "customer_id"])
    # a saved customer's truth carries the fresh lifetime
    t = new_truth.to_pandas().set_index("customer_id")
    assert (t.loc[sorted(saved), "dropout_date"] > D1).all()


def test_unsaved_and_untreated_customers_are_untouched(world):
    tx, truth = world
    ids, days, actions = entries(2000, D1)
    treated, _, _ = apply_treatment(CFG, tx, truth, ids, days, actions)
    saved = set(np.asarray(ids)[saved_entries(CFG.seed, CFG.treatment, ids, days, actions)])
    before, after = lines(tx), lines(treated)
    keep = lambda f: f[~f["customer_id"].isin(saved)].reset_index(drop=True)  # noqa: E731
    assert keep(before).equals(keep(after))


def test_an_action_with_no_effect_changes_nothing(world):
    tx, truth = world
    treated, _, counts = apply_treatment(CFG, tx, truth, *entries(2000, D1, "nothing"))
    assert counts["saved"] == 0 and lines(treated).equals(lines(tx))


def test_a_later_list_never_changes_the_world_before_it(world):
    tx, truth = world
    first = apply_treatment(CFG, tx, truth, *entries(1500, D1))[0]
    ids1, days1, acts1 = entries(1500, D1)
    ids2, days2, acts2 = entries(1500, D2, start=750)  # overlaps: some saved twice
    both = apply_treatment(CFG, tx, truth, ids1 + ids2, days1 + days2, acts1 + acts2)[0]
    a, b = lines(first), lines(both)
    assert a[a["ts"] <= D2].reset_index(drop=True).equals(b[b["ts"] <= D2].reset_index(drop=True))


def test_the_treated_world_stays_sorted_with_unique_order_lines(world):
    tx, truth = world
    treated = lines(apply_treatment(CFG, tx, truth, *entries(2000, D1))[0])
    assert treated.equals(
        treated.sort_values(["ts", "customer_id", "order_id"], kind="stable").reset_index(drop=True)
    )
    assert not treated.duplicated(["customer_id", "order_id"]).any()
    new = treated[treated["order_id"].str.startswith("T")]
    names = lines(tx).drop_duplicates("customer_id").set_index("customer_id")
    assert (new["customer_name"].to_numpy() == names.loc[new["customer_id"], "customer_name"]).all()
