"""The DuckDB engine (embedded, out of core; the default): runs the project's SQL programs
on canonical Parquet with ``engine.memory_limit`` / ``threads`` / ``temp_directory``."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pandas as pd
import pyarrow as pa

from churnguard.btyd_features import NAMES as BTYD_NAMES
from churnguard.btyd_features import add_btyd_features
from churnguard.config import EngineParams, FeaturesParams, memory_bytes
from churnguard.db import connect, sql_string
from churnguard.errors import DataError
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
    with_btyd,
)
from churnguard.horizon import Plan, chain_cutoffs, plan_training
from churnguard.io import atomic_path, write_json_atomic
from churnguard.modeling import ChainedScores, chained_churn, is_chained
from churnguard.timing import timed

if TYPE_CHECKING:  # pragma: no cover
    from churnguard.modeling import ChurnModel, LoadedModel

log = logging.getLogger(__name__)


def _register_inputs(
    con: duckdb.DuckDBPyConnection,
    transactions: str | Path,
    cutoffs: pd.DataFrame,
    data_end: dt.date | None = None,
) -> None:
    """The ``transactions`` and ``cutoffs`` views the feature SQL reads; ``data_end`` hides
    every line dated after it (a chain step's snapshot sees only the data up to its origin)."""
    where = f" where cast(ts as date) <= date '{data_end.isoformat()}'" if data_end else ""
    con.execute(
        f"create or replace temp view transactions as select * from read_parquet({sql_string(str(transactions))}){where}"
    )
    con.register("cutoffs_df", cutoffs)
    con.execute(
        "create or replace temp table cutoffs as select cutoff_date::date as cutoff_date, "
        "horizon_end::date as horizon_end, d30::date as d30, d90::date as d90, "
        "d180::date as d180, d365::date as d365, lost_after_days::integer as lost_after_days "
        "from cutoffs_df"
    )
    con.unregister("cutoffs_df")


def _copy_atomic(con: duckdb.DuckDBPyConnection, target: Path) -> int:
    """Run the feature SQL and write it to ``target`` atomically; return the row count."""
    with atomic_path(target) as tmp:
        con.execute(
            f"copy ({feature_sql()}) to {sql_string(str(tmp))} "
            "(format parquet, compression zstd, row_group_size 122880)"
        )
        n = con.execute(f"select count(*) from read_parquet({sql_string(str(tmp))})").fetchone()
    return int(n[0]) if n else 0


def data_range(
    con: duckdb.DuckDBPyConnection, transactions: str | Path
) -> tuple[dt.date, dt.date, int]:
    row = con.execute(
        f"select min(cast(ts as date)), max(cast(ts as date)), count(*) "
        f"from read_parquet({sql_string(parquet_source(transactions))})"
    ).fetchone()
    if row is None or row[2] == 0 or row[0] is None:
        raise DataError(f"{transactions}: no transactions (run `churnguard ingest` first)")
    return row[0], row[1], int(row[2])


# "auto" batches cutoffs so one query sees at most this many (transaction line × cutoff)
# pairs per GB of engine.memory_limit. Measured at memory_limit 3GB (docs/benchmarks.md):
# 10M lines × 6 cutoffs in one query ran in 3.1 GB RSS (4 GB spilled); 50M × 6 spilled
# 37 GiB and failed; 50M one cutoff at a time stayed at 3.3 GB RSS.
AUTO_LINE_CUTOFFS_PER_GB = 25_000_000


def memory_gb(limit: str) -> float:
    """``engine.memory_limit`` in GB (10⁹ bytes, DuckDB's unit): "2GB" → 2.0, "80%" → 80%
    of physical memory (``config.memory_bytes``)."""
    return memory_bytes(limit) / 1e9


def cutoffs_per_query(setting: int | str, n_transactions: int, memory_limit: str = "2GB") -> int:
    """Resolve ``features.cutoffs_per_query``: a number, or "auto" =
    max(1, 25M × memory_limit in GB // transaction lines)."""
    if setting == "auto":
        budget = int(AUTO_LINE_CUTOFFS_PER_GB * memory_gb(memory_limit))
        return max(1, budget // max(1, n_transactions))
    return int(setting)


def build_snapshot(
    con: duckdb.DuckDBPyConnection,
    transactions: str | Path,
    cutoffs: list[dt.date],
    horizon_days: int | None,
    lost_after_days: int,
    target: Path,
    per_query: int | None = None,
    data_end: dt.date | None = None,
) -> int:
    """Write the feature snapshot(s) for ``cutoffs`` to ``target``; labelled when horizon_days.

    ``per_query`` cutoffs at a time (None: all in one query). Batches are written as part
    files and concatenated in cutoff order: the same rows in the same order, with the same
    schema, as one query, since every feature is computed within its cutoff. ``data_end``
    hides lines dated after it (chain snapshots: cutoffs after the data they may see).
    """
    if per_query is None or len(cutoffs) <= per_query:
        _register_inputs(
            con, transactions, cutoff_table(cutoffs, horizon_days, lost_after_days), data_end
        )
        return _copy_atomic(con, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.parts-", dir=target.parent) as tmp:
        parts = []
        for i in range(0, len(cutoffs), per_query):
            part = Path(tmp) / f"part-{i:05d}.parquet"
            batch = cutoffs[i : i + per_query]
            _register_inputs(
                con, transactions, cutoff_table(batch, horizon_days, lost_after_days), data_end
            )
            _copy_atomic(con, part)
            log.info("cutoffs %s..%s written", batch[0], batch[-1])
            parts.append(part)
        return concat_parts(parts, target)


ROW_GROUP_ROWS = 122_880


def concat_parts(parts: list[Path], target: Path) -> int:
    """Stream ``parts`` (same columns, in order) into ``target`` in row groups of
    ``ROW_GROUP_ROWS``, keeping the first part's schema: DuckDB would drop the NOT NULL
    flags when reading several files, so the schema would depend on the batch size. The
    writer differs from DuckDB's, so the bytes are deterministic for a given batch size
    but not equal to one query's file (the rows and schema are)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(parts[0]).remove_metadata()
    rows = 0
    with atomic_path(target) as out, pq.ParquetWriter(out, schema, compression="zstd") as writer:
        pending: list[pa.RecordBatch] = []
        n_pending = 0
        for part in parts:
            for batch in pq.ParquetFile(part).iter_batches(batch_size=ROW_GROUP_ROWS):
                pending.append(batch.cast(schema))
                n_pending += batch.num_rows
                while n_pending >= ROW_GROUP_ROWS:
                    table = pa.Table.from_batches(pending, schema)
                    writer.write_table(
                        table.slice(0, ROW_GROUP_ROWS), row_group_size=ROW_GROUP_ROWS
                    )
                    rest = table.slice(ROW_GROUP_ROWS)
                    pending, n_pending = rest.to_batches(), rest.num_rows
                    rows += ROW_GROUP_ROWS
        if n_pending or rows == 0:
            writer.write_table(
                pa.Table.from_batches(pending, schema), row_group_size=ROW_GROUP_ROWS
            )
            rows += n_pending
    return rows


def remove_stale_parts(folder: Path) -> None:
    """Part folders a killed run left behind (``build_snapshot`` removes its own)."""
    for stale in folder.glob(".*.parts-*"):
        shutil.rmtree(stale, ignore_errors=True)


@timed("snapshot (feature SQL)")
def snapshot_frame(
    transactions: str | Path,
    as_of: dt.date,
    lost_after_days: int,
    engine: EngineParams,
    horizon_days: int | None = None,
    cutoffs: list[dt.date] | None = None,
    data_end: dt.date | None = None,
) -> pd.DataFrame:
    """The snapshot at ``as_of`` (or at each of ``cutoffs``) as a DataFrame (used by scoring;
    same SQL as training); ``data_end`` hides lines dated after it."""
    con = connect(engine)
    try:
        table = cutoff_table(cutoffs or [as_of], horizon_days, lost_after_days)
        _register_inputs(con, transactions, table, data_end)
        return con.execute(feature_sql()).df()
    finally:
        con.close()


@timed("snapshot (read)")
def read_snapshot(path: str | Path, engine: EngineParams) -> pd.DataFrame:
    """A snapshot file the features stage wrote (``current.parquet``) exactly as
    :func:`snapshot_frame` gives the same snapshot: the feature SQL's columns (not the BTYD
    ones, which scoring adds when the scorer needs them), in its row order."""
    con = connect(engine)
    try:
        return con.execute(
            f"select {', '.join(COLUMN_NAMES)} from read_parquet({sql_string(str(path))}) "
            "order by cutoff_date, customer_id"
        ).df()
    except duckdb.Error as exc:
        raise DataError(f"{path}: not a feature snapshot ({type(exc).__name__}: {exc})") from None
    finally:
        con.close()


def chain_frame(
    transactions: str | Path,
    plan: Plan,
    lost_after_days: int,
    engine: EngineParams,
    btyd: bool = False,
) -> pd.DataFrame:
    """The calibration data of a chained plan (:func:`feature_defs.assemble_chain`): for
    every chain origin o, the snapshots at o + k·h built from the lines dated ≤ o, with
    the realised target label at o (BTYD columns fitted per step snapshot when ``btyd``)."""

    def build(cutoffs: list[dt.date], horizon: int | None, data_end: dt.date) -> pd.DataFrame:
        return with_btyd(
            snapshot_frame(
                transactions, cutoffs[0], lost_after_days, engine, horizon, cutoffs, data_end
            ),
            btyd,
        )

    return assemble_chain(plan, build)


def chained_scores(
    scorer: Any, build: Callable[[list[dt.date]], pd.DataFrame], as_of: dt.date
) -> ChainedScores:
    """A chained scorer at ``as_of``: ``build(cutoffs)`` gives the step snapshots from the
    lines up to ``as_of`` (any engine)."""
    meta = scorer.metadata
    steps = build(chain_cutoffs(as_of, meta["label_horizon_days"], meta["horizon_days"]))
    return ChainedScores(scorer, chained_churn(scorer, steps))


def write_chain(frame: pd.DataFrame, target: Path) -> None:
    """``chain.parquet``: always written (empty for a direct plan), so DVC tracks one file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    with atomic_path(target) as tmp:
        pq.write_table(table.replace_schema_metadata(None), tmp, compression="zstd")


def parquet_source(transactions: str | Path) -> str:
    """What ``read_parquet`` reads for a transactions path: the file, or every part under a
    folder (the Spark engine writes parts)."""
    path = Path(transactions)
    return str(path / "**" / "*.parquet") if path.is_dir() else str(transactions)


def _register_source(
    con: duckdb.DuckDBPyConnection, transactions: str | Path | pd.DataFrame
) -> None:
    """The ``transactions`` view a program reads: a Parquet file or folder, or a frame."""
    if isinstance(transactions, pd.DataFrame):
        con.register("transactions", transactions)
    else:
        source = sql_string(parquet_source(transactions))
        con.execute(
            f"create or replace temp view transactions as select * from read_parquet({source})"
        )


class DuckDBEngine:
    """Embedded DuckDB: the default engine (see the module docstring)."""

    name = "duckdb"

    def __init__(self, params: EngineParams) -> None:
        self.params = params

    @timed("data_range (as-of)")
    def data_range(self, transactions: str | Path) -> tuple[dt.date, dt.date, int]:
        con = connect(self.params)
        try:
            return data_range(con, transactions)
        finally:
            con.close()

    def run_program(
        self,
        sql: str,
        transactions: str | Path | pd.DataFrame,
        params: dict[str, Any] | None = None,
        name: str | None = None,  # only other engines' errors need it
        views: Mapping[str, pa.Table] | None = None,
    ) -> pd.DataFrame:
        con = connect(self.params)
        try:
            _register_source(con, transactions)
            for view, table in (views or {}).items():
                con.register(view, table)
            return con.execute(sql, dict(params or {})).df()
        finally:
            con.close()

    def build_features(self, params: FeaturesParams) -> dict[str, Any]:
        src = Path(params.input)
        if not src.exists():
            raise DataError(
                f"{src}: transactions not found (features.input; run `churnguard ingest`)"
            )
        out_dir = Path(params.output_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_parts(out_dir)
        con = connect(self.params)
        try:
            data_min, data_max, n_tx = data_range(con, src)
            plan = plan_training(data_min, data_max, params)
            as_of, cutoffs = plan.as_of, plan.cutoffs
            if as_of > data_max:
                log.warning("features.as_of %s is after the last transaction (%s)", as_of, data_max)
            log.info(
                "%s %d-day horizon: cutoffs %s (every %d days, %d-day labels, as-of %s)",
                plan.mode,
                plan.target_horizon_days,
                ", ".join(str(c) for c in cutoffs),
                plan.step_days,
                plan.label_horizon_days,
                as_of,
            )
            per_query = cutoffs_per_query(params.cutoffs_per_query, n_tx, self.params.memory_limit)
            # labels never read past the as-of date: lines after it are hidden
            n_snap = build_snapshot(
                con,
                src,
                cutoffs,
                plan.label_horizon_days,
                params.lost_after_days,
                out_dir / SNAPSHOTS_FILE,
                per_query,
                as_of,
            )
            n_cur = build_snapshot(
                con, src, [as_of], None, params.lost_after_days, out_dir / CURRENT_FILE, None, as_of
            )
            per_cutoff = con.execute(
                "select cutoff_date, count(*), sum(churned), sum(lapsed), "
                "avg(churned) filter (where lapsed = 0) from read_parquet(?) "
                "group by cutoff_date order by cutoff_date",
                [str(out_dir / SNAPSHOTS_FILE)],
            ).fetchall()
        finally:
            con.close()
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
        if params.btyd_features:  # fitted on each cutoff's own rows: still point-in-time
            add_btyd_to_parquet(str(out_dir / SNAPSHOTS_FILE))
            add_btyd_to_parquet(str(out_dir / CURRENT_FILE))
        write_chain(
            chain_frame(src, plan, params.lost_after_days, self.params, params.btyd_features),
            out_dir / CHAIN_FILE,
        )
        write_json_atomic(out_dir / CUTOFFS_FILE, summary)
        return summary

    def score_snapshot(
        self,
        transactions: str | Path,
        as_of: dt.date,
        lost_after_days: int,
        loaded: LoadedModel,
        snapshot: str | Path | None = None,
    ) -> tuple[pd.DataFrame, ChurnModel | ChainedScores]:
        btyd = needs_btyd(loaded.model)
        snap = with_btyd(
            read_snapshot(snapshot, self.params)
            if snapshot is not None
            else snapshot_frame(transactions, as_of, lost_after_days, self.params),
            btyd,
        )
        if not is_chained(loaded.model):
            return snap, loaded.model
        return snap, chained_scores(
            loaded.model,
            lambda cutoffs: with_btyd(
                snapshot_frame(
                    transactions, as_of, lost_after_days, self.params, None, cutoffs, as_of
                ),
                btyd,
            ),
            as_of,
        )

    def extra_score_files(self, folder: Path, present: pd.DataFrame) -> list[str]:
        return []


def add_btyd_to_parquet(path: str) -> int:
    """Append the BTYD columns to a snapshot Parquet file in place (atomic); its rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    frame = table.select(
        ["cutoff_date", "purchase_days", "tenure_days", "recency_days"]
    ).to_pandas()
    extra = add_btyd_features(frame)
    for name in BTYD_NAMES:
        table = table.append_column(name, pa.array(extra[name].to_numpy(), pa.float64()))
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(None), tmp, compression="zstd")
    return table.num_rows
