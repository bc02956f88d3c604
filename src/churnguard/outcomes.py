"""Outcome records and list episodes: the pure rules behind the outcome ledger.

A manager's workbook (or a CRM export) says, for a customer on a list, when they were
contacted and how it went. :func:`validate` checks each row against the lists churnguard
recorded — the list date exists, the customer is on it with that action, and was treated
(a held-out customer is on no manager's list) — and the values (dates, outcome words);
:func:`merge` turns the accepted rows into ledger records. Frames in, frames out:
:mod:`churnguard.ledger` reads the files and writes the ledger.

**Episodes.** A customer who enters a list starts an *episode* of ``features.horizon_days``
days: their arm (treated or control) holds for every list inside it
(:func:`ongoing_episodes`), and only the entry counts as an experiment in the uplift report
(:func:`entries`), whose label window is the episode itself.

**A later different outcome** for the same (list date, customer, action): the last import
wins, field by field; an empty cell never clears a recorded value; earlier values stay in
the ledger's earlier imports (history).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import numpy as np
import pandas as pd

from churnguard.actions import CONTROL, NO_ACTION, TREATED
from churnguard.config import ScoreParams

OUTCOMES: tuple[str, ...] = ("reached", "no answer", "saved", "declined", "wrong contact")
KEY: tuple[str, ...] = ("list_date", "customer_id", "action")
FIELDS: tuple[str, ...] = ("contacted_on", "outcome", "note")
REQUIRED_COLUMNS: tuple[str, ...] = (
    "list_date",
    "customer_id",
    "action",
    "contacted_on",
    "outcome",
)
OPTIONAL_COLUMNS: tuple[str, ...] = ("note",)
CSV_LIST_DATE_ALIAS = "as_of"  # the CRM CSV may call the list date as_of

# the reasons a row is refused, each with what to do
REASONS: dict[str, str] = {
    "missing_value": "the cell is empty; fill it in",
    "bad_date": "not a date; type a date (YYYY-MM-DD or a date cell)",
    "future_date": "after today",
    "before_list_date": "contacted before the list existed",
    "after_window": "contacted after the list's label window (features.horizon_days)",
    "unknown_outcome": "not one of: " + ", ".join(OUTCOMES),
    "formula": "a formula; type the value instead",
    "unknown_list": "no list recorded for this date",
    "unknown_customer": "on no list churnguard recorded; check the id",
    "not_on_list": "not on that date's list",
    "wrong_action": "on that date's list with another action",
    "control_customer": "held out as control on that list: on no manager's list",
    "conflicting_rows": "the same customer, date and action appear in rows that disagree",
}
LIST_COLUMNS: tuple[str, ...] = (
    "list_date",
    "customer_id",
    "account_manager",
    "action",
    "owner",
    "arm",
    "episode_start",
    "save_rate",
    "p_churn",
    "risk_band",
    "lapsed",
)
RECORD_COLUMNS: tuple[str, ...] = (*KEY, *FIELDS, "source", "source_row", "change")
REJECT_COLUMNS: tuple[str, ...] = ("file", "row", "column", "reason", "detail", "value")


# --------------------------------------------------------------------------- lists


def list_rows(
    scored: pd.DataFrame,
    list_date: dt.date,
    params: ScoreParams,
    holdover: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The ledger's record of one list: every customer with an action in either arm, the
    action they got or would have got, its owner and assumed save rate, and the episode
    they belong to (``holdover``: ongoing episodes, from :func:`ongoing_episodes`)."""
    rows = scored[(scored["rule"] != NO_ACTION) & scored["arm"].isin([TREATED, CONTROL])]
    owners = {r.name: r.owner for r in params.playbook} | {params.overflow.name: "automated"}
    out = pd.DataFrame(
        {
            "list_date": list_date,
            "customer_id": rows["customer_id"].astype(str),
            "account_manager": rows["account_manager"].astype(str),
            "action": rows["rule"].astype(str),
            "owner": rows["rule"].map(owners).fillna("").astype(str),
            "arm": rows["arm"].astype(str),
            "episode_start": list_date,
            "save_rate": rows["save_rate"].astype(float),
            "p_churn": rows["p_churn"].astype(float),
            "risk_band": rows["risk_band"].astype(str),
            "lapsed": rows["lapsed"].astype(bool),
        }
    )
    if holdover is not None and len(holdover):
        start = out["customer_id"].map(holdover.set_index("customer_id")["episode_start"])
        out["episode_start"] = start.where(start.notna(), list_date)
    out["episode_start"] = pd.to_datetime(out["episode_start"]).dt.date
    out["list_date"] = pd.to_datetime(out["list_date"]).dt.date
    return out.sort_values("customer_id", kind="stable").reset_index(drop=True)[list(LIST_COLUMNS)]


def ongoing_episodes(earlier: pd.DataFrame, list_date: dt.date, horizon_days: int) -> pd.DataFrame:
    """Customers whose episode, begun on an earlier list, is still open on ``list_date``
    (began after ``list_date − horizon_days``): customer_id, arm, episode_start. ``earlier``
    holds list rows dated before ``list_date``; each customer's latest row decides."""
    cols = ["customer_id", "arm", "episode_start"]
    if earlier.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    rows = earlier[pd.to_datetime(earlier["list_date"]).dt.date < list_date]
    latest = (
        rows.sort_values(["customer_id", "list_date"], kind="stable")
        .groupby("customer_id", sort=True)
        .tail(1)
    )
    start = pd.to_datetime(latest["episode_start"]).dt.date
    open_ = start > list_date - dt.timedelta(days=horizon_days)
    out = latest.loc[open_, cols].copy()
    out["episode_start"] = start[open_]
    return out.sort_values("customer_id", kind="stable").reset_index(drop=True)


def entries(rows: pd.DataFrame) -> pd.DataFrame:
    """The list rows that start an episode: the experiments the uplift report counts."""
    start = pd.to_datetime(rows["episode_start"]).dt.date
    return rows[pd.to_datetime(rows["list_date"]).dt.date == start]


# --------------------------------------------------------------------------- cells


def is_blank(value: Any) -> bool:
    """None, NaN, NaT, NA or only whitespace."""
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def parse_date(value: Any) -> tuple[dt.date | None, str | None]:
    """A date cell, or ISO text (``YYYY-MM-DD``, time allowed), as a date; (None, None)
    when blank; (None, why) when it is not a date. A number is refused, never guessed."""
    if is_blank(value):
        return None, None
    if isinstance(value, dt.datetime):
        return value.date(), None
    if isinstance(value, dt.date):
        return value, None
    if isinstance(value, str):
        text = value.strip()
        try:
            return dt.datetime.fromisoformat(text).date(), None
        except ValueError:
            return None, f"{text[:40]!r} is not a date (YYYY-MM-DD)"
    if isinstance(value, bool | int | float):
        return None, f"{value!r} is a number, not a date (format the cell as a date)"
    return None, f"{str(value)[:40]!r} is not a date"


def normalise_outcome(value: Any) -> str | None:
    """``"No_Answer "`` → ``"no answer"``: case, ``_``/``-`` and spacing do not matter."""
    if is_blank(value):
        return None
    return re.sub(r"\s+", " ", re.sub(r"[_\-]", " ", str(value)).strip().casefold())


def text_id(value: Any) -> str | None:
    """A customer id cell as text, exactly; a whole number typed as a number reads as its
    digits (leading zeros a spreadsheet dropped cannot come back)."""
    if is_blank(value):
        return None
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --------------------------------------------------------------------------- validation


def _reject(
    rejects: list[dict[str, Any]], row: pd.Series, column: str, reason: str, detail: str
) -> None:
    value = row.get(column)
    rejects.append(
        {
            "file": row["source"],
            "row": int(row["source_row"]),
            "column": column,
            "reason": reason,
            "detail": detail,
            "value": "" if is_blank(value) else str(value),
        }
    )


def validate(
    raw: pd.DataFrame,
    appearances: pd.DataFrame,
    list_dates: set[dt.date],
    today: dt.date,
    horizon_days: int,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Check outcome rows; return (accepted records, rejects, counts).

    ``raw``: one row per file row — source, source_row (as a spreadsheet numbers it),
    list_date, customer_id, action, contacted_on, outcome, note (cell values as read) and
    ``formula`` (names of the cells holding a formula). ``appearances``: every recorded
    list row (list_date, customer_id, action, arm) of the customers in ``raw``, any date;
    ``list_dates``: every recorded list date. Counts reconcile: rows = blank +
    nothing_recorded + duplicate + rejected + accepted.
    """
    rejects: list[dict[str, Any]] = []
    good: list[dict[str, Any]] = []
    counts = {"rows": len(raw), "blank": 0, "nothing_recorded": 0, "duplicate": 0}
    on_list = {
        (r.list_date, r.customer_id): (r.action, r.arm) for r in appearances.itertuples(index=False)
    }
    seen_dates = appearances.groupby("customer_id")["list_date"].apply(lambda s: sorted(set(s)))
    for _, row in raw.iterrows():
        cells = [row.get(c) for c in (*KEY, *FIELDS)]
        if all(is_blank(v) for v in cells):
            counts["blank"] += 1
            continue
        if all(is_blank(row.get(c)) for c in FIELDS):
            counts["nothing_recorded"] += 1  # a listed customer not worked yet
            continue
        formula = [c for c in (*KEY, *FIELDS) if c in (row.get("formula") or ())]
        if formula:
            _reject(rejects, row, formula[0], "formula", REASONS["formula"])
            continue
        missing = [c for c in KEY if is_blank(row.get(c))]
        if missing:
            _reject(rejects, row, missing[0], "missing_value", REASONS["missing_value"])
            continue
        list_date, why = parse_date(row["list_date"])
        if list_date is None:
            _reject(rejects, row, "list_date", "bad_date", f"{why}")
            continue
        if list_date > today:
            _reject(
                rejects, row, "list_date", "future_date", f"{list_date} is after today ({today})"
            )
            continue
        contacted, why = parse_date(row.get("contacted_on"))
        if why:
            _reject(rejects, row, "contacted_on", "bad_date", why)
            continue
        if contacted is not None:
            if contacted > today:
                _reject(
                    rejects,
                    row,
                    "contacted_on",
                    "future_date",
                    f"{contacted} is after today ({today})",
                )
                continue
            if contacted < list_date:
                _reject(
                    rejects,
                    row,
                    "contacted_on",
                    "before_list_date",
                    f"{contacted} is before the list date {list_date}",
                )
                continue
            if contacted > list_date + dt.timedelta(days=horizon_days):
                _reject(
                    rejects,
                    row,
                    "contacted_on",
                    "after_window",
                    f"{contacted} is more than {horizon_days} days (features.horizon_days) after "
                    f"the list date {list_date}: record it against a later list",
                )
                continue
        outcome = normalise_outcome(row.get("outcome"))
        if outcome is not None and outcome not in OUTCOMES:
            _reject(
                rejects,
                row,
                "outcome",
                "unknown_outcome",
                f"{outcome!r} is {REASONS['unknown_outcome']}",
            )
            continue
        customer, action = text_id(row["customer_id"]), str(row["action"]).strip()
        if list_date not in list_dates:
            _reject(
                rejects,
                row,
                "list_date",
                "unknown_list",
                f"no list recorded for {list_date} (lists are recorded when churnguard score runs "
                "with outcomes.ledger set)",
            )
            continue
        found = on_list.get((list_date, customer))
        if found is None:
            dates = seen_dates.get(customer)
            if dates is None:
                _reject(
                    rejects, row, "customer_id", "unknown_customer", REASONS["unknown_customer"]
                )
            else:
                shown = ", ".join(str(d) for d in dates[-3:])
                _reject(
                    rejects,
                    row,
                    "customer_id",
                    "not_on_list",
                    f"{customer} is not on the list of {list_date}; they are on the list(s) of {shown}",
                )
            continue
        listed_action, arm = found
        if listed_action != action:
            _reject(
                rejects,
                row,
                "action",
                "wrong_action",
                f"the list of {list_date} gives {customer} {listed_action!r}, not {action!r}",
            )
            continue
        if arm == CONTROL:
            _reject(
                rejects,
                row,
                "customer_id",
                "control_customer",
                f"{customer} was held out as control on the list of {list_date} and is on no "
                "manager's list; an outcome for them means the holdout was broken (tell whoever "
                "reads the uplift report)",
            )
            continue
        note = row.get("note")
        good.append(
            {
                "list_date": list_date,
                "customer_id": customer,
                "action": action,
                "contacted_on": contacted,
                "outcome": outcome,
                "note": None if is_blank(note) else str(note),
                "source": row["source"],
                "source_row": int(row["source_row"]),
            }
        )
    accepted = pd.DataFrame(good, columns=[*KEY, *FIELDS, "source", "source_row"])
    accepted, rejects = _one_row_per_key(accepted, rejects, counts)
    counts["rejected"] = len(rejects)
    counts["accepted"] = len(accepted)
    reject_frame = pd.DataFrame(rejects, columns=list(REJECT_COLUMNS))
    return accepted, reject_frame.sort_values(["file", "row"], kind="stable"), counts


def _one_row_per_key(
    accepted: pd.DataFrame, rejects: list[dict[str, Any]], counts: dict[str, int]
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Identical repeats of a key count as duplicates (first kept); rows that disagree are
    all refused: which one is right cannot be known."""
    if accepted.empty:
        return accepted, rejects
    keep = []
    for _, group in accepted.groupby(list(KEY), sort=False):
        values = group[list(FIELDS)].astype(object).where(group[list(FIELDS)].notna(), None)
        if len({tuple(v) for v in values.itertuples(index=False)}) == 1:
            keep.append(group.index[0])
            counts["duplicate"] += len(group) - 1
            continue
        rows = ", ".join(str(r) for r in group["source_row"])
        for _, row in group.iterrows():
            rejects.append(
                {
                    "file": row["source"],
                    "row": int(row["source_row"]),
                    "column": "customer_id",
                    "reason": "conflicting_rows",
                    "detail": f"rows {rows} record different outcomes for {row['customer_id']}, "
                    f"{row['list_date']}, {row['action']}; keep one",
                    "value": row["customer_id"],
                }
            )
    return accepted.loc[sorted(keep)].reset_index(drop=True), rejects


def merge(accepted: pd.DataFrame, current: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """New and changed ledger records from ``accepted`` rows, and how many were unchanged.

    Field by field, a non-empty new value replaces the recorded one; an empty one keeps it.
    ``current`` holds the ledger's latest record per key (KEY + FIELDS)."""
    if accepted.empty:
        return pd.DataFrame(columns=list(RECORD_COLUMNS)), 0
    now = current.set_index(list(KEY))[list(FIELDS)] if len(current) else None
    out, unchanged = [], 0
    for rec in accepted.to_dict("records"):
        key = tuple(rec[k] for k in KEY)
        old = None
        if now is not None and key in now.index:
            old = {f: (None if is_blank(v) or v is pd.NaT else v) for f, v in now.loc[key].items()}
        merged = dict(rec)
        if old is not None:
            for f in FIELDS:
                if is_blank(rec[f]):
                    merged[f] = old[f]
            if all(_same(merged[f], old[f]) for f in FIELDS):
                unchanged += 1
                continue
        merged["change"] = "new" if old is None else "changed"
        out.append(merged)
    return pd.DataFrame(out, columns=list(RECORD_COLUMNS)), unchanged


def _same(a: Any, b: Any) -> bool:
    if is_blank(a) and is_blank(b):
        return True
    if isinstance(a, dt.datetime | pd.Timestamp):
        a = a.date()
    if isinstance(b, dt.datetime | pd.Timestamp):
        b = b.date()
    return a == b
