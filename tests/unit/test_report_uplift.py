"""The report's "Measured save rates" section: one line when the control group is off, the
ledger is empty or no list's window has passed; the per-action table and the advice when
rates are measured; point in time (lists before the as-of date, purchases up to it); in the
reader's language and direction, escaped."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pytest
from test_report import make_ctx

from churnguard import ledger as store
from churnguard import uplift as up
from churnguard.config import EngineParams, FeaturesParams, ScoreParams
from churnguard.feedback import measured_at
from churnguard.report import render_html, render_uplift_html

HOSTILE = "<b>rule</b>"
SP = ScoreParams()  # no playbook: every measured action's assumed rate is unknown
LIST_1, LIST_2 = dt.date(2024, 1, 1), dt.date(2024, 3, 1)
HORIZON = 30


def section(page: str) -> str:
    found = re.search(r'<section class="uplift">.*?</section>', page, re.S)
    assert found, "no uplift section"
    return found.group(0)


def page_with(uplift: dict | None, language: str = "en") -> str:
    ctx = make_ctx() | {"language": language}
    if uplift is not None:
        ctx["uplift"] = {"horizon_days": 90, "control_share": 0.1, "confidence": 0.95} | uplift
    return render_html(ctx)


def test_without_a_ledger_the_section_says_the_control_group_is_off() -> None:
    text = section(page_with(None))
    assert "The control group is off: outcomes.ledger is not set" in text
    assert "<table" not in text
    assert section(page_with({"status": "off"})) == text


def test_an_empty_ledger_says_no_list_is_recorded_yet() -> None:
    text = section(page_with({"status": "empty", "pending": []}))
    assert "No list is recorded in the outcome ledger yet" in text


def test_lists_in_their_window_say_how_many_wait_and_from_when() -> None:
    pending = [
        {"list_date": "2024-05-31", "ready_on": "2024-08-29", "entries": 120},
        {"list_date": "2024-07-31", "ready_on": "2024-10-29", "entries": 80},
    ]
    text = section(page_with({"status": "pending", "pending": pending}))
    assert (
        "No save rate can be measured yet: 2 lists wait for their 90-day label window; the "
        "first is measurable from 2024-08-29."
    ) in text
    one = section(page_with({"status": "pending", "pending": pending[:1]}))
    assert "1 list waits for its 90-day label window" in one


def test_the_waiting_line_in_arabic_is_arabic_and_right_to_left() -> None:
    pending = [{"list_date": "2024-05-31", "ready_on": "2024-08-29", "entries": 120}]
    page = page_with({"status": "pending", "pending": pending}, "ar")
    assert '<html lang="ar" dir="rtl">' in page
    text = section(page)
    assert "نسب الاستعادة المقيسة" in text and "قائمة واحدة تنتظر" in text
    assert "No save rate" not in text and "Measured save rates" not in text


def measured_table() -> pd.DataFrame:
    rows = []
    for action, n_t, n_c, churn_t, churn_c in (
        (HOSTILE, 400, 200, 80, 80),
        ("b", 300, 100, 90, 30),
    ):
        for day in (LIST_1, LIST_2):
            for arm, n, churned in (("treated", n_t, churn_t), ("control", n_c, churn_c)):
                rows += [
                    {
                        "list_date": day,
                        "customer_id": f"{action}-{day}-{arm}-{i}",
                        "action": action,
                        "arm": arm,
                        "save_rate": 0.1,
                        "churned": i < churned,
                    }
                    for i in range(n)
                ]
    sp = SP.model_copy(
        update={"overflow": SP.overflow.model_copy(update={"name": "b", "save_rate": 0.3})}
    )
    return up.uplift_table(pd.DataFrame(rows), sp, 90, 0.95)


@pytest.mark.parametrize("language", ["en", "ar", "fa"])
def test_measured_rates_are_shown_per_action_escaped_with_the_advice(language: str) -> None:
    table = measured_table()
    page = page_with({"status": "measured", "table": table, "pending": []}, language)
    text = section(page)
    assert HOSTILE not in page and "&lt;b&gt;rule&lt;/b&gt;" in text
    pooled = table[table["scope"] == "pooled"].set_index("action")
    hostile = pooled.loc[HOSTILE]  # 20% vs 40% churn: saves half, assumed unknown
    assert hostile["save_rate"] == 0.5 and hostile["verdict"] == up.VERDICTS["too_few"]
    b = pooled.loc["b"]  # same churn in both arms: saves no one, assumed 0.3 is too high
    assert b["save_rate"] == 0 and b["verdict"] == up.VERDICTS["lower"]
    if language == "en":
        assert "<b>50.0%</b>" in text and "800 / 400" in text and "too few to judge" in text
        assert (
            f"[{100 * hostile['save_rate_low']:.0f}%, {100 * hostile['save_rate_high']:.0f}%]"
            in text
        )
        assert "lower than assumed" in text and "All actions" in text
        assert "set <code><bdi>score.overflow.save_rate</bdi></code> to 0.00" in text
        assert "It saves no one here" in text
    else:
        assert "score.overflow.save_rate" in text and "All actions" not in text
    assert page == page_with({"status": "measured", "table": table, "pending": []}, language)


# --------------------------------------------------------------------------- point in time


def write_list(ledger: Path, day: dt.date, arms: dict[str, str]) -> None:
    rows = pd.DataFrame(
        {
            "list_date": day,
            "customer_id": list(arms),
            "account_manager": "M",
            "action": "a",
            "owner": "automated",
            "arm": list(arms.values()),
            "episode_start": day,
            "save_rate": 0.1,
            "p_churn": 0.5,
            "risk_band": "high",
            "lapsed": False,
        }
    )
    store.write_table(store.list_file(ledger, day), rows, store.LIST_SCHEMA, {})


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    """Two lists (2024-01-01, 2024-03-01) of 40 customers, half held out; customers 0-9
    of each arm buy 10 days after each list, and everyone buys on 2024-06-01."""
    ledger = tmp_path / "ledger"
    for day in (LIST_1, LIST_2):
        arms = {f"c{i:02d}": "treated" if i < 20 else "control" for i in range(40)}
        write_list(ledger, day, arms)
    lines = []
    for day in (LIST_1, LIST_2):
        buy = day + dt.timedelta(days=10)
        buyers = [f"c{i:02d}" for i in range(40) if i % 20 < (15 if i < 20 else 5)]
        lines += [(buy, c) for c in buyers]
    lines += [(dt.date(2024, 6, 1), f"c{i:02d}") for i in range(40)]
    tx = tmp_path / "transactions.parquet"
    pd.DataFrame(
        {
            "ts": pd.to_datetime([d for d, _ in lines]),
            "customer_id": [c for _, c in lines],
            "amount": 10.0,
        }
    ).to_parquet(tx)
    return ledger, tx


def measure(ledger: Path | None, tx: Path, as_of: dt.date) -> dict:
    return measured_at(
        ledger, tx, as_of, SP, FeaturesParams(horizon_days=HORIZON), EngineParams(), 0.95
    )


def test_measured_at_says_off_and_empty(world, tmp_path) -> None:
    _, tx = world
    assert measure(None, tx, LIST_2)["status"] == "off"
    assert measure(tmp_path / "none", tx, LIST_2)["status"] == "empty"
    assert measure(world[0], tx, LIST_1)["status"] == "empty"  # the list of as-of itself: not yet


def test_measured_at_is_point_in_time(world) -> None:
    ledger, tx = world
    early = measure(ledger, tx, LIST_1 + dt.timedelta(days=HORIZON - 1))
    assert early["status"] == "pending"
    assert early["pending"] == [
        {"list_date": "2024-01-01", "ready_on": "2024-01-31", "entries": 40}
    ]
    at = measure(ledger, tx, LIST_2)  # the list of 2024-03-01 is not measured in its own report
    assert at["status"] == "measured" and at["last_transaction"] == "2024-03-01"
    pooled = at["table"][at["table"]["scope"] == "pooled"].set_index("action")
    assert pooled.loc["a", "n_treated"] == 20 and pooled.loc["a", "list_dates"] == 1
    # treated: 5 of 20 churned, control: 15 of 20 → saves 1 - 0.25 / 0.75
    assert pooled.loc["a", "save_rate"] == round(1 - 0.25 / 0.75, 4)
    assert at["pending"] == []
    later = measure(ledger, tx, dt.date(2024, 5, 1))  # both windows passed
    pooled = later["table"][later["table"]["scope"] == "pooled"].set_index("action")
    assert later["last_transaction"] == "2024-05-01" and pooled.loc["a", "list_dates"] == 2
    stale = measure(ledger, tx, dt.date(2024, 7, 1))  # data ends 2024-06-01: measured to it
    assert stale["last_transaction"] == "2024-06-01"


# --------------------------------------------------------------------------- uplift.html


def test_uplift_html_escapes_a_script_in_an_action_or_its_label() -> None:
    """uplift.html (``churnguard report uplift``) draws the same table through the same
    autoescaped templates: a rule name or label holding ``<script>`` is text, never markup,
    in the tables, the advice and the per-list rows."""
    script = "<script>alert(1)</script>"
    table = measured_table()
    table["action"] = table["action"].replace({HOSTILE: script})
    meta = {
        "last_transaction": "2024-06-01",
        "horizon_days": 90,
        "control_share": 0.1,
        "confidence": 0.95,
        "pending": [{"list_date": "2024-05-31", "ready_on": "2024-08-29", "entries": 120}],
    }
    labels = {"b": {"label": script}}
    page = render_uplift_html(table, meta, labels)
    assert "<script" not in page
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert page.count(escaped) >= 5  # label + rule: pooled, 2 lists; label of b in advice
    assert f'<p class="warn">{escaped}: measured save rate' in page
    assert "Outcomes recorded" in page and "Per list date" in page and "2024-08-29" in page
    assert page == render_uplift_html(table, meta, labels)


def test_uplift_html_is_drawn_for_the_reports_reader() -> None:
    """``report uplift`` passes ``report.*``: an Arabic reader with native digits gets a
    right-to-left page in Arabic with Arabic-Indic digits; without it the page is English."""
    table = measured_table()
    meta = {
        "last_transaction": "2024-06-01",
        "horizon_days": 90,
        "control_share": 0.1,
        "confidence": 0.95,
        "pending": [],
    }
    english = render_uplift_html(table, meta)
    assert '<html lang="en" dir="ltr"' in english and "Measured save rates" in english
    arabic = render_uplift_html(table, meta, reader={"language": "ar", "native_digits": True})
    assert '<html lang="ar" dir="rtl"' in arabic
    assert "Measured save rates" not in arabic and "How to read this" not in arabic
    assert "٩٠" in arabic  # the 90-day label window in Arabic-Indic digits
