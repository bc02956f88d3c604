"""Outcome rows checked against hand-built lists: every reason to refuse a row, the counts
reconcile, the last import wins field by field, and episodes keep a customer's arm."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from churnguard.outcomes import (
    FIELDS,
    KEY,
    entries,
    merge,
    normalise_outcome,
    ongoing_episodes,
    parse_date,
    validate,
)

D1, D2 = dt.date(2025, 3, 3), dt.date(2025, 3, 10)
TODAY = dt.date(2025, 4, 1)
H = 90
APPEARANCES = pd.DataFrame(
    [
        (D1, "C1", "personal_call", "treated"),
        (D1, "C2", "recognition", "treated"),
        (D1, "C3", "personal_call", "control"),
        (D2, "C4", "personal_call", "treated"),
    ],
    columns=["list_date", "customer_id", "action", "arm"],
)
GOOD = {
    "list_date": dt.datetime(2025, 3, 3),
    "customer_id": "C1",
    "action": "personal_call",
    "contacted_on": dt.datetime(2025, 3, 5),
    "outcome": "reached",
    "note": "wants a call back",
}


def rows(*changes: dict) -> pd.DataFrame:
    out = []
    for i, change in enumerate(changes):
        out.append({**GOOD, "formula": (), **change, "source": "book.xlsx", "source_row": i + 2})
    return pd.DataFrame(out, dtype=object)


def check(*changes: dict):
    return validate(rows(*changes), APPEARANCES, {D1, D2}, TODAY, H)


@pytest.mark.parametrize(
    "change, reason, column",
    [
        ({"customer_id": None}, "missing_value", "customer_id"),
        ({"action": " "}, "missing_value", "action"),
        ({"list_date": "03/03/2025"}, "bad_date", "list_date"),
        ({"list_date": 45719}, "bad_date", "list_date"),
        ({"contacted_on": "next week"}, "bad_date", "contacted_on"),
        ({"list_date": dt.date(2025, 5, 1)}, "future_date", "list_date"),
        ({"contacted_on": dt.date(2025, 4, 2)}, "future_date", "contacted_on"),
        ({"contacted_on": dt.date(2025, 3, 1)}, "before_list_date", "contacted_on"),
        (
            {"list_date": dt.date(2024, 11, 1), "contacted_on": dt.date(2025, 3, 1)},
            "after_window",
            "contacted_on",
        ),
        ({"outcome": "maybe"}, "unknown_outcome", "outcome"),
        ({"contacted_on": "=TODAY()", "formula": ("contacted_on",)}, "formula", "contacted_on"),
        ({"list_date": dt.date(2025, 3, 4)}, "unknown_list", "list_date"),
        ({"customer_id": "C9"}, "unknown_customer", "customer_id"),
        ({"customer_id": "C4"}, "not_on_list", "customer_id"),
        ({"action": "recognition"}, "wrong_action", "action"),
        ({"customer_id": "C3"}, "control_customer", "customer_id"),
    ],
    ids=[
        "an empty customer id",
        "an empty action",
        "a list date that is not ISO",
        "a list date typed as a number",
        "a contact date that is text",
        "a list date after today",
        "a contact after today",
        "a contact before the list existed",
        "a contact after the list's window",
        "an outcome outside the drop-down",
        "a formula in a date cell",
        "a date with no recorded list",
        "a customer on no list at all",
        "a customer on another date's list",
        "a customer with another action on that list",
        "a held-out customer",
    ],
)
def test_a_bad_row_is_refused_naming_file_row_column_and_reason(change, reason, column):
    accepted, rejects, counts = check({}, change)
    assert len(accepted) == 1 and accepted["customer_id"].tolist() == ["C1"]
    assert rejects[["file", "row", "column", "reason"]].values.tolist() == [
        ["book.xlsx", 3, column, reason]
    ]
    assert rejects["detail"].iloc[0]
    assert counts["rows"] == 2 and counts["rejected"] == 1 and counts["accepted"] == 1


def test_the_counts_reconcile_and_nothing_is_dropped_silently():
    accepted, rejects, counts = check(
        {},  # accepted
        {k: None for k in (*KEY, *FIELDS)},  # blank
        {
            "customer_id": "C2",
            "action": "recognition",
            "contacted_on": None,
            "outcome": None,
            "note": None,
        },
        {},  # identical repeat of the first row
        {"customer_id": "C9"},  # rejected
        {"customer_id": "C2", "action": "recognition", "outcome": "Saved"},  # accepted
    )
    assert counts == {
        "rows": 6,
        "blank": 1,
        "nothing_recorded": 1,
        "duplicate": 1,
        "rejected": 1,
        "accepted": 2,
    }
    assert sum(counts[k] for k in counts if k != "rows") == counts["rows"]
    assert accepted["outcome"].tolist() == ["reached", "saved"]


def test_rows_that_disagree_about_one_key_are_all_refused():
    accepted, rejects, counts = check({}, {"outcome": "declined"})
    assert accepted.empty
    assert rejects["reason"].tolist() == ["conflicting_rows", "conflicting_rows"]
    assert rejects["row"].tolist() == [2, 3]


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("No_Answer ", "no answer"),
        ("WRONG-contact", "wrong contact"),
        ("saved", "saved"),
        ("", None),
    ],
    ids=["underscore and space", "dash and capitals", "as in the drop-down", "empty"],
)
def test_outcome_words_are_read_leniently(typed, expected):
    assert normalise_outcome(typed) == expected


@pytest.mark.parametrize(
    "cell, expected",
    [
        (dt.datetime(2025, 3, 3, 14, 0), dt.date(2025, 3, 3)),
        (dt.date(2025, 3, 3), dt.date(2025, 3, 3)),
        ("2025-03-03", dt.date(2025, 3, 3)),
        ("2025-03-03T09:30:00", dt.date(2025, 3, 3)),
        (None, None),
        (pd.NaT, None),
    ],
    ids=["a datetime cell", "a date cell", "ISO text", "ISO text with a time", "empty", "NaT"],
)
def test_dates_are_read_from_cells_or_iso_text(cell, expected):
    assert parse_date(cell) == (expected, None)


def current(*records: tuple) -> pd.DataFrame:
    return pd.DataFrame(list(records), columns=[*KEY, *FIELDS])


def test_merge_adds_new_changes_changed_and_skips_unchanged():
    accepted, _, _ = check(
        {},
        {"customer_id": "C2", "action": "recognition", "outcome": "saved", "note": None},
    )
    now = current(
        (D1, "C1", "personal_call", dt.date(2025, 3, 5), "reached", "wants a call back"),
    )
    records, unchanged = merge(accepted, now)
    assert unchanged == 1
    assert records[["customer_id", "change"]].values.tolist() == [["C2", "new"]]


def test_a_later_outcome_wins_and_an_empty_cell_keeps_the_recorded_value():
    accepted, _, _ = check({"outcome": "saved", "note": None})
    now = current((D1, "C1", "personal_call", dt.date(2025, 3, 5), "reached", "wants a call back"))
    records, unchanged = merge(accepted, now)
    assert unchanged == 0
    rec = records.iloc[0]
    assert (rec["outcome"], rec["note"], rec["change"]) == ("saved", "wants a call back", "changed")


def ledger_rows(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=["list_date", "customer_id", "arm", "episode_start"])


def test_an_episode_stays_open_for_the_horizon_then_a_new_one_starts():
    earlier = ledger_rows(
        (dt.date(2025, 1, 6), "A", "control", dt.date(2025, 1, 6)),
        (dt.date(2025, 1, 13), "A", "control", dt.date(2025, 1, 6)),
        (dt.date(2024, 11, 1), "B", "treated", dt.date(2024, 11, 1)),  # closed: 90+ days ago
        (dt.date(2025, 3, 3), "C", "treated", dt.date(2025, 3, 3)),  # the list date itself
    )
    open_ = ongoing_episodes(earlier, dt.date(2025, 3, 3), 90)
    assert open_.values.tolist() == [["A", "control", dt.date(2025, 1, 6)]]
    later = ongoing_episodes(earlier, dt.date(2025, 4, 6), 90)  # Jan 6 + 90 days have passed
    assert later["customer_id"].tolist() == ["C"]


def test_only_a_customers_first_list_of_an_episode_is_an_entry():
    rows_ = ledger_rows(
        (dt.date(2025, 1, 6), "A", "control", dt.date(2025, 1, 6)),
        (dt.date(2025, 1, 13), "A", "control", dt.date(2025, 1, 6)),
        (dt.date(2025, 1, 13), "B", "treated", dt.date(2025, 1, 13)),
    )
    assert entries(rows_)[["list_date", "customer_id"]].values.tolist() == [
        [dt.date(2025, 1, 6), "A"],
        [dt.date(2025, 1, 13), "B"],
    ]
