"""Customer retention rate per month, quarter or year (``churnguard report crr``).

The playbook's formula is ``CRR = (E − N) / S × 100``: S customers at the start of the
period, E at the end, N acquired during it. A non-contractual business has no
contract end, so "a customer at date d" is defined by activity: **a purchase line
(amount >= 0) dated in (d − active_within_days, d]**.

For each complete period ``[period_start, period_end]``:

- S = customers active on ``period_start − 1 day``;
- E = customers active on ``period_end``;
- N = customers active on ``period_end`` who were not active at the start: the
  ``new_customers`` (first purchase ever inside the period) plus the
  ``reactivated_customers`` (bought before the period, had lapsed by its start, bought
  again by its end). New customers who lapse again before the period ends are in
  neither E nor N.

Counting reactivated customers in N (and not only first-time buyers) keeps ``E − N``
equal to the retained customers ``S ∩ E``, so CRR is the share of S still active at
the end: always between 0 and 100, with ``lost = S − (E − N)`` never negative. Counting
only first-time buyers would let a returning lapsed customer hide a lost one (CRR can
then exceed 100).

A period is reported only when it is complete inside the data: it starts at least one
day after the first transaction (so S is observed) and ends on or before the last
transaction date; partial periods are skipped. Activity before the first transaction
date is unknown: while the look-back window at a period start reaches before it,
S is undercounted and N overcounted (column ``full_lookback`` is false).
"""

from __future__ import annotations

import datetime as dt
import logging
from importlib import resources
from pathlib import Path
from typing import Literal, get_args

import pandas as pd

from churnguard.config import EngineParams, ReportParams
from churnguard.csvsafe import write_excel_csv_atomic
from churnguard.engines import Engine, get_engine
from churnguard.errors import ChurnguardError, ConfigError, DataError

log = logging.getLogger(__name__)

Period = Literal["month", "quarter", "year"]
PERIODS: tuple[str, ...] = get_args(Period)
_MONTHS: dict[str, int] = {"month": 1, "quarter": 3, "year": 12}

COLUMNS: tuple[str, ...] = (
    "period",
    "period_start",
    "period_end",
    "customers_start",
    "customers_end",
    "new_customers",
    "reactivated_customers",
    "retained_customers",
    "lost_customers",
    "crr_pct",
    "churn_rate_pct",
    "active_within_days",
    "full_lookback",
)

CRR_SQL = "sql/crr.sql"  # the program, top to bottom, parameters bound


def crr_from_counts(start: int, end: int, new: int) -> float | None:
    """The playbook's ``(E − N) / S × 100`` from counts; ``None`` when ``S == 0``."""
    if min(start, end, new) < 0:
        raise ValueError(f"counts must be non-negative, got S={start}, E={end}, N={new}")
    if new > end:
        raise ValueError(f"new customers ({new}) cannot exceed customers at the end ({end})")
    if start == 0:
        return None
    return (end - new) * 100 / start


def definition(active_within_days: int) -> str:
    """One sentence saying what "a customer" means in the report."""
    return (
        f"A customer at date d is anyone with a purchase (amount >= 0) in the "
        f"{active_within_days} days ending on d, i.e. in (d - {active_within_days} days, d]. "
        "S = customers the day before the period starts; E = customers on its last day; "
        "N = customers at the end who were not customers at the start (first-time buyers "
        "plus reactivated ones); CRR = (E - N) / S x 100 = share of S still active at the end; "
        "churn rate = 100 - CRR. Only complete periods inside the data are reported."
    )


def check_crr_identity(frame: pd.DataFrame) -> None:
    """Fail loudly when a CRR row breaks the identity the definition guarantees.

    Per row: ``N = new + reactivated``; ``E = retained + N``; ``0 <= E − N <= E`` and
    ``E − N <= S`` (retained old customers are a subset of S); ``lost = S − (E − N) >= 0``;
    ``0 <= CRR <= 100`` agreeing with :func:`crr_from_counts`; ``CRR + churn rate = 100``.
    """
    for row in frame.itertuples(index=False):
        s, e = int(row.customers_start), int(row.customers_end)
        n = int(row.new_customers) + int(row.reactivated_customers)
        retained, lost = int(row.retained_customers), int(row.lost_customers)
        problems = []
        if e != retained + n:
            problems.append(f"E ({e}) != retained ({retained}) + N ({n})")
        if not 0 <= e - n <= min(e, s):
            problems.append(f"E - N ({e - n}) outside [0, min(E, S)] with S={s}, E={e}")
        if lost != s - (e - n) or lost < 0:
            problems.append(f"lost ({lost}) != S - (E - N) = {s - (e - n)}")
        crr = crr_from_counts(s, e, n)
        if crr is None:
            if not (pd.isna(row.crr_pct) and pd.isna(row.churn_rate_pct)):
                problems.append("S = 0 but CRR or churn rate is not empty")
        else:
            if not 0 <= row.crr_pct <= 100 or abs(row.crr_pct - crr) > 0.005 + 1e-9:
                problems.append(f"crr_pct {row.crr_pct} != {crr:.4f} or outside [0, 100]")
            if abs(row.crr_pct + row.churn_rate_pct - 100) > 1e-9:
                problems.append(f"crr_pct + churn_rate_pct = {row.crr_pct + row.churn_rate_pct}")
        if problems:
            raise ChurnguardError(
                f"CRR identity broken for period {row.period}: " + "; ".join(problems)
            )


def _validate_args(period: str, active_within_days: int) -> None:
    if period not in _MONTHS:
        raise ConfigError(f"unknown period {period!r}; allowed: {', '.join(PERIODS)}")
    if active_within_days < 1:
        raise ConfigError(
            f"report.active_within_days must be at least 1 (got {active_within_days})"
        )


def crr_sql() -> str:
    """The CRR program (DuckDB dialect): reads the view ``transactions``."""
    return resources.files("churnguard").joinpath(CRR_SQL).read_text(encoding="utf-8")


def crr_table(
    engine: Engine,
    transactions: str | Path | pd.DataFrame,
    period: Period,
    active_within_days: int,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> pd.DataFrame:
    """CRR per complete ``period`` over canonical transactions (a Parquet path or a frame).

    A customer at date d has a purchase (amount >= 0) in ``(d − active_within_days, d]``;
    see the module docstring for S, E, N and which periods are reported. ``start`` /
    ``end`` keep only periods lying entirely inside ``[start, end]``. One row per period,
    oldest first; the definition is in ``frame.attrs["definition"]``.
    """
    _validate_args(period, active_within_days)
    frame = engine.run_program(
        crr_sql(),
        transactions,
        {
            "unit": period,
            "months": _MONTHS[period],
            "window": active_within_days,
            "start": start,
            "end": end,
        },
        name=CRR_SQL,
    )
    for col in ("period_start", "period_end"):
        frame[col] = pd.to_datetime(frame[col]).dt.date
    frame = frame[list(COLUMNS)]
    check_crr_identity(frame)
    frame.attrs.update(
        definition=definition(active_within_days),
        period=period,
        active_within_days=active_within_days,
    )
    return frame


_PURCHASE_LINES_SQL = (
    "select count(*) as n from transactions "
    "where amount >= 0 and customer_id is not null and ts is not null"
)


def _is_uri(path: str | Path) -> bool:
    return "://" in str(path) or str(path).startswith("dbfs:")


def _check_input(engine: Engine, path: str | Path) -> None:
    """Refuse a missing, unreadable or non-canonical local file, or one without purchases.
    A URI (``s3://…``, ``hdfs://…``: the Spark engine reads it) gets the purchase check only."""
    where = "(features.input / score.transactions in params.yaml)"
    if isinstance(path, Path):
        _check_local_file(path, where)
    n = int(engine.run_program(_PURCHASE_LINES_SQL, path)["n"].iloc[0])
    if n == 0:
        raise DataError(
            f"{path}: no purchase lines (amount >= 0) to compute retention from; check {where}"
        )


def _check_local_file(path: Path, where: str) -> None:
    if not path.exists():
        raise DataError(f"{path}: transactions not found {where}; run `churnguard ingest` first")
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        cols = set(pq.read_schema(path).names)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}: not a readable Parquet file {where}: {exc}") from None
    missing = [c for c in ("customer_id", "ts", "amount") if c not in cols]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; point {where} at the canonical "
            "transactions written by `churnguard ingest`"
        )


def run_crr(
    transactions_path: str | Path,
    period: Period,
    params: ReportParams,
    engine: EngineParams,
    output: Path | None = None,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> pd.DataFrame:
    """Compute the CRR table from the transactions Parquet; write it as CSV when ``output``."""
    _validate_args(period, params.active_within_days)
    # a URI stays a string (Path would fold "s3://" into "s3:/")
    path = str(transactions_path) if _is_uri(transactions_path) else Path(transactions_path)
    runner = get_engine(engine)
    _check_input(runner, path)
    frame = crr_table(runner, path, period, params.active_within_days, start, end)
    if frame.empty:
        data_min, data_max, _ = runner.data_range(path)
        raise DataError(
            f"{path}: no complete {period} inside the data ({data_min}..{data_max}"
            + (f", limited to {start or '…'}..{end or '…'}" if start or end else "")
            + "); a period must start after the first transaction date and end on or "
            "before the last one"
        )
    if output is not None:  # the project's one CSV writer: opens safely in a spreadsheet
        write_excel_csv_atomic(output, frame, identifiers=())
    log.info(
        "CRR by %s for %d period(s) %s..%s (active within %d days)%s",
        period,
        len(frame),
        frame["period"].iloc[0],
        frame["period"].iloc[-1],
        params.active_within_days,
        f" -> {output}" if output is not None else "",
    )
    return frame
