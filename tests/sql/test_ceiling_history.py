"""The ceiling diagnostic's whole-history columns (``benchmarks/ceiling.py``) on hand-built
transactions: periods counted back from the as-of date, distinct purchase days, spend and
units per period, nothing after the as-of date."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ceiling():
    spec = importlib.util.spec_from_file_location("ceiling", ROOT / "benchmarks" / "ceiling.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["ceiling"] = module
    spec.loader.exec_module(module)
    return module


def test_history_columns_per_period(ceiling, tmp_path: Path) -> None:
    as_of = dt.date(1997, 9, 30)
    rows = [
        # a: two lines on the as-of day (one purchase day), one 27 days before (period 0)
        ("a", "1997-09-30 10:00", 10.0, 1.0),
        ("a", "1997-09-30 18:00", 5.0, 2.0),
        ("a", "1997-09-03 09:00", 7.0, None),
        # a: 28 days before is period 1
        ("a", "1997-09-02 09:00", 3.0, 1.0),
        # b: only in period 2, and one line after the as-of date, which must not count
        ("b", "1997-08-05 12:00", 20.0, 4.0),
        ("b", "1997-10-01 00:00", 99.0, 9.0),
    ]
    tx = pd.DataFrame(rows, columns=["customer_id", "ts", "amount", "quantity"])
    tx["ts"] = pd.to_datetime(tx["ts"])
    path = tmp_path / "transactions.parquet"
    tx.to_parquet(path)

    wide = ceiling.history_features(path, as_of)

    assert list(wide.index) == ["a", "b"]
    assert list(wide.columns) == [
        f"h_{what}_{p}" for what in ("days", "spend", "units") for p in (0, 1, 2)
    ]
    a, b = wide.loc["a"], wide.loc["b"]
    assert (a["h_days_0"], a["h_spend_0"], a["h_units_0"]) == (2, 22.0, 3.0)
    assert (a["h_days_1"], a["h_spend_1"], a["h_units_1"]) == (1, 3.0, 1.0)
    assert (a["h_days_2"], a["h_spend_2"], a["h_units_2"]) == (0, 0.0, 0.0)
    assert (b["h_days_2"], b["h_spend_2"], b["h_units_2"]) == (1, 20.0, 4.0)
    assert b[["h_days_0", "h_days_1", "h_spend_0", "h_spend_1"]].sum() == 0


def test_outcome_from_lines(ceiling, tmp_path: Path) -> None:
    """The independent label the ceiling checks the feature SQL's against: 1 = no purchase
    day in (as_of, as_of + days]; only customers with a line on or before as_of."""
    as_of = dt.date(1997, 9, 30)
    rows = [
        ("buys_on_last_day", "1997-09-01", "1997-10-10"),  # as_of + 10 days: inside
        ("buys_after", "1997-09-01", "1997-10-11"),  # as_of + 11: outside a 10-day window
        ("buys_on_as_of_only", "1997-09-30", None),  # a purchase on as_of is not in the window
        ("new_after_as_of", "1997-10-02", None),  # not a customer at as_of
    ]
    lines = []
    for cid, first, later in rows:
        lines.append((cid, first))
        if later:
            lines.append((cid, later))
    tx = pd.DataFrame(lines, columns=["customer_id", "ts"])
    tx["ts"] = pd.to_datetime(tx["ts"])
    path = tmp_path / "transactions.parquet"
    tx.to_parquet(path)

    out = ceiling.outcome_from_lines(path, as_of, 10)

    assert out.to_dict() == {"buys_after": 1, "buys_on_as_of_only": 1, "buys_on_last_day": 0}
