"""Point-in-time features: a hand-built table, leak-freedom properties, the feature dictionary."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pandas as pd
import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnguard import features as F
from churnguard.config import EngineParams, FeaturesParams
from churnguard.db import connect
from churnguard.errors import DataError
from churnguard.feature_defs import CHAIN_FILE

D = dt.date


def canonical(rows: list[tuple]) -> pd.DataFrame:
    """Canonical transactions from (customer_id, order_id, 'YYYY-MM-DD', amount, product_id)."""
    df = pd.DataFrame(rows, columns=["customer_id", "order_id", "ts", "amount", "product_id"])
    df["ts"] = pd.to_datetime(df["ts"]).astype("datetime64[us]")
    df["amount"] = df["amount"].astype(float)
    df["quantity"] = 1.0
    df["account_manager"] = "Maryam"
    df["customer_name"] = df["customer_id"].map(lambda c: f"Customer {c}")
    df["region"] = "Tehran"
    df["source_row"] = range(1, len(df) + 1)
    return df


HAND_ROWS = [
    ("A", "o1", "2024-01-01", 100.0, "p1"),
    ("A", "o2", "2024-01-11", 50.0, "p2"),
    ("A", "o2r", "2024-01-15", -20.0, None),  # a return: not a purchase
    ("A", "o3", "2024-02-10", 30.0, "p1"),
    ("B", "o4", "2024-01-20", 10.0, "p3"),
    ("B", "o5", "2024-03-15", 10.0, "p3"),
    ("C", "o6", "2024-02-25", 70.0, None),  # first purchase after both cutoffs
]


@pytest.fixture()
def engine(tmp_path: Path) -> EngineParams:
    return EngineParams(temp_directory=str(tmp_path / "duck"), memory_limit="1GB", threads=1)


def snapshot(
    tmp_path: Path,
    engine: EngineParams,
    df: pd.DataFrame,
    cutoffs: list[dt.date],
    horizon: int | None = 30,
    lost_after: int = 180,
) -> pd.DataFrame:
    src = tmp_path / "tx.parquet"
    df.to_parquet(src, index=False)
    out = tmp_path / "snap.parquet"
    con = connect(engine)
    try:
        F.build_snapshot(con, src, cutoffs, horizon, lost_after, out)
    finally:
        con.close()
    return pd.read_parquet(out)


def test_hand_built_table_matches_hand_computed_features(tmp_path, engine):
    out = snapshot(tmp_path, engine, canonical(HAND_ROWS), [D(2024, 1, 31), D(2024, 2, 15)])
    assert list(out.columns) == list(F.COLUMN_NAMES)
    got = out.set_index([out.cutoff_date.astype(str), "customer_id"])
    # C bought first on 2024-02-25: not in either population
    assert sorted(got.index) == [
        ("2024-01-31", "A"),
        ("2024-01-31", "B"),
        ("2024-02-15", "A"),
        ("2024-02-15", "B"),
    ]
    a1 = got.loc[("2024-01-31", "A")]
    assert a1.recency_days == 20 and a1.tenure_days == 30
    assert a1.purchase_days == 2 and a1.orders == 2
    assert a1.monetary_total == pytest.approx(130.0)  # 100 + 50 - 20 return
    assert a1.avg_order_value == pytest.approx(75.0)
    assert a1.max_order_value == 100.0 and a1.last_day_spend == 50.0
    assert a1.gap_mean_days == 10.0 and pd.isna(a1.gap_std_days) and a1.gap_last_days == 10.0
    assert a1.recency_to_gap == pytest.approx(2.0)
    assert a1.orders_30d == 1 and a1.spend_30d == pytest.approx(30.0)  # Jan 11 and the return
    assert a1.returned_share == pytest.approx(20 / 150, abs=1e-6)  # rounded to 6 places
    assert a1.distinct_products == 2
    assert a1.churned == 0  # buys on Feb 10, inside (Jan 31, Mar 1]
    a2 = got.loc[("2024-02-15", "A")]
    assert a2.purchase_days == 3 and a2.gap_mean_days == 20.0 and a2.gap_last_days == 30.0
    assert a2.gap_std_days == pytest.approx(14.142136)
    assert a2.churned == 1  # nothing in (Feb 15, Mar 16]
    b1 = got.loc[("2024-01-31", "B")]
    assert b1.one_time_buyer == 1 and pd.isna(b1.gap_mean_days) and pd.isna(b1.recency_to_gap)
    assert b1.churned == 1  # next purchase Mar 15 is after Mar 1
    b2 = got.loc[("2024-02-15", "B")]
    assert b2.churned == 0  # Mar 15 is inside (Feb 15, Mar 16]
    assert b2.recency_days == 26


def test_current_snapshot_has_no_label(tmp_path, engine):
    out = snapshot(tmp_path, engine, canonical(HAND_ROWS), [D(2024, 3, 31)], horizon=None)
    assert out["churned"].isna().all()
    assert sorted(out.customer_id) == ["A", "B", "C"]


def test_lapsed_flag_uses_lost_after_days(tmp_path, engine):
    out = snapshot(tmp_path, engine, canonical(HAND_ROWS), [D(2024, 3, 31)], None, lost_after=30)
    lapsed = dict(zip(out.customer_id, out.lapsed, strict=True))
    # recency on Mar 31: A 50 days, B 16, C 35
    assert lapsed == {"A": 1, "B": 0, "C": 1}


def test_rfm_segments_cover_every_score_and_ties_share_a_score(tmp_path, engine):
    rows = [(f"c{i:02d}", f"o{i}", "2024-01-01", 10.0, None) for i in range(10)]
    out = snapshot(tmp_path, engine, canonical(rows), [D(2024, 2, 1)], horizon=None)
    # identical customers get identical scores
    assert out[["r_score", "f_score", "m_score"]].nunique().tolist() == [1, 1, 1]
    names = {name for name, _ in F.RFM_SEGMENTS}
    assert set(out.rfm_segment) <= names


# ---------------------------------------------------------------- properties

customer_ids = st.sampled_from(["A", "B", "C", "D"])
days = st.integers(min_value=0, max_value=120)
amounts = st.one_of(
    st.floats(min_value=0, max_value=500, allow_nan=False).map(lambda x: round(x, 2)),
    st.floats(min_value=-100, max_value=-0.01, allow_nan=False).map(lambda x: round(x, 2)),
)
line = st.tuples(customer_ids, st.integers(0, 30), days, amounts)
BASE = D(2024, 1, 1)
CUTOFF = D(2024, 3, 1)  # day 60


def to_rows(lines: list[tuple]) -> list[tuple]:
    return [(c, f"o{o}", str(BASE + dt.timedelta(days=d)), a, f"p{o % 4}") for c, o, d, a in lines]


SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@SETTINGS
@given(st.lists(line, min_size=1, max_size=40), st.lists(line, min_size=1, max_size=20))
def test_transactions_after_cutoff_never_change_its_features(tmp_path, engine, past, future):
    past = [(c, o, min(d, 60), a) for c, o, d, a in past]
    future = [(c, o + 100, max(d, 61), a) for c, o, d, a in future]
    before = snapshot(tmp_path, engine, canonical(to_rows(past)), [CUTOFF], horizon=None)
    after = snapshot(tmp_path, engine, canonical(to_rows(past + future)), [CUTOFF], horizon=None)
    pd.testing.assert_frame_equal(before, after)


@SETTINGS
@given(st.lists(line, min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_shuffling_input_rows_never_changes_output(tmp_path, engine, lines, rnd):
    df = canonical(to_rows(lines))
    shuffled = df.sample(frac=1.0, random_state=rnd.randint(0, 10_000)).reset_index(drop=True)
    a = snapshot(tmp_path, engine, df, [D(2024, 2, 1), CUTOFF], horizon=30)
    b = snapshot(tmp_path, engine, shuffled, [D(2024, 2, 1), CUTOFF], horizon=30)
    pd.testing.assert_frame_equal(a, b)


@SETTINGS
@given(st.lists(line, min_size=1, max_size=40))
def test_monetary_total_equals_input_sum_and_label_matches_window(tmp_path, engine, lines):
    df = canonical(to_rows(lines))
    horizon = 30
    out = snapshot(tmp_path, engine, df, [CUTOFF], horizon=horizon)
    day = df.ts.dt.date
    for row in out.itertuples():
        mine = df[df.customer_id == row.customer_id]
        seen = mine[day[mine.index] <= CUTOFF]
        assert row.monetary_total == pytest.approx(seen.amount.sum(), abs=1e-6)
        window = mine[
            (day[mine.index] > CUTOFF)
            & (day[mine.index] <= CUTOFF + dt.timedelta(days=horizon))
            & (mine.amount >= 0)
        ]
        assert row.churned == int(window.empty)
    # population: exactly the customers with a purchase line on or before the cutoff
    expected = set(df[(day <= CUTOFF) & (df.amount >= 0)].customer_id)
    assert set(out.customer_id) == expected


# ---------------------------------------------------------------- grid, errors, docs


def test_plan_cutoffs_ends_one_horizon_before_as_of():
    p = FeaturesParams(horizon_days=90, cutoff_step_days=30, n_cutoffs=5)
    as_of, cutoffs = F.plan_cutoffs(D(2023, 1, 1), D(2024, 12, 31), p)
    assert as_of == D(2024, 12, 31)
    assert cutoffs == [D(2024, 6, 4), D(2024, 7, 4), D(2024, 8, 3), D(2024, 9, 2), D(2024, 10, 2)]


def test_grid_that_does_not_fit_says_what_would(tmp_path):
    p = FeaturesParams(horizon_days=90, cutoff_step_days=30, n_cutoffs=12, horizon_mode="direct")
    with pytest.raises(DataError, match=r"at most 5 cutoff\(s\) fit.*features.n_cutoffs ≤ 5"):
        F.plan_cutoffs(D(2024, 6, 1), D(2024, 12, 31), p)


def test_too_few_cutoffs_for_a_direct_split_say_how_many_fit():
    p = FeaturesParams(horizon_days=90, cutoff_step_days=30, n_cutoffs=3, horizon_mode="direct")
    with pytest.raises(DataError, match=r"features.n_cutoffs between 5 and 17"):
        F.plan_cutoffs(D(2023, 6, 1), D(2024, 12, 31), p)


def test_horizon_longer_than_data_is_refused():
    p = FeaturesParams(horizon_days=400, n_cutoffs=1, horizon_mode="direct")
    with pytest.raises(DataError, match="horizon_days must be below 213"):
        F.plan_cutoffs(D(2024, 6, 1), D(2024, 12, 31), p)


def test_run_features_writes_deterministic_files(tmp_path, engine):
    rows = []
    for i in range(60):
        for k in range(1 + i % 5):
            rows.append(
                (
                    f"c{i:03d}",
                    f"o{i}-{k}",
                    str(D(2023, 1, 1) + dt.timedelta(days=(i * 7 + k * 45) % 700)),
                    10.0 + k,
                    None,
                )
            )
    src = tmp_path / "tx.parquet"
    canonical(rows).to_parquet(src, index=False)
    params = FeaturesParams(
        input=str(src),
        output_dir=str(tmp_path / "f1"),
        horizon_days=60,
        cutoff_step_days=60,
        n_cutoffs=4,
    )
    s1 = F.run_features(params, engine)
    s2 = F.run_features(params.model_copy(update={"output_dir": str(tmp_path / "f2")}), engine)
    assert s1 == s2
    for name in (F.SNAPSHOTS_FILE, F.CURRENT_FILE, F.CUTOFFS_FILE):
        assert (tmp_path / "f1" / name).read_bytes() == (tmp_path / "f2" / name).read_bytes()
    snaps = pd.read_parquet(tmp_path / "f1" / F.SNAPSHOTS_FILE)
    assert snaps.cutoff_date.nunique() == 4 and snaps.churned.notna().all()


def test_missing_input_names_the_params_key(tmp_path, engine):
    with pytest.raises(DataError, match="features.input"):
        F.run_features(FeaturesParams(input=str(tmp_path / "nope.parquet")), engine)


def test_feature_sql_selects_the_dictionary_columns_in_order():
    """The SQL's final columns are the feature dictionary (docs and engines rely on it)."""
    tree = sqlglot.parse_one(F.feature_sql(), read="duckdb")
    final = next(c for c in tree.find_all(sqlglot.exp.CTE) if c.alias == "final")
    assert final.this.named_selects == list(F.COLUMN_NAMES)


def test_feature_docs_are_generated_from_code():
    committed = Path(__file__).parents[2] / "docs" / "features.md"
    assert committed.read_text(encoding="utf-8") == F.describe_markdown(FeaturesParams()), (
        "docs/features.md is stale: run `churnguard features --describe > docs/features.md`"
    )


def test_output_does_not_depend_on_thread_count(pipeline, tmp_path):
    """Money is summed exactly (DECIMAL), so row order across threads cannot move a rounding tie."""
    digests = set()
    for threads in (1, 2, 4):
        out = tmp_path / f"t{threads}"
        engine = pipeline.engine.model_copy(update={"threads": threads})
        F.run_features(pipeline.features.model_copy(update={"output_dir": str(out)}), engine)
        digests.add((out / F.SNAPSHOTS_FILE).read_bytes() + (out / F.CURRENT_FILE).read_bytes())
    assert len(digests) == 1


def test_cutoffs_in_batches_give_the_same_snapshots_as_one_query(pipeline, tmp_path):
    """Memory is bounded by building a few cutoffs per query; the rows must not change."""
    import pyarrow.parquet as pq

    one = tmp_path / "one"
    F.run_features(
        pipeline.features.model_copy(update={"output_dir": str(one), "cutoffs_per_query": 100}),
        pipeline.engine,
    )
    expected = pq.read_table(one / F.SNAPSHOTS_FILE)
    assert len(set(expected["cutoff_date"].to_pylist())) == pipeline.features.n_cutoffs > 3
    for per_query in (1, 3):
        out = tmp_path / f"per{per_query}"
        summary = F.run_features(
            pipeline.features.model_copy(
                update={"output_dir": str(out), "cutoffs_per_query": per_query}
            ),
            pipeline.engine,
        )
        got = pq.read_table(out / F.SNAPSHOTS_FILE)
        assert got.schema.equals(expected.schema)  # NOT NULL flags included
        assert got.equals(expected)
        again = tmp_path / f"again{per_query}"  # deterministic for a given batch size
        F.run_features(
            pipeline.features.model_copy(
                update={"output_dir": str(again), "cutoffs_per_query": per_query}
            ),
            pipeline.engine,
        )
        assert (again / F.SNAPSHOTS_FILE).read_bytes() == (out / F.SNAPSHOTS_FILE).read_bytes()
        assert summary == json_load(one / F.CUTOFFS_FILE)
        assert (out / F.CURRENT_FILE).read_bytes() == (one / F.CURRENT_FILE).read_bytes()
        assert sorted(p.name for p in out.iterdir()) == sorted(
            p.name for p in one.iterdir()
        )  # no parts left


def test_parts_left_by_a_killed_run_are_removed(pipeline, tmp_path):
    out = tmp_path / "features"
    stale = out / f".{F.SNAPSHOTS_FILE}.parts-abc123"
    stale.mkdir(parents=True)
    (stale / "part-00000.parquet").write_bytes(b"half written")
    F.run_features(pipeline.features.model_copy(update={"output_dir": str(out)}), pipeline.engine)
    assert not stale.exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [F.SNAPSHOTS_FILE, F.CURRENT_FILE, F.CURRENT_META_FILE, F.CUTOFFS_FILE, CHAIN_FILE]
    )


def test_current_json_records_what_the_as_of_snapshot_was_built_from(pipeline):
    """What `churnguard score --snapshot` checks before scoring current.parquet."""
    from churnguard.io import file_md5

    folder = Path(pipeline.features.output_dir)
    assert json_load(folder / F.CURRENT_META_FILE) == {
        "as_of": json_load(folder / F.CUTOFFS_FILE)["as_of"],
        "lost_after_days": pipeline.features.lost_after_days,
        "transactions": str(pipeline.transactions),
        "transactions_md5": file_md5(pipeline.transactions),
        "snapshot_md5": file_md5(folder / F.CURRENT_FILE),
    }


def json_load(path: Path):
    import json

    return json.loads(path.read_text(encoding="utf-8"))


def test_auto_cutoffs_per_query_bounds_lines_times_cutoffs_by_memory():
    per_gb = F.AUTO_LINE_CUTOFFS_PER_GB
    assert F.cutoffs_per_query("auto", 4_000) == 2 * per_gb // 4_000  # default 2GB
    assert F.cutoffs_per_query("auto", 10_000_000, "3GB") == 7
    assert F.cutoffs_per_query("auto", 10_000_000, "1GB") == 2
    assert F.cutoffs_per_query("auto", 50_000_000, "3GB") == 1
    assert F.cutoffs_per_query("auto", 50_000_000, "512MB") == 1
    assert F.cutoffs_per_query("auto", 10_000_000, "1536MiB") == 4  # 1536 MiB = 1.61 GB
    assert F.cutoffs_per_query("auto", 0) == 2 * per_gb
    assert F.cutoffs_per_query(3, 50_000_000) == 3
    assert F.memory_gb("2GiB") == pytest.approx(2.147483648)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    assert F.memory_gb("80%") == pytest.approx(0.8 * total, rel=1e-6)  # it used to be 2.0
    for bad in ("lots", "2 parsecs", "0%", "512"):
        with pytest.raises(Exception, match="engine.memory_limit|memory_limit"):
            EngineParams(memory_limit=bad)
    with pytest.raises(Exception, match="cutoffs_per_query"):
        FeaturesParams(cutoffs_per_query=0)
    with pytest.raises(Exception, match="cutoffs_per_query"):
        FeaturesParams(cutoffs_per_query="sometimes")


def test_reading_current_parquet_gives_the_frame_the_sql_builds(pipeline, tmp_path):
    """What ``score --snapshot`` scores is exactly the frame scoring would build (dtypes,
    row order, values); BTYD columns in the file are left out (fitted again if needed)."""
    import shutil

    from churnguard.engines.duckdb import add_btyd_to_parquet, read_snapshot

    folder = Path(pipeline.features.output_dir)
    as_of = dt.date.fromisoformat(json_load(folder / F.CUTOFFS_FILE)["as_of"])
    built = F.snapshot_frame(
        pipeline.transactions, as_of, pipeline.features.lost_after_days, pipeline.engine
    )
    pd.testing.assert_frame_equal(
        read_snapshot(folder / F.CURRENT_FILE, pipeline.engine), built, check_exact=True
    )
    with_btyd = tmp_path / F.CURRENT_FILE
    shutil.copy(folder / F.CURRENT_FILE, with_btyd)
    add_btyd_to_parquet(str(with_btyd))
    pd.testing.assert_frame_equal(
        read_snapshot(with_btyd, pipeline.engine), built, check_exact=True
    )
