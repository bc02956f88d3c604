"""What the lists say about value and timing: days overdue instead of a past date, value
at risk next to last year's revenue, value that is not money, and strict JSON everywhere.

Real runs on the shared pipeline (scored into this module's own folders).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from churnguard.config import IngestParams, ReportParams, SourceParams, load_params
from churnguard.csvsafe import read_excel_csv
from churnguard.ingest import run_ingest
from churnguard.io import dumps_json
from churnguard.score import run_score
from churnguard.scoring import MANAGER_COLUMNS, RISK_LIST_SCHEMA

REPO = Path(__file__).resolve().parents[2]
AS_OF = dt.date(2024, 12, 31)


def score(pipeline, root: Path, transactions: Path | None = None, **kw: Any) -> dict[str, Any]:
    sp = load_params(REPO / "params.yaml").score.model_copy(update={"output_root": str(root)})
    return run_score(
        sp,
        pipeline.features,
        ReportParams(),
        pipeline.engine,
        model=pipeline.train.model_dir,
        transactions=transactions or pipeline.transactions,
        as_of=AS_OF,
        **kw,
    )


@pytest.fixture(scope="module")
def lists(pipeline, tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("value-lists")
    return root, score(pipeline, root)


def test_lists_show_days_overdue_instead_of_a_past_date(lists) -> None:
    root, _ = lists
    risk = read_excel_csv(root / AS_OF.isoformat() / "risk_list.csv", RISK_LIST_SCHEMA)
    assert "days_overdue" in MANAGER_COLUMNS
    gap = risk["usual_gap_days"]
    with_gap = risk[gap.notna()]
    overdue = with_gap["days_overdue"].astype(int)
    assert (overdue == (with_gap["recency_days"] - with_gap["usual_gap_days"]).clip(lower=0)).all()
    assert (with_gap.loc[overdue > 0, "expected_next_order_date"] == "").all()
    due = with_gap.loc[overdue == 0, "expected_next_order_date"]
    assert (pd.to_datetime(due).dt.date >= AS_OF).all() and len(due) > 0
    assert (overdue > 0).sum() > 0
    one_time = risk[gap.isna()]
    assert (
        one_time["days_overdue"].isna().all() and (one_time["expected_next_order_date"] == "").all()
    )
    manager_file = next((root / AS_OF.isoformat() / "by_manager").glob("*.csv"))
    header = manager_file.read_bytes().decode("utf-8-sig").splitlines()[0].split(",")
    assert header.index("days_overdue") == header.index("expected_next_order_date") + 1


def test_a_previous_list_written_before_days_overdue_still_gives_the_change(
    pipeline, tmp_path: Path
) -> None:
    root = tmp_path / "scores"
    first = score(pipeline, root)
    old = root / (AS_OF - dt.timedelta(days=7)).isoformat()
    shutil.copytree(root / AS_OF.isoformat(), old)
    shutil.rmtree(root / AS_OF.isoformat())
    risk_list = old / "risk_list.csv"
    text = risk_list.read_bytes().decode("utf-8-sig")
    risk = pd.read_csv(risk_list, encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert "days_overdue" in risk.columns
    risk.drop(columns=["days_overdue"]).to_csv(risk_list, index=False, encoding="utf-8-sig")
    assert "days_overdue" not in risk_list.read_bytes().decode("utf-8-sig").splitlines()[0]
    assert text  # the old list existed with the column
    again = score(pipeline, root)
    assert again["previous_list"] == old.name and "previous_list_ignored" not in again
    changes = pd.read_csv(
        root / AS_OF.isoformat() / "risk_list.csv", encoding="utf-8-sig", dtype=str
    )["change"]
    assert (changes == "unchanged").sum() == first["customers_on_lists"]


def test_summary_puts_value_at_risk_next_to_last_year_revenue(lists, pipeline) -> None:
    root, summary = lists
    value = summary["value"]
    assert value["method"] == "nbd_shrunk" and value["money"] is True
    assert value["value_at_risk_total"] == summary["value_at_risk_total"]
    tx = pd.read_parquet(pipeline.transactions)
    day = pd.to_datetime(tx["ts"]).dt.date
    last_year = tx[(day > AS_OF - dt.timedelta(days=365)) & (day <= AS_OF)]["amount"].sum()
    assert value["revenue_trailing_12m"] == pytest.approx(last_year, rel=1e-6)
    assert value["value_at_risk_to_revenue"] == pytest.approx(
        value["value_at_risk_total"] / value["revenue_trailing_12m"], abs=1e-6
    )
    assert 0 < value["value_at_risk_to_revenue"] < 1  # at risk: a part of what they spend
    assert value["prior"]["customers"] == summary["customers_scored"] - summary["lapsed"]
    html = (root / AS_OF.isoformat() / "report.html").read_text(encoding="utf-8")
    assert "these customers spent in the last 12 months" in html
    assert "Values are not money" not in html


def test_a_file_without_amounts_gives_lists_that_say_value_is_not_money(
    pipeline, tmp_path: Path
) -> None:
    raw = pd.read_csv(pipeline.root / "raw.csv", dtype=str)
    visits = tmp_path / "visits.csv"
    raw[["ts", "customer_id"]].rename(columns={"ts": "date", "customer_id": "id"}).to_csv(
        visits, index=False
    )
    params = IngestParams(
        source=SourceParams(path=str(visits), columns={"customer_id": "id", "ts": "date"}),
        default_amount=1.0,
        drop_exact_duplicates=False,
        output_dir=str(tmp_path / "interim"),
    )
    report = run_ingest(params, pipeline.engine)
    assert report["rows_rejected"] == 0 and report["amount_source"] == "default_amount"
    summary = score(pipeline, tmp_path / "scores", tmp_path / "interim" / "transactions.parquet")
    value = summary["value"]
    assert value["money"] is False and value["default_amount"] == 1.0
    assert "ingest.default_amount" in value["note"]
    html = (tmp_path / "scores" / AS_OF.isoformat() / "report.html").read_text(encoding="utf-8")
    assert "Values are not money" in html


def _refuse(token: str) -> None:
    raise AssertionError(f"not strict JSON: {token}")


def test_every_json_written_is_strict(pipeline, lists) -> None:
    root, _ = lists
    found = sorted([*pipeline.root.rglob("*.json"), *root.rglob("*.json")])
    assert {p.name for p in found} >= {
        "ingest_report.json",
        "cutoffs.json",
        "metadata.json",
        "summary.json",
        "manifest.json",
    }
    for path in found:
        json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse)
    with pytest.raises(ValueError, match="JSON compliant"):
        dumps_json({"total": float("inf")})
