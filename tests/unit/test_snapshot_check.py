"""`churnguard score --snapshot`: the record the features stage writes beside current.parquet
says what it was built from, and scoring compares it with what it would build."""

from __future__ import annotations

import datetime as dt

import pytest

from churnguard.feature_defs import current_meta
from churnguard.scoring import snapshot_mismatch

AS_OF = dt.date(2025, 6, 30)
META = current_meta("2025-06-30", 365, "data/interim/transactions.parquet", "tx-md5", "snap-md5")
SAME = {
    "as_of": AS_OF,
    "lost_after_days": 365,
    "transactions_md5": "tx-md5",
    "snapshot_md5": "snap-md5",
}


def test_a_record_of_the_same_inputs_matches():
    assert snapshot_mismatch(META, **SAME) == []


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            {"as_of": dt.date(2025, 6, 1)},
            "built for as-of 2025-06-30, this run scores at 2025-06-01",
        ),
        ({"lost_after_days": 180}, "features.lost_after_days 365, params.yaml now says 180"),
        ({"transactions_md5": "other"}, "other transactions (data/interim/transactions.parquet"),
        ({"snapshot_md5": "other"}, "the file changed since"),
    ],
)
def test_each_difference_is_named(change, expected):
    problems = snapshot_mismatch(META, **{**SAME, **change})
    assert len(problems) == 1 and expected in problems[0], problems


def test_an_empty_or_foreign_record_matches_nothing():
    assert len(snapshot_mismatch({}, **SAME)) == 4
    assert len(snapshot_mismatch({"as_of": 20250630, "lost_after_days": "365"}, **SAME)) == 4
