"""SQL programs and the date range on the Spark engine (local mode) against DuckDB.

``SparkEngine.run_program`` transpiles a DuckDB-dialect program (``sql/crr.sql``, the
one-line input checks, ``sql/uplift.sql`` over the ledger's lists) with sqlglot and binds its ``$name`` parameters through Spark's
``spark.sql(…, args=…)``: the CRR table of test_crr.py and the raw program output
(columns, dtypes, values) are identical on both engines. One SparkSession for the module.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from test_crr import HAND_EXPECTED, HAND_ROWS, long_history, transactions

from churnguard import crr as C
from churnguard import feedback, ledger, score
from churnguard.config import EngineParams, ReportParams
from churnguard.engines import spark as S  # pyspark is locked: a missing one fails, not skips
from churnguard.engines.duckdb import DuckDBEngine
from churnguard.errors import ConfigError, DataError

pytestmark = [
    pytest.mark.skipif(
        not S.java_available(), reason="Java is not installed: Spark local mode needs Java 17+"
    ),
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

D = dt.date


@pytest.fixture(scope="module")
def params(tmp_path_factory) -> EngineParams:
    tmp = tmp_path_factory.mktemp("spark_programs")
    return EngineParams(temp_directory=str(tmp / "tmp"), threads=2, memory_limit="1GB")


@pytest.fixture(scope="module")
def spark(params):
    session = S.build_session(params, app_name="churnguard-programs")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def engines(spark, params) -> tuple[S.SparkEngine, DuckDBEngine]:
    return S.SparkEngine(params), DuckDBEngine(params)


@pytest.fixture(scope="module")
def hand_parquet(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hand") / "transactions.parquet"
    transactions(HAND_ROWS).to_parquet(path, index=False)
    return path


@pytest.mark.parametrize(
    ("rows", "period", "window", "kw"),
    [
        ("hand", "month", 30, {}),
        ("hand", "month", 30, {"start": D(2024, 1, 15), "end": D(2024, 3, 31)}),
        ("hand", "quarter", 30, {}),
        ("long", "quarter", 90, {}),
        ("long", "year", 90, {}),
        ("long", "month", 45, {"end": D(2023, 12, 31)}),
    ],
    ids=[
        "hand-built months",
        "months limited by start and end",
        "hand-built quarter (none complete)",
        "quarters",
        "years",
        "months up to an end date",
    ],
)
def test_crr_table_is_identical_on_spark_and_duckdb(engines, rows, period, window, kw):
    on_spark, on_duckdb = engines
    df = transactions(HAND_ROWS) if rows == "hand" else long_history()
    got = C.crr_table(on_spark, df, period, window, **kw)
    want = C.crr_table(on_duckdb, df, period, window, **kw)
    pd.testing.assert_frame_equal(got, want)
    assert got.attrs == want.attrs
    if rows == "hand" and period == "month" and not kw:
        cols = C.COLUMNS[3:11]
        assert {r.period: tuple(getattr(r, c) for c in cols) for r in got.itertuples()} == (
            HAND_EXPECTED
        )


def test_raw_program_output_has_duckdbs_columns_and_dtypes(engines, hand_parquet):
    on_spark, on_duckdb = engines
    args = {"unit": "month", "months": 1, "window": 30, "start": None, "end": D(2024, 2, 29)}
    got = on_spark.run_program(C.crr_sql(), hand_parquet, args, name=C.CRR_SQL)
    want = on_duckdb.run_program(C.crr_sql(), hand_parquet, args)
    pd.testing.assert_frame_equal(got, want)
    assert list(got["period"]) == ["2024-01", "2024-02"]


def test_checks_and_data_range_are_identical(engines, hand_parquet):
    on_spark, on_duckdb = engines
    for sql, args in [
        (C._PURCHASE_LINES_SQL, None),
        (score._FUTURE_LINES_SQL, {"today": D(2024, 3, 1)}),
        (score._FUTURE_LINES_SQL, {"today": D(2030, 1, 1)}),  # no line: NULL max
    ]:
        pd.testing.assert_frame_equal(
            on_spark.run_program(sql, hand_parquet, args),
            on_duckdb.run_program(sql, hand_parquet, args),
        )
    want = (D(2023, 12, 10), D(2024, 3, 31), len(HAND_ROWS))
    assert on_duckdb.data_range(hand_parquet) == want
    assert on_spark.data_range(hand_parquet) == want
    assert on_spark.data_range(transactions(HAND_ROWS)) == want


def test_a_uri_is_read_by_spark(engines, hand_parquet):
    on_spark, _ = engines
    uri = hand_parquet.resolve().as_uri()  # file:///…: the same code path as s3:// or hdfs://
    assert S._is_uri(uri)
    assert on_spark.data_range(uri) == on_spark.data_range(hand_parquet)
    pd.testing.assert_frame_equal(
        C.crr_table(on_spark, uri, "month", 30), C.crr_table(on_spark, hand_parquet, "month", 30)
    )


def test_report_crr_on_spark_writes_the_same_csv_from_a_path_or_a_uri(
    engines, params, hand_parquet, tmp_path
):
    report = ReportParams(active_within_days=30)
    on_spark = params.model_copy(update={"name": "spark"})
    outputs = []
    for engine, src in [(params, hand_parquet), (on_spark, hand_parquet), (on_spark, None)]:
        out = tmp_path / f"crr{len(outputs)}.csv"
        source = str(src) if src else hand_parquet.resolve().as_uri()
        frame = C.run_crr(source, "month", report, engine, out)
        assert list(frame["period"]) == list(HAND_EXPECTED)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]


def test_parameters_are_bound_as_values_not_sql(engines):
    on_spark, on_duckdb = engines
    sql = "select count(*) as n from transactions where customer_id = $who"
    df = transactions(HAND_ROWS)
    for who, n in [("A", 4), ("x' or 1=1 --", 0), ("A' or '1'='1", 0)]:
        got = on_spark.run_program(sql, df, {"who": who})
        pd.testing.assert_frame_equal(got, on_duckdb.run_program(sql, df, {"who": who}))
        assert int(got["n"].iloc[0]) == n


@pytest.mark.parametrize(
    ("sql", "args", "match"),
    [
        (
            "select damerau_levenshtein(customer_id, 'A') as d from transactions",
            None,
            "does not run on Spark",
        ),
        ("select 1 as a; select 2 as b", None, "exactly one statement"),
        ("select count(*) as n from transactions where amount > ?", None, "named"),
        ("select count(*) as n from transactions where amount > $floor", {}, r"\$floor"),
        ("select date_diff('month', ts, ts) as m from transactions", None, "only 'day'"),
    ],
    ids=["unknown function", "two statements", "positional parameter", "unbound", "month diff"],
)
def test_a_program_spark_cannot_run_is_a_config_error_naming_it(engines, sql, args, match):
    on_spark, _ = engines
    with pytest.raises(ConfigError, match=match) as info:
        on_spark.run_program(sql, transactions(HAND_ROWS), args, name="sql/demo.sql")
    assert str(info.value).startswith("sql/demo.sql: ")


def test_missing_transactions_is_a_data_error(engines, tmp_path):
    on_spark, _ = engines
    with pytest.raises(DataError, match="not found"):
        on_spark.run_program(C._PURCHASE_LINES_SQL, tmp_path / "none.parquet")
    with pytest.raises(DataError, match="not found"):
        on_spark.data_range(tmp_path / "none.parquet")


def test_the_report_crr_command_takes_a_uri_on_spark(engines, params, hand_parquet, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from churnguard.cli import app

    cfg = tmp_path / "params.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "report": {"active_within_days": 30},
                "engine": {"name": "spark", "temp_directory": params.temp_directory},
            }
        ),
        encoding="utf-8",
    )
    out = tmp_path / "crr.csv"
    uri = hand_parquet.resolve().as_uri()
    result = CliRunner().invoke(
        app, ["report", "crr", "-p", str(cfg), "--transactions", uri, "--output", str(out), "-q"]
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert list(frame["period"]) == list(HAND_EXPECTED)
    assert list(frame["crr_pct"]) == [e[6] for e in HAND_EXPECTED.values()]


def _ledger_lists(rows: list[tuple[str, str, str, str, str]]) -> pa.Table:
    """The ledger's ``lists`` view from (list_date, customer, action, arm, episode_start)."""
    frame = pd.DataFrame(
        [
            {
                "list_date": D.fromisoformat(day),
                "customer_id": who,
                "account_manager": "Ann",
                "action": action,
                "owner": "account_manager",
                "arm": arm,
                "episode_start": D.fromisoformat(start),
                "save_rate": 0.2,
                "p_churn": 0.5,
                "risk_band": "high",
                "lapsed": False,
            }
            for day, who, action, arm, start in rows
        ]
    )
    return pa.Table.from_pandas(frame, schema=ledger.LIST_SCHEMA, preserve_index=False)


LISTS = [
    ("2024-01-01", "A", "call", "treated", "2024-01-01"),  # buys 01-20: saved
    ("2024-01-01", "B", "email", "control", "2024-01-01"),  # nothing until 03-05: churned
    ("2024-01-01", "C", "call", "treated", "2024-01-01"),  # buys 01-15
    ("2024-01-08", "A", "call", "treated", "2024-01-01"),  # same episode: not an entry
    ("2024-02-20", "D", "call", "treated", "2024-02-20"),  # bought that day only: churned
    ("2024-02-20", "E", "call", "control", "2024-02-20"),  # buys 03-10
    ("2024-03-11", "E", "call", "treated", "2024-03-11"),  # only a return after: churned
    ("2024-03-15", "D", "call", "treated", "2024-03-15"),  # buys 03-31
    ("2024-04-01", "A", "call", "treated", "2024-04-01"),  # window open on 04-15: waiting
]
UPLIFT_EXPECTED = [  # (action, list date, customer) → churned, in the program's order
    ("call", "2024-01-01", "A", False),
    ("call", "2024-01-01", "C", False),
    ("call", "2024-02-20", "D", True),
    ("call", "2024-02-20", "E", False),
    ("call", "2024-03-11", "E", True),
    ("call", "2024-03-15", "D", False),
    ("email", "2024-01-01", "B", True),
]


def test_uplift_program_measures_churn_per_entry_on_both_engines(engines, hand_parquet):
    """sql/uplift.sql over the ledger's lists and hand-built transactions (30-day window,
    data to 2024-04-15): entries only, windows that have passed, returns are no purchase."""
    on_spark, on_duckdb = engines
    lists = _ledger_lists(LISTS)
    args = {"horizon": 30, "last_day": D(2024, 4, 15)}
    kw = {"name": feedback.UPLIFT_SQL, "views": {"lists": lists}}
    want = on_duckdb.run_program(feedback.uplift_sql(), hand_parquet, args, **kw)
    got = on_spark.run_program(feedback.uplift_sql(), hand_parquet, args, **kw)
    pd.testing.assert_frame_equal(got, want)
    assert [
        (r.action, str(pd.Timestamp(r.list_date).date()), r.customer_id, bool(r.churned))
        for r in want.itertuples()
    ] == [(a, d, c, churned) for a, d, c, churned in UPLIFT_EXPECTED]
    waiting = feedback.waiting_lists(lists.to_pandas(), 30, D(2024, 4, 15))
    assert waiting.to_dict("records") == [{"list_date": D(2024, 4, 1), "entries": 1}]
