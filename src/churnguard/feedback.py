"""Closing the loop: outcomes managers recorded come back in, and each action's measured
save rate goes out (``churnguard outcomes import``, ``churnguard report uplift``).

**Import.** A filled workbook (``by_manager/<name>.xlsx``: sheet ``List``, header in row 1,
columns found by name: ``list_date`` (date cell), ``customer_id`` (text), ``action`` (the
playbook rule's name), ``contacted_on`` (date cell or empty), ``outcome`` (reached / no
answer / saved / declined / wrong contact, or empty), ``note``) or a CSV (UTF-8, comma,
header row; the same columns, or the CRM form ``as_of, customer_id, action, contacted_on,
outcome[, note]``). Every file is read before anything is written; rows are validated
against the ledger's lists (:func:`churnguard.outcomes.validate`), accepted rows that add or
change a record become one import, refused rows go to ``rejects/`` with file, row, column
and reason.

**Uplift.** The ledger's episode entries whose label window has passed, joined in DuckDB
with the canonical transactions (``sql/uplift.sql``), then :mod:`churnguard.uplift`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import zipfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as pads

from churnguard import ledger as store
from churnguard import outcomes as oc
from churnguard import uplift as up
from churnguard.config import (
    EngineParams,
    FeaturesParams,
    OutcomesParams,
    ReportParams,
    ScoreParams,
)
from churnguard.csvsafe import safe_file_stem, write_excel_csv_atomic
from churnguard.errors import ConfigError, DataError
from churnguard.io import file_sha256, folder_lock, write_text_atomic
from churnguard.report import render_uplift_html

log = logging.getLogger(__name__)

WORKBOOK_SHEET = "List"
UPLIFT_SQL = "sql/uplift.sql"
UPLIFT_CSV, UPLIFT_HTML = "uplift.csv", "uplift.html"


# --------------------------------------------------------------------------- reading files


def _workbook_rows(path: Path) -> pd.DataFrame:
    """Rows of the ``List`` sheet of a manager's workbook, cells as typed."""
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = load_workbook(path, read_only=True, data_only=False)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .xlsx workbook ({exc})") from None
    try:
        if WORKBOOK_SHEET not in wb.sheetnames:
            raise DataError(
                f"{path}: no sheet named {WORKBOOK_SHEET!r} (sheets: {', '.join(wb.sheetnames)}); "
                "import the workbook churnguard wrote, with its first sheet 'List'"
            )
        rows = list(wb[WORKBOOK_SHEET].iter_rows())
    finally:
        wb.close()
    if not rows:
        raise DataError(f"{path}, sheet {WORKBOOK_SHEET}, row 1: the sheet is empty (no header)")
    header = [str(c.value).strip() if c.value is not None else "" for c in rows[0]]
    positions = _positions(header, path, f"sheet {WORKBOOK_SHEET}, ", csv_alias=False)
    records = []
    for r, row in enumerate(rows[1:], start=2):
        cells = {name: (row[i] if i < len(row) else None) for name, i in positions.items()}
        rec: dict[str, Any] = {n: getattr(c, "value", None) for n, c in cells.items()}
        rec["formula"] = tuple(n for n, c in cells.items() if getattr(c, "data_type", "") == "f")
        rec["source_row"] = r
        records.append(rec)
    return _trim(pd.DataFrame(records, columns=[*positions, "formula", "source_row"], dtype=object))


def _csv_rows(path: Path) -> pd.DataFrame:
    """Rows of a CSV (UTF-8, comma, header row): the CRM export or the workbook's columns."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: bytes that are not UTF-8 at byte offset {exc.start}; export the file as UTF-8"
        ) from None
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise DataError(f"{path}: broken CSV quoting ({exc})") from None
    if not records:
        raise DataError(f"{path}, row 1: the file is empty (no header)")
    header = [h.strip() for h in records[0]]
    positions = _positions(header, path, "", csv_alias=True)
    out = []
    for r, rec in enumerate(records[1:], start=2):
        if rec == []:
            continue  # a blank line
        if len(rec) != len(header):
            raise DataError(
                f"{path}, row {r}: {len(rec)} fields but the header has {len(header)}; fix the "
                "export (a field holding a comma must be quoted)"
            )
        row: dict[str, Any] = {n: rec[i] for n, i in positions.items()}
        row["formula"] = ()
        row["source_row"] = r
        out.append(row)
    return _trim(pd.DataFrame(out, columns=[*positions, "formula", "source_row"], dtype=object))


def _positions(header: list[str], path: Path, where: str, csv_alias: bool) -> dict[str, int]:
    names = {h: i for i, h in reversed(list(enumerate(header))) if h}
    wanted = list(oc.REQUIRED_COLUMNS) + list(oc.OPTIONAL_COLUMNS)
    for name in wanted + [oc.CSV_LIST_DATE_ALIAS]:
        if header.count(name) > 1:
            raise DataError(f"{path}, {where}row 1, column {name!r}: the column appears twice")
    if csv_alias and oc.CSV_LIST_DATE_ALIAS in names:
        if "list_date" in names:
            raise DataError(
                f"{path}, {where}row 1: both 'list_date' and 'as_of' are present; keep one"
            )
        names["list_date"] = names.pop(oc.CSV_LIST_DATE_ALIAS)
    missing = [c for c in oc.REQUIRED_COLUMNS if c not in names]
    if missing:
        alias = " ('as_of' is accepted for list_date)" if csv_alias else ""
        raise DataError(
            f"{path}, {where}row 1, column {missing[0]!r}: missing column(s) {missing}{alias}; "
            f"an outcome file needs {', '.join(oc.REQUIRED_COLUMNS)} (and optionally note)"
        )
    return {c: names[c] for c in wanted if c in names}


def _trim(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop trailing rows with nothing in them (formatting or validation a spreadsheet
    carries past the data); blank rows between data rows stay and are counted."""
    if "note" not in frame:
        frame["note"] = None
    cols = [*oc.KEY, *oc.FIELDS]
    filled = frame[cols].apply(lambda col: col.map(lambda v: not oc.is_blank(v))).any(axis=1)
    if not filled.any():
        return frame.iloc[0:0]
    last = int(np.flatnonzero(filled.to_numpy())[-1])
    return frame.iloc[: last + 1].reset_index(drop=True)


def read_outcome_file(path: Path) -> tuple[pd.DataFrame, str]:
    """The rows of one outcome file (workbook or CSV) and its SHA-256. Structural problems
    (unreadable, missing columns) raise :class:`DataError` naming the file and column."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        frame = _workbook_rows(path)
    elif suffix == ".csv":
        frame = _csv_rows(path)
    else:
        raise DataError(
            f"{path}: not a workbook (.xlsx) or CSV; save it as one of those and import again"
        )
    frame.insert(0, "source", str(path))
    return frame, file_sha256(path)


# --------------------------------------------------------------------------- import


def _appearances(ledger: Path, ids: list[str]) -> pd.DataFrame:
    cols = ["list_date", "customer_id", "action", "arm"]
    files = [str(store.list_file(ledger, d)) for d in store.list_dates(ledger)]
    if not files or not ids:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    ds = pads.dataset(files, schema=store.LIST_SCHEMA)
    table = ds.to_table(columns=cols, filter=pads.field("customer_id").isin(ids))
    return table.to_pandas()


def _next_seq(ledger: Path) -> int:
    files = (
        sorted((ledger / store.IMPORTS).glob("*.parquet"))
        if (ledger / store.IMPORTS).is_dir()
        else []
    )
    seqs = [int(f.stem) for f in files if f.stem.isdigit()]
    return max(seqs, default=0) + 1


def run_import(
    paths: Sequence[Path],
    op: OutcomesParams,
    horizon_days: int,
    today: dt.date | None = None,
) -> dict[str, Any]:
    """Import outcome files into the ledger, one import per file, in the order given.

    Every file is read before anything is written (a file that cannot be read, or lacks a
    column, stops the run with exit 3 and changes nothing). Rows are validated
    (:func:`churnguard.outcomes.validate`); accepted rows that add or change a record are
    written as one import; refused rows go to ``rejects/<stem>-<sha8>.csv`` with file, row,
    column and reason. Re-importing a file changes nothing. Returns per-file counts."""
    ledger = store.ledger_path(op)
    today = today or dt.date.today()
    if not paths:
        raise ConfigError("name at least one workbook (.xlsx) or CSV to import")
    if not store.list_dates(ledger):
        raise DataError(
            f"{ledger}: the ledger holds no list yet; lists are recorded when churnguard score runs "
            "with outcomes.ledger set (score first, then import what managers recorded)"
        )
    read = [(Path(p), *read_outcome_file(Path(p))) for p in paths]
    report: dict[str, Any] = {"ledger": str(ledger), "files": []}
    with folder_lock(ledger, wait_seconds=store.LOCK_WAIT_SECONDS):
        dates = set(store.list_dates(ledger))
        ids = sorted(
            {i for _, raw, _ in read for i in raw["customer_id"].map(oc.text_id) if i is not None}
        )
        seen = _appearances(ledger, ids)
        current = store.current_outcomes(ledger)
        seq = _next_seq(ledger)
        for path, raw, digest in read:
            accepted, rejects, counts = oc.validate(raw, seen, dates, today, horizon_days)
            records, unchanged = oc.merge(accepted, current)
            entry: dict[str, Any] = {
                "file": str(path),
                "sha256": digest,
                **counts,
                "unchanged": unchanged,
                "new": int((records["change"] == "new").sum()),
                "changed": int((records["change"] == "changed").sum()),
                "import": None,
                "rejects_file": None,
            }
            if len(records):
                target = ledger / store.IMPORTS / f"{seq:06d}.parquet"
                meta = {
                    "source": str(path),
                    "sha256": digest,
                    "imported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "counts": {k: v for k, v in entry.items() if isinstance(v, int)},
                }
                store.write_table(target, records, store.RECORD_SCHEMA, meta)
                entry["import"] = str(target)
                seq += 1
                keep = current.merge(
                    records[list(oc.KEY)], on=list(oc.KEY), how="left", indicator=True
                )
                current = pd.concat(
                    [
                        current[(keep["_merge"] == "left_only").to_numpy()],
                        records[list(current.columns)],
                    ],
                    ignore_index=True,
                )
            target = ledger / store.REJECTS / f"{safe_file_stem(path.stem)}-{digest[:8]}.csv"
            if len(rejects):
                write_excel_csv_atomic(target, rejects, identifiers=("value",))
                entry["rejects_file"] = str(target)
                entry["first_rejects"] = rejects.head(20).to_dict("records")
            report["files"].append(entry)
    totals = {
        k: sum(f[k] for f in report["files"])
        for k in ("rows", "blank", "nothing_recorded", "duplicate", "rejected", "new", "changed")
    }
    totals["unchanged"] = sum(f["unchanged"] for f in report["files"])
    report["totals"] = totals
    return report


# --------------------------------------------------------------------------- uplift


def uplift_sql() -> str:
    return resources.files("churnguard").joinpath(UPLIFT_SQL).read_text(encoding="utf-8")


def measured_entries(
    ledger: Path,
    tx: Path,
    horizon_days: int,
    engine: EngineParams,
    as_of: dt.date | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dt.date]:
    """(episode entries whose label window has passed, with ``churned``; entries still
    waiting, per list date; the last day churn is measured to: the last transaction date).
    ``as_of``: as known on that date — only the lists dated before it and the transactions on
    or before it, measured to ``as_of`` when the data reaches it (what the report of that
    date's list shows, point in time)."""
    from churnguard.engines import get_engine

    days = [d for d in store.list_dates(ledger) if as_of is None or d < as_of]
    if not days:
        raise DataError(f"{ledger}: the ledger holds no list dated before {as_of}")
    runner = get_engine(engine)
    first_day, end_day, _ = runner.data_range(tx)
    if as_of is not None and first_day > as_of:
        raise DataError(f"{tx}: no transactions on or before {as_of} to measure churn with")
    # data past as-of: every day up to it is known, quiet or not; purchases after the last
    # day never count (an entry's window ends by it), so the program needs no as-of filter
    last_day = end_day if as_of is None else min(as_of, end_day)
    lists = store.read_lists_table(ledger, days)
    measured = runner.run_program(
        uplift_sql(),
        tx,
        {"horizon": horizon_days, "last_day": last_day},
        name=UPLIFT_SQL,
        views={"lists": lists},
    )
    waiting = waiting_lists(lists.to_pandas(), horizon_days, last_day)
    measured["list_date"] = pd.to_datetime(measured["list_date"]).dt.date
    measured["episode_start"] = pd.to_datetime(measured["episode_start"]).dt.date
    return measured, waiting, last_day


def waiting_lists(lists: pd.DataFrame, horizon_days: int, last_day: dt.date) -> pd.DataFrame:
    """Entries per list date whose label window has not passed by ``last_day``."""
    dates = pd.to_datetime(lists["list_date"]).dt.date
    entry = dates == pd.to_datetime(lists["episode_start"]).dt.date
    open_ = entry & (dates + dt.timedelta(days=horizon_days) > last_day)
    counts = dates[open_].value_counts().sort_index()
    return pd.DataFrame({"list_date": counts.index.tolist(), "entries": counts.to_numpy(int)})


def pending_lists(waiting: pd.DataFrame, horizon_days: int) -> list[dict[str, Any]]:
    """The lists still in their label window: list date, entries, the day they are measurable."""
    days = pd.to_datetime(waiting["list_date"]).dt.date
    return [
        {
            "list_date": day.isoformat(),
            "ready_on": (day + dt.timedelta(days=horizon_days)).isoformat(),
            "entries": int(n),
        }
        for day, n in zip(days, waiting["entries"], strict=True)
    ]


def measured_at(
    ledger: Path | None,
    tx: Path,
    as_of: dt.date,
    sp: ScoreParams,
    fp: FeaturesParams,
    engine: EngineParams,
    confidence: float,
) -> dict[str, Any]:
    """The measured save rates as known at ``as_of``, for the report of that date's list:
    the lists recorded before ``as_of`` measured with the transactions up to it (so the
    report stays point in time and byte-identical on re-run). ``status``: ``off`` (no
    ledger), ``empty`` (no list before ``as_of``), ``pending`` (no window passed yet) or
    ``measured``; ``table`` (:func:`churnguard.uplift.uplift_table`, without outcome
    records: they arrive at any time), ``pending`` (as in :func:`run_uplift`) and
    ``last_transaction``."""
    out: dict[str, Any] = {
        "status": "off",
        "table": pd.DataFrame(columns=list(up.COLUMNS)),
        "pending": [],
        "last_transaction": None,
        "confidence": confidence,
        "control_share": sp.control_share,
        "horizon_days": fp.horizon_days,
    }
    if ledger is None:
        return out
    if not [d for d in store.list_dates(ledger) if d < as_of]:
        return {**out, "status": "empty"}
    measured, waiting, last_day = measured_entries(ledger, tx, fp.horizon_days, engine, as_of)
    table = up.uplift_table(measured, sp, fp.horizon_days, confidence)
    return {
        **out,
        "status": "measured" if len(measured) else "pending",
        "table": table,
        "pending": pending_lists(waiting, fp.horizon_days),
        "last_transaction": last_day.isoformat(),
    }


def _with_outcomes(
    measured: pd.DataFrame, records: pd.DataFrame, horizon_days: int
) -> pd.DataFrame:
    """outcome_recorded / reached per entry: any record for the customer from a list inside
    their episode."""
    out = measured.assign(outcome_recorded=False, reached=False)
    if records.empty or measured.empty:
        return out
    rec = records.assign(list_date=pd.to_datetime(records["list_date"]).dt.date)
    rec = rec[["customer_id", "list_date", "outcome"]].rename(columns={"list_date": "record_date"})
    joined = out[["customer_id", "episode_start"]].reset_index().merge(rec, on="customer_id")
    inside = (joined["record_date"] >= joined["episode_start"]) & (
        joined["record_date"] < joined["episode_start"] + dt.timedelta(days=horizon_days)
    )
    joined = joined[inside]
    out.loc[joined["index"].unique(), "outcome_recorded"] = True
    out.loc[joined.loc[joined["outcome"].isin(up.REACHED), "index"].unique(), "reached"] = True
    return out


def run_uplift(
    op: OutcomesParams,
    sp: ScoreParams,
    fp: FeaturesParams,
    engine: EngineParams,
    transactions: Path | None = None,
    output_dir: Path | None = None,
    rp: ReportParams | None = None,
) -> dict[str, Any]:
    """Measured save rates per action: writes ``uplift.csv`` and ``uplift.html`` (in
    ``rp``'s language, calendar, digits and currency, like report.html; English without
    ``rp``) and returns the table with the recommendations."""
    ledger = store.ledger_path(op)
    if not store.list_dates(ledger):
        raise DataError(
            f"{ledger}: the ledger holds no list yet; lists are recorded when churnguard score runs "
            "with outcomes.ledger set"
        )
    tx = Path(transactions or sp.transactions)
    if not tx.is_file():
        raise DataError(
            f"{tx}: transactions not found (score.transactions or --transactions; run "
            "`churnguard ingest`)"
        )
    measured, waiting, last_day = measured_entries(ledger, tx, fp.horizon_days, engine)
    measured = _with_outcomes(measured, store.current_outcomes(ledger), fp.horizon_days)
    table = up.uplift_table(measured, sp, fp.horizon_days, op.confidence)
    advice = up.recommendations(table)
    pending = pending_lists(waiting, fp.horizon_days)
    out = Path(output_dir or op.uplift_dir)
    write_excel_csv_atomic(out / UPLIFT_CSV, table, identifiers=())
    language = rp.language if rp is not None else "en"
    fallback = rp.fallback_language if rp is not None else None
    labels = {
        r.name: {"label": r.label_in(language, fallback)} for r in [*sp.playbook, sp.overflow]
    }  # the short labels report.html shows its reader (the rule name under each)
    reader = (
        {
            "language": rp.language,
            "calendar": rp.calendar,
            "native_digits": rp.native_digits,
            "currency": rp.currency,
        }
        if rp is not None
        else None
    )
    html = render_uplift_html(
        table,
        {
            "last_transaction": last_day.isoformat(),
            "horizon_days": fp.horizon_days,
            "control_share": sp.control_share,
            "confidence": op.confidence,
            "pending": pending,
        },
        labels,
        reader,
    )
    write_text_atomic(out / UPLIFT_HTML, html)
    log.info(
        "uplift: %s entries measured over %d list date(s), %d waiting → %s",
        f"{len(measured):,}",
        measured["list_date"].nunique() if len(measured) else 0,
        len(pending),
        out,
    )
    return {
        "last_transaction": last_day.isoformat(),
        "entries_measured": int(len(measured)),
        "pending": pending,
        "recommendations": advice,
        "output_dir": str(out),
        "table": table,
    }
