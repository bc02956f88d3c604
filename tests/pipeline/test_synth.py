"""Tests for the synthetic purchase-history generator (churnguard.synth).

Statistical checks use a fixed seed and 5,000 customers; tolerances are several
standard errors wide, so they hold for any reasonable seed, yet tight enough to
catch a wrong formula (e.g. a rate per year used as a rate per day).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from churnguard.cli import app
from churnguard.config import GenerateParams
from churnguard.synth import (
    TRANSACTION_COLUMNS,
    TRUTH_COLUMNS,
    dropout_rate_scale,
    generate_tables,
    manager_names,
    run_generate,
)

N_CUSTOMERS = 5000
ARABIC_SCRIPT = re.compile("[\u0600-\u06ff]")
PERSIAN_ONLY_LETTERS = re.compile("[\u067e\u0686\u0698\u06a9\u06af\u06cc]")  # پ چ ژ ک گ ی


def _frames(cfg: GenerateParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    tx, truth = generate_tables(cfg)
    tx_df = tx.to_pandas()
    truth_df = truth.to_pandas()
    tx_df["ts"] = pd.to_datetime(tx_df["ts"])
    truth_df["acquired"] = pd.to_datetime(truth_df["acquired"])
    # dropout dates far in the future do not fit datetime64[ns]; cap them for arithmetic
    truth_df["dropout_ts"] = pd.to_datetime(
        truth_df["dropout_date"].map(lambda d: min(d, dt.date(2200, 1, 1)))
    )
    return tx_df, truth_df


@pytest.fixture(scope="module")
def cfg() -> GenerateParams:
    return GenerateParams(n_customers=N_CUSTOMERS, seed=123)


@pytest.fixture(scope="module")
def frames(cfg: GenerateParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    return _frames(cfg)


def _orders_before_dropout(tx: pd.DataFrame, truth: pd.DataFrame) -> tuple[int, int]:
    """Orders in the 90 days before dropout and in the 90 days before that.

    Only customers who dropped out by the end and lived at least 180 days count.
    """
    lived = (truth["dropout_ts"] - truth["acquired"]).dt.days
    churned = truth.loc[~truth["alive_at_end"] & (lived >= 180), ["customer_id", "dropout_ts"]]
    orders = tx.loc[tx["amount"] > 0, ["customer_id", "ts"]].merge(churned, on="customer_id")
    before = (orders["dropout_ts"] - orders["ts"]).dt.days
    last_90 = int(((before >= 0) & (before < 90)).sum())
    previous_90 = int(((before >= 90) & (before < 180)).sum())
    return last_90, previous_90


# -- schema and invariants -------------------------------------------------------------


def test_columns_in_documented_order(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tx, truth = frames
    assert tuple(tx.columns) == TRANSACTION_COLUMNS
    assert tuple(c for c in truth.columns if c != "dropout_ts") == TRUTH_COLUMNS


def test_rows_sorted_by_ts_customer_order(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tx, _ = frames
    resorted = tx.sort_values(["ts", "customer_id", "order_id"], kind="stable")
    assert (resorted.index == tx.index).all()
    assert tx["order_id"].is_unique


def test_ids_are_prefixed_and_zero_padded(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tx, truth = frames
    assert truth["customer_id"].str.fullmatch(r"C\d{7}").all()
    assert truth["customer_id"].is_unique
    assert tx["order_id"].str.fullmatch(r"O\d{7}(-R)?").all()
    # order numbers follow row order (assigned after sorting)
    first_lines = tx.loc[~tx["order_id"].str.endswith("-R"), "order_id"]
    assert first_lines.iloc[0] == "O0000001"
    assert first_lines.is_monotonic_increasing


def test_every_ts_within_window(
    cfg: GenerateParams, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    tx, truth = frames
    assert tx["ts"].min() >= pd.Timestamp(cfg.start_date)
    assert tx["ts"].max() <= pd.Timestamp(cfg.end_date)
    assert truth["acquired"].max() <= pd.Timestamp(cfg.end_date - dt.timedelta(days=30))


def test_customers_match_truth_and_first_order_on_acquisition(
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    tx, truth = frames
    assert set(tx["customer_id"]) == set(truth["customer_id"])
    first_ts = tx.groupby("customer_id")["ts"].min()
    acquired = truth.set_index("customer_id")["acquired"]
    assert (first_ts.sort_index() == acquired.sort_index()).all()


def test_alive_at_end_matches_dropout_date(
    cfg: GenerateParams, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    _, truth = frames
    assert (truth["alive_at_end"] == (truth["dropout_ts"] > pd.Timestamp(cfg.end_date))).all()
    assert 0 < truth["alive_at_end"].mean() < 1


def test_no_orders_after_dropout(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tx, truth = frames
    orders = tx.loc[tx["amount"] > 0, ["customer_id", "ts"]].merge(
        truth[["customer_id", "dropout_ts"]], on="customer_id"
    )
    assert (orders["ts"] <= orders["dropout_ts"]).all()


def test_amounts_and_quantities(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tx, _ = frames
    orders = tx[tx["amount"] > 0]
    assert orders["amount"].min() >= 1.0
    cents = tx["amount"] * 100
    assert np.allclose(cents, cents.round(), atol=1e-6)
    assert (orders["quantity"] >= 1).all()
    # bigger orders carry more items (quantity = 1 + Poisson(amount / 40))
    big = orders["amount"] > orders["amount"].quantile(0.9)
    assert orders.loc[big, "quantity"].mean() > orders.loc[~big, "quantity"].mean() + 1


def test_returns_are_negative_and_follow_their_order(
    cfg: GenerateParams, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    tx, _ = frames
    is_return = tx["order_id"].str.endswith("-R")
    returns = tx[is_return].copy()
    orders = tx[~is_return]
    assert len(returns) > 0
    assert (returns["amount"] < 0).all() and (returns["quantity"] < 0).all()
    assert (orders["amount"] > 0).all()
    returns["source_id"] = returns["order_id"].str.removesuffix("-R")
    joined = returns.merge(orders, left_on="source_id", right_on="order_id", suffixes=("", "_o"))
    assert len(joined) == len(returns)  # every return points at an existing order
    assert (joined["customer_id"] == joined["customer_id_o"]).all()
    delay = (joined["ts"] - joined["ts_o"]).dt.days
    assert delay.between(3, 30).all()
    assert (-joined["amount"] <= joined["amount_o"]).all()
    assert (-joined["amount"] >= 0.2 * joined["amount_o"] - 0.01).all()
    # about return_rate of orders get a return (a few are cut off by end_date)
    share = len(returns) / len(orders)
    assert 0.7 * cfg.return_rate < share < 1.2 * cfg.return_rate


def test_names_mix_arabic_persian_and_latin_scripts(
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    tx, truth = frames
    names = tx.drop_duplicates("customer_id")["customer_name"]
    arabic_script = names.str.contains(ARABIC_SCRIPT)
    persian = names.str.contains(PERSIAN_ONLY_LETTERS)
    # target mix is 40 % Arabic, 30 % Persian, 30 % Latin
    assert abs((arabic_script & ~persian).mean() - 0.4) < 0.04
    assert abs(persian.mean() - 0.3) < 0.04
    assert abs((~arabic_script).mean() - 0.3) < 0.04
    managers = set(truth["account_manager"])
    assert any(ARABIC_SCRIPT.search(m) for m in managers)
    assert any("/" in m and "'" in m for m in managers)


def test_one_manager_and_region_per_customer(
    cfg: GenerateParams, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    tx, truth = frames
    per_customer = tx.groupby("customer_id")[["account_manager", "region", "customer_name"]]
    assert (per_customer.nunique() == 1).all().all()
    merged = tx.drop_duplicates("customer_id").merge(truth, on="customer_id", suffixes=("", "_t"))
    assert (merged["account_manager"] == merged["account_manager_t"]).all()
    assert (merged["region"] == merged["region_t"]).all()
    loads = truth["account_manager"].value_counts()
    assert set(loads.index) == set(manager_names(cfg.n_managers))
    assert loads.max() > 1.2 * loads.min()  # unequal loads


def test_manager_names_extend_beyond_fixed_list() -> None:
    names = manager_names(30)
    assert len(names) == len(set(names)) == 30


# -- statistical sanity ----------------------------------------------------------------


def test_dropout_scale_formula() -> None:
    beta = dropout_rate_scale(0.35, 2.0)
    # E[exp(-365 mu)] for mu ~ Gamma(shape 2, rate beta) is (beta / (beta + 365)) ** 2
    assert (beta / (beta + 365.0)) ** 2 == pytest.approx(0.65)


def test_first_year_churn_share(
    cfg: GenerateParams, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """Binomial standard error at n=5000, p=0.35 is 0.0067; ±0.03 is about 4.5 SE."""
    _, truth = frames
    lived_days = (truth["dropout_ts"] - truth["acquired"]).dt.days
    share = (lived_days < 365).mean()
    assert abs(share - cfg.first_year_churn_share) < 0.03


def test_order_rate_per_active_year(
    cfg: GenerateParams, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    """Repeat orders per customer-year alive ≈ orders_per_year.

    The slowdown before dropout removes a few percent and seasonality averages out
    over years; ±15 % leaves room for that and for gamma heterogeneity in λ.
    """
    tx, truth = frames
    end = pd.Timestamp(cfg.end_date) + pd.Timedelta(days=1)
    active_end = truth["dropout_ts"].where(truth["dropout_ts"] < end, end)
    active_years = (active_end - truth["acquired"]).dt.days.sum() / 365.25
    repeat_orders = int((tx["amount"] > 0).sum()) - len(truth)  # minus first purchases
    rate = repeat_orders / active_years
    assert rate == pytest.approx(cfg.orders_per_year, rel=0.15)


def test_order_rate_drops_before_dropout(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """With slowdown_floor 0.35 the last 90 days run at ~0.675 of the rate before."""
    last_90, previous_90 = _orders_before_dropout(*frames)
    assert previous_90 > 500
    assert last_90 / previous_90 < 0.8


def test_no_drop_before_dropout_without_slowdown() -> None:
    """Control for the test above: slowdown_floor 1.0 keeps the rate flat."""
    cfg = GenerateParams(n_customers=N_CUSTOMERS, seed=123, slowdown_floor=1.0)
    last_90, previous_90 = _orders_before_dropout(*_frames(cfg))
    assert 0.88 < last_90 / previous_90 < 1.12


# -- files: determinism, formats, CLI --------------------------------------------------


def _cfg_in(folder: Path, **kw: object) -> GenerateParams:
    return GenerateParams(
        n_customers=2000,
        output=str(folder / "transactions.csv"),
        truth_output=str(folder / "truth.parquet"),
        **kw,
    )


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    a = _cfg_in(tmp_path / "a", seed=7)
    b = _cfg_in(tmp_path / "b", seed=7)
    c = _cfg_in(tmp_path / "c", seed=8)
    for cfg in (a, b, c):
        run_generate(cfg)
    assert Path(a.output).read_bytes() == Path(b.output).read_bytes()
    assert Path(a.truth_output).read_bytes() == Path(b.truth_output).read_bytes()
    assert Path(a.output).read_bytes() != Path(c.output).read_bytes()
    assert Path(a.truth_output).read_bytes() != Path(c.truth_output).read_bytes()


def test_run_generate_writes_files_and_summary(tmp_path: Path) -> None:
    cfg = _cfg_in(tmp_path / "nested" / "raw", seed=3)
    summary = run_generate(cfg)
    written = pacsv.read_csv(cfg.output).to_pandas()
    truth = pq.read_table(cfg.truth_output).to_pandas()
    assert list(written.columns) == list(TRANSACTION_COLUMNS)
    assert summary["rows"] == len(written)
    assert summary["customers"] == cfg.n_customers == written["customer_id"].nunique()
    assert summary["returns"] == int((written["amount"] < 0).sum()) > 0
    assert summary["churned_by_end"] == int((~truth["alive_at_end"]).sum())
    assert summary["date_min"] == str(written["ts"].min())
    assert summary["date_max"] == str(written["ts"].max())
    assert summary["output"] == cfg.output
    assert summary["truth_output"] == cfg.truth_output
    assert ARABIC_SCRIPT.search("".join(written["customer_name"].head(200)))
    leftovers = [p.name for p in Path(cfg.output).parent.iterdir() if p.suffix == ".tmp"]
    assert leftovers == []


def test_parquet_format_round_trips(tmp_path: Path) -> None:
    cfg = _cfg_in(tmp_path, seed=5).model_copy(
        update={"format": "parquet", "output": str(tmp_path / "tx.parquet")}
    )
    run_generate(cfg)
    expected, _ = generate_tables(cfg)
    assert pq.read_table(cfg.output).equals(expected)


def test_cli_generate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {"generate": {"seed": 11, "truth_output": str(tmp_path / "out" / "truth.parquet")}}
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out" / "tx.csv"
    result = CliRunner().invoke(
        app, ["generate", "--params", str(params), "--n-customers", "300", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.exists() and (tmp_path / "out" / "truth.parquet").exists()
    assert pacsv.read_csv(out).column("customer_id").to_pandas().nunique() == 300
