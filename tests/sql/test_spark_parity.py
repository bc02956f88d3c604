"""Spark engine parity: the same feature SQL and the same scoring on Spark (local mode).

One SparkSession for the module (starting one takes 15–30 s here), three tests:

- the Spark SQL is the transpiled single definition plus the documented rewrites;
- features on Spark equal DuckDB's: same schema and row order, integers / strings / dates
  exact, floats within 1e-9 (they are in fact bit-identical);
- ``churnguard score`` on Spark (P(churn) through ``mlflow.pyfunc.spark_udf``) writes
  byte-identical lists, summary and report, plus the partitioned Parquet of scores.

Data: the session's small synthetic pipeline (conftest) plus hand-made edge customers
(NULL names on the latest line, intra-day timestamps, multi-line orders, return-only days,
a money sum on a rounding tie, a customer with returns only).

DuckDB reference: the production feature SQL as written. It sums money exactly
(DECIMAL), so its output does not depend on DuckDB's thread count, and Spark's integer
rewrite of those sums gives the same values whatever the partitioning.
"""

from __future__ import annotations

import datetime as dt
import filecmp
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import sqlglot

from churnguard import features as F
from churnguard.config import EngineParams, FeaturesParams, load_params
from churnguard.engines import spark as S  # pyspark is locked: a missing one fails, not skips

pytestmark = [
    pytest.mark.skipif(
        not S.java_available(), reason="Java is not installed: Spark local mode needs Java 17+"
    ),
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-9


def _edge_rows(first_source_row: int) -> pa.Table:
    ts = dt.datetime
    rows = [
        # Z001: a two-line order across one day (00:00:01 and 23:59:59), products, a
        # return-only day, and a latest line without name or region
        ("Z001", "zo1", ts(2024, 3, 1, 0, 0, 1), 40.10, "p1", "Zed Old", "Cairo"),
        ("Z001", "zo1", ts(2024, 3, 1, 23, 59, 59), 0.20, "p2", "Zed Old", "Cairo"),
        ("Z001", "zo2", ts(2024, 5, 10, 12, 0), 30.0, "p1", "Zed Old", "Cairo"),
        ("Z001", "zo2r", ts(2024, 5, 20), -5.5, None, "Zed Old", "Cairo"),
        ("Z001", "zo3", ts(2024, 9, 1, 8, 0), 19.99, "p3", None, None),
        # Z003: one late one-time purchase
        ("Z003", "zo9", ts(2024, 12, 30, 23, 30), 12.34, None, "Zoë", "Tehran"),
        # Z004: returns only: never in a population
        ("Z004", "zr1", ts(2024, 6, 1), -10.0, None, "Zara", "Riyadh"),
    ]
    # Z002: eight orders whose exact mean (193.43 / 8 = 24.17875) sits on a rounding tie
    for i, amount in enumerate((24.1, 24.2, 24.3, 24.13, 24.1, 24.2, 24.2, 24.2)):
        rows.append(
            (
                "Z002",
                f"zt{i}",
                ts(2024, 1, 5) + dt.timedelta(days=37 * i),
                amount,
                None,
                "Zo Tie",
                "Cairo",
            )
        )
    cols = list(zip(*rows, strict=True))
    n = len(rows)
    return pa.table(
        {
            "customer_id": pa.array(cols[0], pa.string()),
            "order_id": pa.array(cols[1], pa.string()),
            "ts": pa.array(cols[2], pa.timestamp("us")),
            "amount": pa.array(cols[3], pa.float64()),
            "quantity": pa.array([1.0] * n, pa.float64()),
            "account_manager": pa.array(["Sara Ahmadi"] * n, pa.string()),
            "customer_name": pa.array(cols[5], pa.string()),
            "region": pa.array(cols[6], pa.string()),
            "product_id": pa.array(cols[4], pa.string()),
            "source_row": pa.array(range(first_source_row, first_source_row + n), pa.int64()),
        }
    )


@pytest.fixture(scope="module")
def workdir(pipeline, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("spark_parity")
    base = pq.read_table(pipeline.transactions)
    edge = _edge_rows(int(pa.compute.max(base["source_row"]).as_py()) + 1).select(base.schema.names)
    schema = pa.schema(
        [f.with_nullable(True) for f in base.schema]
    )  # the edge rows have NULL names
    pq.write_table(
        pa.concat_tables([base.cast(schema), edge.cast(schema)]), root / "transactions.parquet"
    )
    return root


@pytest.fixture(scope="module")
def engine(workdir) -> EngineParams:
    return EngineParams(temp_directory=str(workdir / "tmp"), threads=2, memory_limit="1GB")


@pytest.fixture(scope="module")
def spark(engine):
    session = S.build_session(engine, app_name="churnguard-parity")
    yield session
    session.stop()


def _features(workdir: Path, name: str) -> FeaturesParams:
    return FeaturesParams(
        input=str(workdir / "transactions.parquet"), output_dir=str(workdir / f"features_{name}")
    )


def _assert_same_table(duck: Path, spark: Path) -> None:
    a, b = pq.read_table(duck), pq.read_table(spark)
    assert [(f.name, f.type) for f in a.schema] == [(f.name, f.type) for f in b.schema]
    assert a.num_rows == b.num_rows > 0
    for name in a.column_names:
        x, y = a[name], b[name]
        if pa.types.is_floating(x.type):
            xv = x.to_numpy(zero_copy_only=False).astype(float)
            yv = y.to_numpy(zero_copy_only=False).astype(float)
            assert np.array_equal(np.isnan(xv), np.isnan(yv)), (
                f"{duck.name}: NULLs differ in {name}"
            )
            worst = float(np.nanmax(np.abs(xv - yv), initial=0.0))
            assert worst <= TOL, f"{duck.name}: {name} differs by {worst}"
        else:  # integers, strings, dates: exact (this also pins the row order)
            assert x.equals(y), f"{duck.name}: {name} differs"


def test_spark_sql_carries_each_engine_difference_rewrite():
    """Structure, not sqlglot's text (which changes between releases): each rewrite the
    module docstring lists is present in the parsed Spark SQL. Behaviour is checked on data
    by test_features_match_duckdb."""
    tree = sqlglot.parse_one(S.spark_sql(), read="spark")
    diffs = list(tree.find_all(sqlglot.exp.DateDiff))
    assert diffs and all(d.args.get("unit") is None for d in diffs)  # DATEDIFF(b, a): no time zone
    arg_max = list(tree.find_all(sqlglot.exp.ArgMax))
    assert len(arg_max) == 6  # every one skips NULL values, as DuckDB's arg_max does
    assert all(
        isinstance(n.parent, sqlglot.exp.Filter) and "IS NULL" in n.parent.sql() for n in arg_max
    )
    ordered = list(tree.find_all(sqlglot.exp.Ordered))
    assert ordered and all(
        o.args.get("nulls_first") is False for o in ordered
    )  # NULLS LAST, as DuckDB
    assert not list(tree.find_all(sqlglot.exp.IntDiv))  # fractional division on both engines
    sums = [s for s in tree.find_all(sqlglot.exp.Sum) if "amount" in s.sql().lower()]
    assert sums and all(
        isinstance(s.this, sqlglot.exp.Cast) and s.this.to.is_type("bigint") for s in sums
    )  # exact sums of integer ten-thousandths: no dependence on partitioning
    rounds = [r for r in tree.find_all(sqlglot.exp.Round) if r.args.get("decimals") is None]
    assert rounds  # ROUND(x * 10^n) / 10^n: the same IEEE product as DuckDB's round(x, n)
    assert not [r for r in tree.find_all(sqlglot.exp.Round) if r.args.get("decimals") is not None]


def test_money_sums_in_the_feature_sql_are_exact():
    tree = sqlglot.parse_one(F.feature_sql(), read="duckdb")
    sums = list(tree.find_all(sqlglot.exp.Sum))
    money = [s for s in sums if s.this.sql() not in ("orders", "d.orders")]
    assert len(money) >= 10 and len(sums) - len(money) >= 5  # order counts are integers
    bad = [
        s.sql()
        for s in money
        if not (isinstance(s.this, sqlglot.exp.Cast) and s.this.to.is_type("decimal"))
    ]
    assert not bad, f"DOUBLE sums depend on row order (threads, partitions): {bad}"


def test_features_match_duckdb(spark, workdir, engine):
    duck = F.run_features(_features(workdir, "duckdb"), engine)
    on_spark = F.run_features(
        _features(workdir, "spark"), engine.model_copy(update={"name": "spark"})
    )
    assert on_spark == duck
    for name in (F.SNAPSHOTS_FILE, F.CURRENT_FILE):
        _assert_same_table(workdir / "features_duckdb" / name, workdir / "features_spark" / name)
    cur = (
        pq.read_table(workdir / "features_spark" / F.CURRENT_FILE)
        .to_pandas()
        .set_index("customer_id")
    )
    # DuckDB's arg_max skips NULLs: the latest *known* name and region, not the empty latest line
    assert cur.loc["Z001", ["customer_name", "region"]].tolist() == ["Zed Old", "Cairo"]
    assert "Z004" not in cur.index


def test_scores_and_lists_identical(spark, pipeline, workdir, engine):
    from churnguard.score import run_score

    p = load_params(ROOT / "params.yaml")
    fp = _features(workdir, "duckdb")
    out = {}
    for name in ("duckdb", "spark"):
        out[name] = workdir / f"scores_{name}"
        summary = run_score(
            p.score,
            fp,
            p.report,
            engine.model_copy(update={"name": name}),
            model=str(pipeline.train.model_dir),
            output_dir=out[name],
            transactions=workdir / "transactions.parquet",
        )
        assert summary["status"] == "written" and summary["customers_on_lists"] > 0
    duck_files = sorted(
        f.relative_to(out["duckdb"]) for f in out["duckdb"].rglob("*") if f.is_file()
    )
    assert any(f.parts[0] == "by_manager" for f in duck_files)
    for rel in duck_files:
        if rel.name != "manifest.json":
            assert filecmp.cmp(out["duckdb"] / rel, out["spark"] / rel, shallow=False), (
                f"{rel} differs"
            )
    m_duck, m_spark = (
        json.loads((out[n] / "manifest.json").read_text(encoding="utf-8")) for n in out
    )
    # same inputs; the engine keys the manifest (Spark writes more files), so switching
    # engines is never mistaken for "up to date"
    assert {k: v for k, v in m_duck["inputs"].items() if k != "engine"} == {
        k: v for k, v in m_spark["inputs"].items() if k != "engine"
    }
    assert (m_duck["inputs"]["engine"], m_spark["inputs"]["engine"]) == ("duckdb", "spark")
    assert m_duck["key"] != m_spark["key"]
    extra = sorted(set(m_spark["files"]) - set(m_duck["files"]))
    assert extra and all(f.startswith(f"{S.SCORES_DIR}/account_manager=") for f in extra)

    scores = pads.dataset(out["spark"] / S.SCORES_DIR, partitioning="hive").to_table().to_pandas()
    part = pq.read_table(out["spark"] / extra[0])
    assert part.num_rows > 0 and "account_manager" not in part.column_names  # it is in the path
    listed = pd.read_csv(
        out["duckdb"] / "risk_list.csv", encoding="utf-8-sig", dtype={"customer_id": str}
    )
    merged = listed.merge(scores, on="customer_id", suffixes=("", "_pq"))
    assert len(merged) == len(listed) == len(scores)
    assert (merged["account_manager"] == merged["account_manager_pq"].astype(str)).all()
    # lapsed customers have no p_churn (NaN, an empty cell) in both
    assert np.array_equal(
        merged["p_churn"].to_numpy(), merged["p_churn_pq"].to_numpy(), equal_nan=True
    )
    assert (merged["rank"] == merged["rank_pq"]).all()


def test_score_on_spark_reads_the_snapshot_spark_built(spark, pipeline, workdir, engine):
    """``churnguard score --snapshot`` on Spark (the DVC stage with engine.name: spark):
    P(churn) through the UDF on the current.parquet Spark's features stage wrote, every
    file byte-identical to building the snapshot (manifest included)."""
    from churnguard.score import run_score

    p = load_params(ROOT / "params.yaml")
    on_spark = engine.model_copy(update={"name": "spark"})
    fp = _features(workdir, "spark")
    if not (Path(fp.output_dir) / F.CURRENT_META_FILE).is_file():
        F.run_features(fp, on_spark)
    out = {}
    for name, snapshot in (("built", None), ("read", Path(fp.output_dir) / F.CURRENT_FILE)):
        out[name] = workdir / f"scores_spark_{name}"
        summary = run_score(
            p.score,
            fp,
            p.report,
            on_spark,
            model=str(pipeline.train.model_dir),
            output_dir=out[name],
            transactions=workdir / "transactions.parquet",
            snapshot=snapshot,
        )
        assert summary["status"] == "written" and summary["customers_on_lists"] > 0
    built = sorted(f.relative_to(out["built"]) for f in out["built"].rglob("*") if f.is_file())
    read = sorted(f.relative_to(out["read"]) for f in out["read"].rglob("*") if f.is_file())
    assert read == built
    for rel in built:
        assert filecmp.cmp(out["built"] / rel, out["read"] / rel, shallow=False), f"{rel} differs"
