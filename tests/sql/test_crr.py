"""Customer retention rate: playbook examples, a hand-built table, properties, periods, errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnguard import crr as C
from churnguard.config import EngineParams, ReportParams
from churnguard.engines import get_engine
from churnguard.errors import ConfigError, DataError

D = dt.date


def transactions(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    """Canonical transaction columns from (customer_id, 'YYYY-MM-DD', amount)."""
    df = pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])
    df["ts"] = pd.to_datetime(df["ts"]).astype("datetime64[us]")
    df["amount"] = df["amount"].astype(float)
    return df


@pytest.fixture()
def engine(tmp_path: Path) -> EngineParams:
    return EngineParams(temp_directory=str(tmp_path / "duck"), memory_limit="1GB", threads=1)


def table(
    engine: EngineParams, df: pd.DataFrame, period: str = "month", window: int = 30, **kw
) -> pd.DataFrame:
    return C.crr_table(get_engine(engine), df, period, window, **kw)  # type: ignore[arg-type]


# -- the playbook's worked examples -------------------------------------------------


@pytest.mark.parametrize(
    ("start", "new", "lost"),
    [(100, 20, 10), (1000, 200, 100)],
    ids=["100 customers, 20 new, 10 lost is 90%", "1000 customers, 200 new, 100 lost is 90%"],
)
def test_playbook_worked_examples(start, new, lost):
    end = start + new - lost
    assert end == {100: 110, 1000: 1100}[start]
    assert C.crr_from_counts(start, end, new) == 90.0


def test_no_customers_at_start_has_no_rate():
    assert C.crr_from_counts(0, 5, 5) is None


def test_impossible_counts_are_refused():
    with pytest.raises(ValueError, match="cannot exceed"):
        C.crr_from_counts(10, 3, 4)
    with pytest.raises(ValueError, match="non-negative"):
        C.crr_from_counts(-1, 3, 0)


# -- a hand-built table (window 30 days: active at d = purchase in (d - 30, d]) -------

HAND_ROWS = [
    ("A", "2023-12-10", 20.0),  # a regular: active at every boundary
    ("A", "2024-01-20", 20.0),
    ("A", "2024-02-25", 20.0),
    ("A", "2024-03-20", 20.0),
    ("B", "2023-12-20", 15.0),  # lost in January, reactivated in March
    ("B", "2024-03-05", 15.0),
    ("C", "2024-01-15", 30.0),  # new in January, lost in March
    ("C", "2024-02-10", 30.0),
    ("D", "2024-02-20", 12.0),  # new in February; buys on the last day of March
    ("D", "2024-03-31", 12.0),
    ("E", "2024-03-10", 40.0),  # new in March; a later return changes nothing
    ("E", "2024-03-31", -5.0),
    ("F", "2024-01-05", -10.0),  # only a return: never a customer
    ("G", "2024-01-03", 9.0),  # new in January, lost in February
    ("H", "2024-02-05", 8.0),  # new in February; 2024-03-01 is 30 days before 03-31: lost
    ("H", "2024-03-01", 8.0),
]

# period: (S, E, new, reactivated, retained, lost, crr, churn)
HAND_EXPECTED = {
    # S = {A, B} at 12-31; E = {A, C, G} at 01-31; new C, G; B lost
    "2024-01": (2, 3, 2, 0, 1, 1, 50.0, 50.0),
    # S = {A, C, G}; E = {A, C, D, H} at 02-29; new D, H; G lost
    "2024-02": (3, 4, 2, 0, 2, 1, 66.67, 33.33),
    # S = {A, C, D, H}; E = {A, B, D, E}; new E, B back; C and H lost
    "2024-03": (4, 4, 1, 1, 2, 2, 50.0, 50.0),
}


def test_hand_built_table_matches_hand_computed_counts(engine):
    out = table(engine, transactions(HAND_ROWS))
    assert list(out.columns) == list(C.COLUMNS)
    # December starts before the first transaction (2023-12-10): S unobserved, skipped
    assert list(out["period"]) == list(HAND_EXPECTED)
    assert list(out["period_start"]) == [D(2024, 1, 1), D(2024, 2, 1), D(2024, 3, 1)]
    assert list(out["period_end"]) == [D(2024, 1, 31), D(2024, 2, 29), D(2024, 3, 31)]
    cols = [
        "customers_start",
        "customers_end",
        "new_customers",
        "reactivated_customers",
        "retained_customers",
        "lost_customers",
        "crr_pct",
        "churn_rate_pct",
    ]
    got = {row.period: tuple(getattr(row, c) for c in cols) for row in out.itertuples()}
    assert got == HAND_EXPECTED
    # the 30-day window reaches back to 2023-12-02 at the January start, before the data
    assert list(out["full_lookback"]) == [False, True, True]
    assert (out["active_within_days"] == 30).all()
    assert "(d - 30 days, d]" in out.attrs["definition"]


def test_march_crr_is_the_playbook_formula_with_reactivated_in_n(engine):
    march = table(engine, transactions(HAND_ROWS)).iloc[-1]
    n = march.new_customers + march.reactivated_customers
    assert march.crr_pct == round(C.crr_from_counts(4, 4, n), 2) == 50.0
    # counting only first-time buyers in N would hide C's and H's loss behind B's return
    assert C.crr_from_counts(4, 4, march.new_customers) == 75.0


def test_a_period_ending_after_the_last_transaction_is_skipped(engine):
    rows = [r for r in HAND_ROWS if r[1] != "2024-03-31"]
    out = table(engine, transactions(rows))
    assert list(out["period"]) == ["2024-01", "2024-02"]


def test_start_and_end_keep_only_periods_inside(engine):
    out = table(engine, transactions(HAND_ROWS), start=D(2024, 1, 15), end=D(2024, 3, 31))
    assert list(out["period"]) == ["2024-02", "2024-03"]


def test_row_order_does_not_matter(engine):
    df = transactions(HAND_ROWS)
    shuffled = df.sample(frac=1.0, random_state=3).reset_index(drop=True)
    pd.testing.assert_frame_equal(table(engine, df), table(engine, shuffled))


# -- properties on random purchase histories ----------------------------------------

histories = st.lists(
    st.tuples(
        st.sampled_from("abcdefg"),
        st.integers(min_value=0, max_value=500),
        st.sampled_from([25.0, 0.0, -5.0]),
    ),
    min_size=1,
    max_size=40,
)


def reference(df: pd.DataFrame, start: dt.date, end: dt.date, window: int) -> tuple[int, ...]:
    """S, E, new, reactivated straight from the definition, in plain Python."""
    buys = df[df["amount"] >= 0]
    days = {c: set(g["ts"].dt.date) for c, g in buys.groupby("customer_id")}

    def active(c: str, d: dt.date) -> bool:
        return any(d - dt.timedelta(days=window) < x <= d for x in days[c])

    s = {c for c in days if active(c, start - dt.timedelta(days=1))}
    e = {c for c in days if active(c, end)}
    new = {c for c in e if min(days[c]) >= start}
    return len(s), len(e), len(new), len(e - s - new)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=histories,
    window=st.integers(min_value=1, max_value=200),
    period=st.sampled_from(["month", "quarter", "year"]),
)
def test_crr_properties_on_random_histories(engine, rows, window, period):
    base = D(2023, 11, 17)
    # returns by "z" pin the data range to 500 days without adding a customer
    rows = [("z", 0, -1.0), *rows, ("z", 500, -1.0)]
    df = transactions([(c, str(base + dt.timedelta(days=k)), a) for c, k, a in rows])
    out = table(engine, df, period, window)
    for row in out.itertuples():
        s, e = row.customers_start, row.customers_end
        n = row.new_customers + row.reactivated_customers
        assert (s, e, row.new_customers, row.reactivated_customers) == reference(
            df, row.period_start, row.period_end, window
        )
        assert 0 <= e - n <= min(e, s)
        assert row.lost_customers == s - (e - n) >= 0
        if s > 0:
            assert 0 <= row.crr_pct <= 100
            assert row.crr_pct + row.churn_rate_pct == pytest.approx(100.0, abs=1e-9)
        else:
            assert pd.isna(row.crr_pct) and pd.isna(row.churn_rate_pct)


# -- period labels ------------------------------------------------------------------


def long_history() -> pd.DataFrame:
    rows = [("a", "2022-12-15", 10.0), ("b", "2025-01-05", 10.0)]
    day = D(2023, 1, 3)
    while day < D(2025, 1, 1):
        rows.append(("a", str(day), 10.0))
        day += dt.timedelta(days=20)
    return transactions(rows)


@pytest.mark.parametrize(
    ("period", "labels", "first", "last"),
    [
        (
            "quarter",
            [f"{y}Q{q}" for y in (2023, 2024) for q in (1, 2, 3, 4)],
            (D(2023, 1, 1), D(2023, 3, 31)),
            (D(2024, 10, 1), D(2024, 12, 31)),
        ),
        (
            "year",
            ["2023", "2024"],
            (D(2023, 1, 1), D(2023, 12, 31)),
            (D(2024, 1, 1), D(2024, 12, 31)),
        ),
    ],
    ids=["quarters are labelled 2023Q1..2024Q4", "years are labelled 2023, 2024"],
)
def test_quarter_and_year_periods_label_correctly(engine, period, labels, first, last):
    out = table(engine, long_history(), period, 90)
    assert list(out["period"]) == labels
    assert (out["period_start"].iloc[0], out["period_end"].iloc[0]) == first
    assert (out["period_start"].iloc[-1], out["period_end"].iloc[-1]) == last
    # "a" buys every 20 days: always active with a 90-day window
    assert (out["crr_pct"] == 100.0).all()


def test_unknown_period_is_a_config_error(engine):
    with pytest.raises(ConfigError, match="allowed: month, quarter, year"):
        table(engine, transactions(HAND_ROWS), "week")


# -- run_crr: files and errors ------------------------------------------------------


def test_run_crr_writes_the_csv(tmp_path, engine):
    src = tmp_path / "tx.parquet"
    transactions(HAND_ROWS).to_parquet(src, index=False)
    out_csv = tmp_path / "reports" / "crr.csv"
    frame = C.run_crr(src, "month", ReportParams(active_within_days=30), engine, out_csv)
    back = pd.read_csv(out_csv)
    assert list(back.columns) == list(C.COLUMNS)
    assert list(back["period"]) == list(frame["period"])
    assert list(back["crr_pct"]) == [50.0, 66.67, 50.0]
    assert list(back["period_start"]) == ["2024-01-01", "2024-02-01", "2024-03-01"]


def test_missing_file_is_a_data_error_naming_the_key(tmp_path, engine):
    with pytest.raises(DataError, match="features.input") as err:
        C.run_crr(tmp_path / "nope.parquet", "month", ReportParams(), engine, None)
    assert "nope.parquet" in str(err.value)


def test_no_purchases_is_a_data_error(tmp_path, engine):
    src = tmp_path / "returns.parquet"
    transactions([("a", "2024-01-05", -3.0), ("b", "2024-04-05", -1.0)]).to_parquet(src)
    with pytest.raises(DataError, match="no purchase lines"):
        C.run_crr(src, "month", ReportParams(), engine, None)


def test_no_complete_period_is_a_data_error(tmp_path, engine):
    src = tmp_path / "short.parquet"
    transactions([("a", "2024-01-05", 3.0), ("a", "2024-01-25", 3.0)]).to_parquet(src)
    with pytest.raises(DataError, match="no complete month"):
        C.run_crr(src, "month", ReportParams(), engine, None)
