"""Apache Spark engine: the same feature SQL and the same scoring, on a cluster.

Selected with ``engine.name: spark`` in params.yaml or ``--engine spark`` on the CLI
(:class:`SparkEngine`, registered in :mod:`churnguard.engines`).

Features
    The single feature definition (``sql/features.sql``, DuckDB dialect) is transpiled
    with ``sqlglot`` (read ``duckdb``, write ``spark``). Where DuckDB and Spark give a
    different answer to the same SQL, :func:`spark_sql` rewrites the parsed tree before
    generating Spark SQL; there is no second, hand-kept copy of the logic. The inputs are
    the same two views as on DuckDB: ``transactions`` (canonical Parquet, hash-partitioned
    by customer) and ``cutoffs`` (a one-row-per-snapshot table, broadcast to every task).

Programs and the date range
    ``run_program`` (the CRR report ``sql/crr.sql`` and the one-line input checks) transpiles
    the DuckDB-dialect program the same way (:func:`program_sql`: the rewrites below except
    the exact sums, plus ``to_months`` and DOUBLE division); ``$name`` parameters become
    Spark's ``:name`` markers bound by ``spark.sql(…, args=…)``, never formatted in. The
    result comes back as DuckDB's ``.df()`` gives it. A program that cannot be transpiled
    or analysed is a :class:`ConfigError` naming it; nothing falls back to DuckDB.
    ``data_range`` aggregates the Parquet (path or URI) or frame on Spark.

Scoring
    The current snapshot is built on Spark; P(churn) comes from the MLflow pyfunc model
    through ``mlflow.pyfunc.spark_udf`` (the registered champion, or a ``models/`` folder
    wrapped as the same pyfunc training logs). The per-customer rows then go through the
    same Python code as the DuckDB path (``scoring.score_frame``: value, playbook, net
    benefit, capacity, SHAP reasons for listed customers only), so the lists are identical.

Engine differences and how each is handled (the parity test checks them):

- ``arg_max(x, key)``: DuckDB skips rows where ``x`` is NULL, Spark's ``MAX_BY`` returns
  the NULL. Rewritten to ``MAX_BY(x, key) FILTER (WHERE … AND x IS NOT NULL)``
  (:func:`_arg_max_skips_nulls`); otherwise a customer whose latest line has no name
  loses the name they had.
- ``round(x, n)`` on a DOUBLE: DuckDB computes ``std::round(x·10ⁿ)/10ⁿ`` (half away
  from zero on the binary product); Spark rounds the shortest decimal string of ``x``
  half up. They differ on near-ties (50.00005 → 50.0 vs 50.0001). Rewritten to
  ``ROUND(x·10ⁿ)/10ⁿ`` (:func:`_round_like_duckdb`): the same IEEE product, and
  Spark's ``ROUND(v)`` of a double equals ``std::round(v)``. ``round(v)`` without
  digits (the RFM segment rule, on ``(f + m) / 2.0``) is half-up on both.
- DOUBLE ``sum``: the result depends on the order rows arrive in (Spark partitions,
  DuckDB threads), and rounded features inherit that noise on rounding ties
  (``avg_order_value`` = gross / 8 orders; equal ``monetary_total`` in the m_score
  ranking). Rewritten to exact sums of integer ten-thousandths, divided back to DOUBLE
  (:func:`_exact_sums`), which makes Spark's output independent of partitioning.
  ``features.sql`` sums the same amounts exactly as DECIMAL(38, 4) (so DuckDB's output
  does not depend on its thread count either); on Spark those DECIMAL sums become
  integer sums of the same value, which avoid java.math.BigDecimal arithmetic.
- ``date_diff('day', a, b)``: sqlglot writes ``DATEDIFF(DAY, a, b)`` (Spark's
  TIMESTAMPDIFF, which casts the dates to timestamps in the session zone; it gives
  the same day counts, DST included). Rewritten to ``DATEDIFF(b, a)``
  (:func:`_datediff_days`): plain date arithmetic with no time zone in it.
- Integer ``/``: fractional (DOUBLE) on both engines (Spark's integer division is
  ``DIV``); no rewrite.
- Division by zero: DuckDB 2 returns ±inf, Spark in ANSI mode (kept on) raises. Every
  division in the SQL is guarded, so neither happens.
- NULL ordering: DuckDB sorts NULLs last for ASC and DESC, Spark first for ASC;
  sqlglot writes ``NULLS LAST`` explicitly.
- ``percent_rank`` ties: (rank − 1)/(n − 1) on both, ties share the lowest rank.
- ``stddev_samp`` / ``avg`` (of integer day gaps): last-ulp differences at most, which
  the SQL's 6-decimal rounding absorbs (a flip would need an exact 7th-decimal tie;
  none seen).
- Time zones: the session time zone and the JVM's ``user.timezone`` are UTC, as
  DuckDB's ``TimeZone``; naive Parquet timestamps are read as TIMESTAMP_NTZ.
- ``amount`` is cast to DOUBLE in the ``transactions`` view (the canonical type; the
  rounding rewrite assumes it).

Output files are ordered like DuckDB's (``ORDER BY cutoff_date, customer_id``). Spark
writes sorted part files to a staging folder beside the target; they are merged in part
order into one Parquet file with fixed row groups and without Spark's metadata, so a re-run
gives the same bytes and downstream stages read the same path as on DuckDB. A target
URI (``s3://…``, ``abfss://…``, ``dbfs:/…``) is written as a Parquet folder instead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from churnguard.config import EngineParams, FeaturesParams, memory_bytes
from churnguard.errors import ConfigError, DataError, ModelError
from churnguard.feature_defs import (
    CHAIN_FILE,
    COLUMN_NAMES,
    CURRENT_FILE,
    CUTOFFS_FILE,
    SNAPSHOTS_FILE,
    assemble_chain,
    cutoff_table,
    feature_sql,
    needs_btyd,
    run_summary,
)
from churnguard.horizon import plan_training
from churnguard.io import atomic_path, write_json_atomic
from churnguard.modeling import ChainedScores, is_chained

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import DataFrame, SparkSession

    from churnguard.modeling import ChurnModel, LoadedModel

log = logging.getLogger(__name__)

MASTER_ENV = "SPARK_MASTER"
ROW_GROUP_SIZE = 122_880  # same row-group size as DuckDB's COPY in features.py
SCORES_DIR = "scores.parquet"
P_COLUMN = "_p_churn_spark"

# PySpark 4.3 warns on import that pandas 3 is not fully supported; the paths used here
# (Arrow in both directions) are covered by the parity test.
warnings.filterwarnings(
    "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
)


# --------------------------------------------------------------------------- SQL


def _datediff_days(tree: exp.Expression) -> None:
    """``date_diff('day', a, b)`` → Spark ``DATEDIFF(b, a)`` (date arithmetic, no time zone)."""
    for node in list(tree.find_all(exp.DateDiff)):
        unit = node.args.get("unit")
        name = (unit.name if unit is not None else "DAY").upper()
        if name not in ("DAY", "DAYS", "D"):
            raise ValueError(f"date_diff unit {name!r}: only 'day' is mapped to Spark")
        node.replace(
            exp.Anonymous(this="DATEDIFF", expressions=[node.this.copy(), node.expression.copy()])
        )


def _arg_max_skips_nulls(tree: exp.Expression) -> None:
    """DuckDB ``arg_max(x, key)`` ignores rows where x is NULL; Spark ``MAX_BY`` does not.

    Add ``x IS NOT NULL`` to the aggregate's FILTER (creating one when absent).
    """
    for node in list(tree.find_all(exp.ArgMax, exp.ArgMin)):
        not_null = exp.Not(this=exp.Is(this=node.this.copy(), expression=exp.Null()))
        parent = node.parent
        if isinstance(parent, exp.Filter) and parent.this is node:
            where = parent.expression
            where.set("this", exp.and_(exp.paren(where.this.copy()), not_null))
        else:
            node.replace(exp.Filter(this=node.copy(), expression=exp.Where(this=not_null)))


def _round_like_duckdb(tree: exp.Expression) -> None:
    """``round(x, n)`` on a DOUBLE → ``ROUND(x * 10ⁿ) / 10ⁿ`` (DuckDB's own algorithm).

    Spark's ``ROUND(x, n)`` rounds the shortest decimal string of ``x`` half up; DuckDB
    multiplies in binary and rounds half away from zero, so near-ties such as 50.00005
    come out 1e-4 apart. Spark's ``ROUND(v)`` on a double equals ``std::round(v)``.
    Every ``round(x, n)`` in the feature SQL is on a DOUBLE (amounts are cast to DOUBLE).
    """
    for node in list(tree.find_all(exp.Round)):
        decimals = node.args.get("decimals")
        if decimals is None:
            continue  # round(x): same on both (half away from zero / HALF_UP)
        if not (isinstance(decimals, exp.Literal) and decimals.is_int and int(decimals.name) > 0):
            raise ValueError(
                f"round(..., {decimals.sql()}): only positive literal scales are mapped"
            )
        scale = exp.cast(exp.Literal.number(10 ** int(decimals.name)), exp.DataType.build("double"))
        scaled = exp.Round(this=exp.Mul(this=exp.paren(node.this.copy()), expression=scale.copy()))
        node.replace(exp.paren(exp.Div(this=scaled, expression=scale)))


MONEY_SCALE = 10_000  # amounts carry at most 4 decimals (ingest rounds them)


def _exact_sums(tree: exp.Expression) -> None:
    """``sum(x)`` → ``CAST(SUM(CAST(FLOOR(x * 10⁴ + 0.5) AS BIGINT)) AS DOUBLE) / 10⁴``.

    A DOUBLE sum depends on the order rows arrive in, which on Spark depends on the
    partitioning (and on DuckDB on the thread count). Rounded features inherit that
    noise wherever the exact value sits on a rounding tie (``avg_order_value`` =
    gross / orders with 8 orders hits 5-decimal ties routinely). Every sum in the
    feature SQL is of amounts (at most 4 decimals) or counts, so summing them as
    integer ten-thousandths is exact, and the division gives the correctly rounded
    DOUBLE whatever the partitioning: the same value as an exact DECIMAL sum cast to
    DOUBLE (the form features.sql uses), without Spark's DECIMAL(38, 4)
    arithmetic (java.math.BigDecimal; the whole query ran 61 s with it, 51 s with
    integer sums at 1 M lines). A sum already written over ``CAST(x AS DECIMAL(…, 4))``
    is rewritten from ``x`` the same way.
    """
    scale = exp.cast(exp.Literal.number(MONEY_SCALE), exp.DataType.build("double"))
    for node in list(tree.find_all(exp.Sum)):
        arg = node.this
        if isinstance(arg, exp.Cast) and arg.to.is_type("decimal"):
            arg = arg.this
        scaled = exp.Floor(
            this=exp.Add(
                this=exp.Mul(
                    this=exp.paren(arg.copy()), expression=exp.Literal.number(MONEY_SCALE)
                ),
                expression=exp.Literal.number(0.5),
            )
        )
        node.set("this", exp.cast(scaled, exp.DataType.build("bigint")))
        parent = node.parent
        outer = parent if isinstance(parent, exp.Filter) and parent.this is node else node
        outer.replace(
            exp.paren(
                exp.Div(
                    this=exp.cast(outer.copy(), exp.DataType.build("double")),
                    expression=scale.copy(),
                )
            )
        )


TRANSFORMS = (_datediff_days, _arg_max_skips_nulls, _round_like_duckdb, _exact_sums)


def _to_months(tree: exp.Expression) -> None:
    """DuckDB ``to_months(n)`` (an INTERVAL of n months) → Spark ``MAKE_YM_INTERVAL(0, n)``."""
    for node in list(tree.find_all(exp.Anonymous)):
        if str(node.this).upper() == "TO_MONTHS":
            if len(node.expressions) != 1:
                raise ValueError("to_months takes one argument")
            months = exp.cast(node.expressions[0].copy(), exp.DataType.build("int"))
            node.replace(
                exp.Anonymous(this="MAKE_YM_INTERVAL", expressions=[exp.Literal.number(0), months])
            )


def _divide_as_double(tree: exp.Expression) -> None:
    """``a / b`` → ``CAST(a AS DOUBLE) / CAST(b AS DOUBLE)``.

    DuckDB's ``/`` is DOUBLE division for integers and DECIMALs alike (``100.0 * k / n``
    is the IEEE quotient of the two values); Spark divides DECIMALs as DECIMAL (rounded to
    a scale, another type). Casting both sides gives DuckDB's value and type.
    """
    double = exp.DataType.build("double")
    for node in list(tree.find_all(exp.Div)):
        node.set("this", exp.cast(node.this.copy(), double))
        node.set("expression", exp.cast(node.expression.copy(), double))


# Programs (``run_program``: crr.sql and the one-line checks). Their sums are not rewritten
# (_exact_sums assumes money with at most 4 decimals, which only the feature SQL promises).
PROGRAM_TRANSFORMS = (
    _to_months,
    _divide_as_double,
    _datediff_days,
    _arg_max_skips_nulls,
    _round_like_duckdb,
)


def spark_sql(sql: str | None = None) -> str:
    """The feature SQL for Spark: ``sqlglot.transpile(…, read="duckdb", write="spark")``
    plus the documented rewrites in :data:`TRANSFORMS`."""
    return _spark_sql(feature_sql() if sql is None else sql)


@functools.lru_cache(maxsize=4)
def _spark_sql(sql: str) -> str:
    trees = sqlglot.parse(sql, read="duckdb")
    if len(trees) != 1 or trees[0] is None:
        raise ValueError("the feature SQL must be exactly one statement")
    tree = trees[0]
    for transform in TRANSFORMS:
        transform(tree)
    return tree.sql(dialect="spark", pretty=True)


@functools.lru_cache(maxsize=16)
def program_sql(sql: str) -> tuple[str, tuple[str, ...]]:
    """A DuckDB-dialect program for Spark → (Spark SQL, its parameter names).

    ``$name`` parameters become Spark's named markers ``:name``, bound by ``spark.sql(…,
    args=…)``: values are never formatted into the text. Raises ``ValueError`` (or a
    ``sqlglot`` error) when the program cannot be mapped.
    """
    trees = sqlglot.parse(sql, read="duckdb")
    if len(trees) != 1 or trees[0] is None:
        raise ValueError("a program must be exactly one statement")
    tree = trees[0]
    names: list[str] = []
    for node in tree.find_all(exp.Placeholder, exp.Parameter):
        name = node.name
        if not name.isidentifier():
            raise ValueError("only named $name parameters are mapped (not ? or $1)")
        if isinstance(node, exp.Parameter):
            node.replace(exp.Placeholder(this=name))
        if name not in names:
            names.append(name)
    for transform in PROGRAM_TRANSFORMS:
        transform(tree)
    return tree.sql(dialect="spark", pretty=True), tuple(names)


# --------------------------------------------------------------------------- session


def _require_spark() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ConfigError(
            "engine.name is 'spark' but pyspark is not installed "
            "(pip install 'churnguard[spark]', or use engine.name: duckdb)"
        ) from None


def java_available() -> bool:
    home = os.environ.get("JAVA_HOME")
    return bool(shutil.which("java") or (home and Path(home, "bin", "java").exists()))


def _jvm_memory(limit: str) -> str:
    """``engine.memory_limit`` ('2GB', '1.5GiB', '80%') → a JVM heap size in megabytes ('1907m')."""
    return f"{max(512, memory_bytes(limit) // 2**20)}m"


def session_conf(engine: EngineParams, master: str) -> dict[str, str]:
    """Spark settings: UTC everywhere, ANSI SQL, Arrow; local mode: small shuffles, no UI,
    loopback only, driver heap = engine.memory_limit, scratch under engine.temp_directory."""
    conf = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.ansi.enabled": "true",
        "spark.sql.parquet.inferTimestampNTZ.enabled": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.sql.parquet.compression.codec": "zstd",
        # joins and aggregates keyed on (customer_id, day) reuse the customer partitioning
        "spark.sql.requireAllClusterKeysForCoPartition": "false",
    }
    if master.startswith("local"):
        scratch = Path(engine.temp_directory).resolve() / "spark"
        scratch.mkdir(parents=True, exist_ok=True)
        conf.update(
            {
                "spark.sql.shuffle.partitions": str(max(2, 2 * engine.threads)),
                "spark.default.parallelism": str(max(2, 2 * engine.threads)),
                "spark.driver.host": "127.0.0.1",
                "spark.driver.bindAddress": "127.0.0.1",
                "spark.driver.memory": _jvm_memory(engine.memory_limit),
                "spark.local.dir": str(scratch),
                "spark.sql.warehouse.dir": str(scratch / "warehouse"),
            }
        )
    return conf


def build_session(engine: EngineParams, app_name: str = "churnguard") -> SparkSession:
    """A new SparkSession: master from ``$SPARK_MASTER``; under ``spark-submit`` the one it
    was given; else ``local[engine.threads]``."""
    _require_spark()
    submitted = "PYSPARK_GATEWAY_PORT" in os.environ  # the driver was launched by spark-submit
    master = os.environ.get(MASTER_ENV) or ("" if submitted else f"local[{engine.threads}]")
    if master.startswith("local"):
        if not java_available():
            raise ConfigError(
                "engine.name is 'spark' but Java is not installed (Spark needs Java 17+ "
                "on PATH or JAVA_HOME); install it or use engine.name: duckdb"
            )
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("SPARK_LOCAL_HOSTNAME", "localhost")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in session_conf(engine, master).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    log.info("Spark %s session on %s", spark.version, spark.sparkContext.master)
    return spark


@contextlib.contextmanager
def session(engine: EngineParams, spark: SparkSession | None = None) -> Iterator[SparkSession]:
    """The given session, else the active one (tests, notebooks, Databricks), else a new one.
    A session whose JVM churnguard launched itself is stopped on exit; one provided by
    spark-submit or a platform is left running. Pins the SQL time zone to UTC."""
    _require_spark()
    from pyspark.sql import SparkSession

    given = spark or SparkSession.getActiveSession()
    if given is not None:
        given.conf.set("spark.sql.session.timeZone", "UTC")
        yield given
        return
    owned = "PYSPARK_GATEWAY_PORT" not in os.environ  # else spark-submit / the platform owns it
    created = build_session(engine)
    try:
        yield created
    finally:
        if owned:
            created.stop()


# --------------------------------------------------------------------------- inputs


def _is_uri(path: str | Path) -> bool:
    return "://" in str(path) or str(path).startswith("dbfs:")


def read_transactions(spark: SparkSession, transactions: str | Path) -> DataFrame:
    """Canonical transactions, hash-partitioned by customer (every later aggregate, window
    and join is per customer, so this is the only shuffle of the raw lines)."""
    from pyspark.sql import functions as F

    src = str(transactions)
    if not _is_uri(src) and not Path(src).exists():
        raise DataError(f"{src}: transactions not found (run `churnguard ingest`)")
    tx = spark.read.parquet(src)
    missing = [
        c
        for c in (
            "customer_id",
            "order_id",
            "ts",
            "amount",
            "product_id",
            "account_manager",
            "customer_name",
            "region",
            "source_row",
        )
        if c not in tx.columns
    ]
    if missing:
        raise DataError(
            f"{src}: not canonical transactions, missing columns {missing} (run `churnguard ingest`)"
        )
    partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
    return tx.withColumn("amount", F.col("amount").cast("double")).repartition(
        partitions, "customer_id"
    )


@contextlib.contextmanager
def cached_transactions(spark: SparkSession, transactions: str | Path) -> Iterator[DataFrame]:
    """:func:`read_transactions`, persisted (memory, then local disk) while in use: the SQL
    reads ``transactions`` four times per snapshot query, and ``features`` runs two
    queries, so the Parquet is scanned and shuffled once instead of eight times."""
    from pyspark import StorageLevel

    tx = read_transactions(spark, transactions).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        yield tx
    finally:
        tx.unpersist()


def register_inputs(
    spark: SparkSession,
    transactions: DataFrame,
    cutoffs: list[dt.date],
    horizon_days: int | None,
    lost_after_days: int,
) -> None:
    """The ``transactions`` and ``cutoffs`` views the SQL reads (cutoffs broadcast)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    table = cutoff_table(cutoffs, horizon_days, lost_after_days)  # the same table as DuckDB's
    date_cols = ["cutoff_date", "horizon_end", "d30", "d90", "d180", "d365"]
    schema = T.StructType(
        [T.StructField(c, T.DateType(), c == "horizon_end") for c in date_cols]
        + [T.StructField("lost_after_days", T.IntegerType(), False)]
    )
    rows = [
        tuple(None if pd.isna(r[c]) else r[c] for c in date_cols) + (int(r["lost_after_days"]),)
        for r in table.to_dict("records")
    ]
    F.broadcast(spark.createDataFrame(rows, schema)).createOrReplaceTempView("cutoffs")
    transactions.createOrReplaceTempView("transactions")


def feature_frame(
    spark: SparkSession,
    transactions: DataFrame,
    cutoffs: list[dt.date],
    horizon_days: int | None,
    lost_after_days: int,
) -> DataFrame:
    """The snapshot(s) at ``cutoffs`` as a Spark DataFrame (same columns and order as DuckDB)."""
    register_inputs(spark, transactions, cutoffs, horizon_days, lost_after_days)
    frame = spark.sql(spark_sql())
    if tuple(frame.columns) != COLUMN_NAMES:
        raise DataError(
            f"feature SQL on Spark returned {frame.columns}, expected {list(COLUMN_NAMES)}"
        )
    return frame


def program_input(
    spark: SparkSession, transactions: str | Path | pd.DataFrame | pa.Table
) -> DataFrame:
    """The ``transactions`` a program reads, as is: a Parquet path or URI, an Arrow table or a
    pandas frame (through Arrow, so naive timestamps stay TIMESTAMP_NTZ)."""
    if isinstance(transactions, pa.Table):
        return spark.createDataFrame(transactions.replace_schema_metadata(None))
    if isinstance(transactions, pd.DataFrame):
        table = pa.Table.from_pandas(transactions, preserve_index=False)
        return spark.createDataFrame(table.replace_schema_metadata(None))
    src = str(transactions)
    if not _is_uri(src) and not Path(src).exists():
        raise DataError(f"{src}: transactions not found (run `churnguard ingest`)")
    return spark.read.parquet(src)


def _spark_arg(name: str, value: Any) -> Any:
    """A parameter value Spark binds as a typed literal (``pyspark.sql.functions.lit``)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if value is None or isinstance(value, (bool, int, float, str, dt.date, Decimal)):
        return value
    raise ConfigError(f"parameter ${name}: {type(value).__name__} values cannot be bound on Spark")


def _program_label(sql: str) -> str:
    first = next((line.strip() for line in sql.splitlines() if line.strip()), "")
    return first if len(first) <= 80 else first[:77] + "..."


def run_program(
    spark: SparkSession,
    sql: str,
    transactions: str | Path | pd.DataFrame,
    params: Mapping[str, Any] | None = None,
    name: str | None = None,
    views: Mapping[str, pa.Table] | None = None,
) -> pd.DataFrame:
    """One DuckDB-dialect program on Spark (:func:`program_sql`) over the view
    ``transactions`` (and ``views``: further Arrow tables by view name) → pandas as DuckDB's
    ``.df()`` gives it. A program that cannot be transpiled, or that Spark cannot analyse,
    is a :class:`ConfigError` naming it."""
    from pyspark.errors import AnalysisException, ParseException

    label = name or _program_label(sql)
    try:
        text, names = program_sql(sql)
    except (sqlglot.errors.SqlglotError, ValueError) as exc:
        raise ConfigError(f"{label}: cannot be transpiled for the Spark engine: {exc}") from None
    given = dict(params or {})
    missing = [n for n in names if n not in given]
    if missing:
        raise ConfigError(
            f"{label}: no value for parameter(s) {', '.join('$' + n for n in missing)}"
        )
    args = {n: _spark_arg(n, given[n]) for n in names}
    program_input(spark, transactions).createOrReplaceTempView("transactions")
    extra = dict(views or {})
    for view, table in extra.items():
        program_input(spark, table).createOrReplaceTempView(view)
    try:
        table = spark.sql(text, args=args or None).toArrow()
    except (AnalysisException, ParseException) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(
            f"{label}: the transpiled program does not run on Spark: {first}"
        ) from None
    finally:
        for view in ["transactions", *extra]:
            spark.catalog.dropTempView(view)
    return _to_duckdb_pandas(table)


def data_range(transactions: DataFrame) -> tuple[dt.date, dt.date, int]:
    from pyspark.sql import functions as F

    day = F.col("ts").cast("date")
    row = transactions.agg(F.min(day), F.max(day), F.count(F.lit(1))).first()
    if row is None or row[2] == 0 or row[0] is None:
        raise DataError("no transactions (run `churnguard ingest` first)")
    return row[0], row[1], int(row[2])


# --------------------------------------------------------------------------- output


def _arrow_schema(frame: DataFrame) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(frame.schema)


def _merge_parts(parts: list[Path], target: Path, schema: pa.Schema) -> int:
    """Concatenate Spark part files (in part order) into one Parquet file with fixed row
    groups, so the bytes depend on the rows only, not on Spark's partitioning."""
    n = 0
    pending: list[pa.RecordBatch] = []
    buffered = 0
    with pq.ParquetWriter(target, schema, compression="zstd") as writer:

        def flush(final: bool) -> None:
            nonlocal pending, buffered
            while buffered >= ROW_GROUP_SIZE or (final and buffered):
                table = pa.Table.from_batches(pending, schema=schema)
                take = min(ROW_GROUP_SIZE, buffered)
                writer.write_table(table.slice(0, take), row_group_size=ROW_GROUP_SIZE)
                rest = table.slice(take)
                pending, buffered = rest.to_batches(), rest.num_rows

        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches(batch_size=65_536):
                batch = pa.RecordBatch.from_arrays(
                    [batch.column(i).cast(schema.field(i).type) for i in range(batch.num_columns)],
                    schema=schema,
                )
                pending.append(batch)
                buffered += batch.num_rows
                n += batch.num_rows
                flush(final=False)
        flush(final=True)
    return n


def write_parquet(frame: DataFrame, target: str | Path) -> int:
    """Write an ordered DataFrame: one Parquet file at a local ``target`` (atomic,
    deterministic), or a Parquet folder at a URI. Returns the row count."""
    if _is_uri(target):
        frame.write.mode("overwrite").parquet(str(target))
        return int(frame.sparkSession.read.parquet(str(target)).count())
    target = Path(target)
    schema = _arrow_schema(frame)
    with atomic_path(target) as tmp:
        stage = tmp.with_name(tmp.name + ".parts")
        try:
            frame.write.mode("overwrite").parquet(str(stage))
            parts = sorted(stage.glob("part-*.parquet"))  # part-<partition>: range order
            return _merge_parts(parts, tmp, schema)
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def _write_text(spark: SparkSession, target: str, text: str) -> None:
    """Write a small text file at a URI through Hadoop's FileSystem (object storage)."""
    jvm = spark.sparkContext._jvm  # type: ignore[attr-defined]
    path = jvm.org.apache.hadoop.fs.Path(target)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # type: ignore[attr-defined]
    out = fs.create(path, True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()


# --------------------------------------------------------------------------- features


def run_features(
    params: FeaturesParams, engine: EngineParams, spark: SparkSession | None = None
) -> dict[str, Any]:
    """``churnguard features`` on Spark: same files, same summary as the DuckDB path."""
    from churnguard.io import dumps_json

    if params.btyd_features:
        raise ConfigError(
            "features.btyd_features is not available on the Spark engine yet (the MBG/NBD "
            "fit runs in Python on each cutoff's rows): use engine.name: duckdb or set it false"
        )
    src = str(params.input)
    if not _is_uri(src) and not Path(src).exists():
        raise DataError(f"{src}: transactions not found (features.input; run `churnguard ingest`)")
    out = str(params.output_dir).rstrip("/")
    if not _is_uri(out):
        Path(out).mkdir(parents=True, exist_ok=True)
    with session(engine, spark) as s, cached_transactions(s, src) as all_tx:
        data_min, data_max, n_tx = data_range(all_tx)
        plan = plan_training(data_min, data_max, params)
        as_of, cutoffs = plan.as_of, plan.cutoffs
        log.info(
            "Spark features: %s plan, cutoffs %s, as-of %s",
            plan.mode,
            ", ".join(map(str, cutoffs)),
            as_of,
        )
        tx = _upto(all_tx, as_of)  # labels never read past the as-of date
        snap_path, cur_path = f"{out}/{SNAPSHOTS_FILE}", f"{out}/{CURRENT_FILE}"
        n_snap = write_parquet(
            feature_frame(s, tx, cutoffs, plan.label_horizon_days, params.lost_after_days),
            snap_path,
        )
        n_cur = write_parquet(feature_frame(s, tx, [as_of], None, params.lost_after_days), cur_path)

        def build(steps: list[dt.date], horizon: int | None, data_end: dt.date) -> pd.DataFrame:
            frame = feature_frame(
                s, _upto(all_tx, data_end), steps, horizon, params.lost_after_days
            )
            return _to_duckdb_pandas(frame.orderBy("cutoff_date", "customer_id").toArrow())

        chain = assemble_chain(plan, build)
        s.read.parquet(snap_path).createOrReplaceTempView("churnguard_snapshots")
        per_cutoff = [
            tuple(r)
            for r in s.sql(
                "select cutoff_date, count(*), sum(churned), sum(lapsed), "
                "avg(churned) filter (where lapsed = 0) from churnguard_snapshots "
                "group by cutoff_date order by cutoff_date"
            ).collect()
        ]
        s.catalog.dropTempView("churnguard_snapshots")
        summary = run_summary(
            per_cutoff,
            len(cutoffs),
            n_tx,
            (data_min, data_max),
            as_of,
            plan.label_horizon_days,
            n_snap,
            n_cur,
            plan,
        )
        if _is_uri(out):
            if plan.mode == "chained":
                raise ConfigError(
                    f"{out}: a chained plan writes {CHAIN_FILE} beside the snapshots, which "
                    "needs a local features.output_dir on the Spark engine for now"
                )
            _write_text(s, f"{out}/{CUTOFFS_FILE}", dumps_json(summary))
    if not _is_uri(out):
        from churnguard.engines.duckdb import write_chain

        write_chain(chain, Path(out) / CHAIN_FILE)
        write_json_atomic(Path(out) / CUTOFFS_FILE, summary)
    return summary


def _upto(transactions: DataFrame, day: dt.date) -> DataFrame:
    """The lines dated on or before ``day``."""
    from pyspark.sql import functions as F

    return transactions.filter(F.col("ts").cast("date") <= F.lit(day))


# --------------------------------------------------------------------------- scoring


class SparkPredictions:
    """Stands in for :class:`ChurnModel` inside ``scoring.score_frame``: the probabilities were
    computed on Spark by the pyfunc UDF; feature checks and SHAP reasons (listed customers
    only) still come from the same booster."""

    def __init__(self, model: ChurnModel, p_churn: pd.Series) -> None:
        self.model = model
        self.p_churn = p_churn

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def check_features(self, frame: pd.DataFrame) -> None:
        self.model.check_features(frame)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        p = self.p_churn.reindex(frame.index)
        if p.isna().any():
            raise ModelError("Spark returned no probability for some customers")
        return p.to_numpy(dtype=float)

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.model.contributions(frame)


def pyfunc_uri(loaded: LoadedModel, workdir: Path) -> str:
    """The MLflow model URI for ``spark_udf``: the registry version the lists report, or a
    ``models/`` folder saved as the same pyfunc that training logs."""
    if loaded.ref.startswith("models:/"):
        name = loaded.ref.removeprefix("models:/").split("@")[0].split("/")[0]
        return f"models:/{name}/{loaded.version}" if loaded.version.isdigit() else loaded.ref
    import mlflow.pyfunc

    from churnguard import tracking

    path = workdir / "pyfunc"
    mlflow.pyfunc.save_model(
        path=str(path),
        python_model=tracking.pyfunc_class()(),
        artifacts={"model_dir": str(Path(loaded.ref).resolve())},
        code_paths=[str(Path(tracking.__file__).resolve().parent)],
        pip_requirements=tracking._requirements(),
    )
    return str(path)


def _to_duckdb_pandas(table: pa.Table) -> pd.DataFrame:
    """pandas exactly as DuckDB's ``.df()`` gives it on the DuckDB path (dtypes, dates)."""
    import duckdb

    con = duckdb.connect()
    try:
        con.register("spark_result", table)
        return con.execute("select * from spark_result").df()
    finally:
        con.close()


def score_snapshot(
    transactions: str | Path,
    as_of: dt.date,
    lost_after_days: int,
    loaded: LoadedModel,
    engine: EngineParams,
    spark: SparkSession | None = None,
    snapshot: str | Path | None = None,
) -> tuple[pd.DataFrame, SparkPredictions | ChainedScores]:
    """Current snapshot and P(churn) on Spark → (snapshot as DuckDB gives it, model stand-in).

    A chained model's step snapshots are built on Spark and scored in Python. ``snapshot``:
    the as-of snapshot is read from that file (the features stage's ``current.parquet``)
    instead of being built."""
    import mlflow.pyfunc
    from pyspark.sql import functions as F

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    if needs_btyd(loaded.model):
        raise ConfigError(
            "this model uses the BTYD features (features.btyd_features), which the Spark "
            "engine cannot compute yet: score it with engine.name: duckdb"
        )
    if is_chained(loaded.model):
        # the chain scores several step snapshots with the base scorer in Python
        from churnguard.engines.duckdb import chained_scores

        with session(engine, spark) as s, cached_transactions(s, transactions) as tx:
            upto = _upto(tx, as_of)

            def build(cutoffs: list[dt.date]) -> pd.DataFrame:
                frame = feature_frame(s, upto, cutoffs, None, lost_after_days)
                return _to_duckdb_pandas(frame.orderBy("cutoff_date", "customer_id").toArrow())

            if snapshot is not None:
                frame = s.read.parquet(str(snapshot)).select(*COLUMN_NAMES)
                snap = _to_duckdb_pandas(frame.orderBy("cutoff_date", "customer_id").toArrow())
            else:
                snap = build([as_of])
            return snap, chained_scores(loaded.model, build, as_of)
    features = loaded.model.features
    with (
        session(engine, spark) as s,
        cached_transactions(s, transactions) as tx,
        tempfile.TemporaryDirectory(prefix="cg-spark-model-") as tmp,
    ):
        snap = (
            s.read.parquet(str(snapshot)).select(*COLUMN_NAMES)
            if snapshot is not None
            else feature_frame(s, tx, [as_of], None, lost_after_days)
        )
        uri = pyfunc_uri(loaded, Path(tmp))
        try:
            udf = mlflow.pyfunc.spark_udf(s, uri, result_type="double", env_manager="local")
        except Exception as exc:
            raise ModelError(
                f"cannot load {uri} as a Spark UDF ({type(exc).__name__}: {exc})"
            ) from None
        inputs = F.struct(*[F.col(f).cast("double").alias(f) for f in features])
        scored = snap.withColumn(P_COLUMN, udf(inputs)).orderBy("cutoff_date", "customer_id")
        table = scored.toArrow()
    frame = _to_duckdb_pandas(table.drop_columns([P_COLUMN]))
    p = pd.Series(
        table.column(P_COLUMN).to_numpy(zero_copy_only=False), index=frame.index, dtype=float
    )
    log.info("Spark scored %s customers at %s", f"{len(frame):,}", as_of)
    return frame, SparkPredictions(loaded.model, p)


_HIVE_ESCAPE = set("\"#%'*/:=?\\\x7f{[]^")


def hive_escape(value: object) -> str:
    """A partition value as Spark writes it in a folder name (``ExternalCatalogUtils.
    escapePathName``): control and path characters as %XX, everything else (Arabic,
    Persian, accents) as is, so Spark and pyarrow read the value back unchanged."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "__HIVE_DEFAULT_PARTITION__"
    return "".join(f"%{ord(ch):02X}" if ch < " " or ch in _HIVE_ESCAPE else ch for ch in str(value))


def write_scores_parquet(folder: Path, present: pd.DataFrame) -> list[str]:
    """Every scored customer as Parquet partitioned by account manager, Hive layout
    (``scores.parquet/account_manager=<name>/part-0.parquet``), listed customers first in
    rank order. File names are fixed, so a re-run is byte-identical. Returns the paths
    relative to ``folder``."""
    ordered = present.assign(_off=present["rank"] <= 0).sort_values(
        ["account_manager", "_off", "rank", "customer_id"], kind="stable"
    )
    files: list[str] = []
    for manager, group in ordered.groupby("account_manager", sort=True, dropna=False):
        part = group.drop(columns=["_off", "account_manager"])
        table = pa.Table.from_pandas(part, preserve_index=False).replace_schema_metadata(None)
        rel = f"{SCORES_DIR}/account_manager={hive_escape(manager)}/part-0.parquet"
        with atomic_path(folder / rel) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        files.append(rel)
    return sorted(files)


# --------------------------------------------------------------------------- the engine


class SparkEngine:
    """Apache Spark behind the :class:`churnguard.engines.Engine` interface.

    Features, the scoring snapshot with P(churn), the date range and the SQL programs
    (``run_program``: the CRR report and the input checks) run on Spark. A program is
    transpiled from DuckDB's dialect like the feature SQL (:func:`program_sql`), its
    ``$name`` parameters bound by Spark; one that cannot be is a :class:`ConfigError`
    naming it (there is no fallback to DuckDB). Transactions may be a local path, a URI
    (``s3://…``, ``hdfs://…``) or a pandas frame.
    """

    name = "spark"

    def __init__(self, params: EngineParams) -> None:
        self.params = params

    def data_range(self, transactions: str | Path | pd.DataFrame) -> tuple[dt.date, dt.date, int]:
        with session(self.params) as s:
            return data_range(program_input(s, transactions))

    def run_program(
        self,
        sql: str,
        transactions: str | Path | pd.DataFrame,
        params: Mapping[str, Any] | None = None,
        name: str | None = None,
        views: Mapping[str, pa.Table] | None = None,
    ) -> pd.DataFrame:
        with session(self.params) as s:
            return run_program(s, sql, transactions, params, name, views)

    def build_features(self, params: FeaturesParams) -> dict[str, Any]:
        return run_features(params, self.params)

    def score_snapshot(
        self,
        transactions: str | Path,
        as_of: dt.date,
        lost_after_days: int,
        loaded: LoadedModel,
        snapshot: str | Path | None = None,
    ) -> tuple[pd.DataFrame, SparkPredictions | ChainedScores]:
        return score_snapshot(
            transactions, as_of, lost_after_days, loaded, self.params, snapshot=snapshot
        )

    def extra_score_files(self, folder: Path, present: pd.DataFrame) -> list[str]:
        return write_scores_parquet(folder, present)
