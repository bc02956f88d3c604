"""Uplift arithmetic on hand-built ledgers: the risk ratio and its interval worked by hand,
pooling by list date, verdicts, what to change, the power formula and the page."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest

from churnguard.config import ActionRule, OverflowAction, ScoreParams
from churnguard.report import render_uplift_html as render_html
from churnguard.uplift import (
    ALL_ACTIONS,
    entries_needed,
    mh_risk_ratio,
    recommendations,
    uplift_table,
)

D1, D2 = dt.date(2025, 1, 6), dt.date(2025, 1, 13)


def rule(name: str, save_rate: float) -> ActionRule:
    return ActionRule(
        name=name,
        action=name,
        channel="phone",
        owner="account_manager",
        cost=1,
        save_rate=save_rate,
    )


SP = ScoreParams(
    playbook=[rule("call", 0.10), rule("remind", 0.05)],
    overflow=OverflowAction(name="overflow_email", save_rate=0.06),
)


def arm(action: str, day: dt.date, arm_: str, n: int, churned: int, assumed: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "list_date": day,
            "customer_id": [f"{action}-{day}-{arm_}-{i}" for i in range(n)],
            "action": action,
            "arm": arm_,
            "save_rate": assumed,
            "churned": [i < churned for i in range(n)],
        }
    )


def test_one_list_gives_the_katz_interval_worked_by_hand():
    # 30 of 100 treated churn, 50 of 100 held out: RR 0.6; var(log RR) = 1/30 − 1/100 +
    # 1/50 − 1/100 = 1/30; RR × exp(±1.96 × 0.18257) = [0.41951, 0.85814]
    rr, lo, hi = mh_risk_ratio([30], [100], [50], [100], 0.95)
    assert rr == pytest.approx(0.6)
    assert (lo, hi) == pytest.approx((0.41951, 0.85814), abs=1e-5)


def test_lists_are_pooled_by_mantel_haenszel_not_by_adding_counts():
    # two dates with different churn and control shares: MH 0.45238 [0.29526, 0.69312]
    # (worked by hand); adding the counts would give 0.2 / 0.4286 = 0.4667
    rr, lo, hi = mh_risk_ratio([10, 40], [50, 200], [20, 10], [50, 20], 0.95)
    assert rr == pytest.approx(0.452381, abs=1e-6)
    assert (lo, hi) == pytest.approx((0.295255, 0.693125), abs=1e-5)
    assert rr != pytest.approx((50 / 250) / (30 / 70), abs=1e-3)


@pytest.mark.parametrize(
    "a, c",
    [(10, 0), (0, 10)],
    ids=["no held-out churner: undefined", "no treated churner: no interval"],
)
def test_empty_cells_give_no_interval(a, c):
    rr, lo, hi = mh_risk_ratio([a], [100], [c], [100], 0.95)
    assert math.isnan(lo) and math.isnan(hi)
    assert math.isnan(rr) if c == 0 else rr == 0


def measured() -> pd.DataFrame:
    return pd.concat(
        [
            arm("call", D1, "treated", 100, 30, 0.10),
            arm("call", D1, "control", 100, 50, 0.10),
            arm("remind", D1, "treated", 40, 8, 0.05),
            arm("remind", D1, "control", 10, 3, 0.05),
            arm("overflow_email", D2, "treated", 30, 20, 0.06),
        ],
        ignore_index=True,
    )


def test_the_table_counts_rates_and_judges_each_action():
    table = uplift_table(measured(), SP, 90, 0.95)
    pooled = table[table["scope"] == "pooled"].set_index("action")
    call = pooled.loc["call"]
    assert (call["n_treated"], call["n_control"], call["churned_treated"]) == (100, 100, 30)
    assert (call["churn_rate_treated"], call["churn_rate_control"]) == (0.3, 0.5)
    assert call["save_rate"] == pytest.approx(0.4)
    assert (call["save_rate_low"], call["save_rate_high"]) == pytest.approx((0.1419, 0.5805))
    assert call["verdict"] == "higher than assumed"
    assert call["params_key"] == "score.playbook[0].save_rate"
    assert call["suggested_save_rate"] == 0.4
    assert pooled.loc["remind", "verdict"] == "too few to judge"  # 3 held-out churners
    assert pooled.loc["overflow_email", "verdict"] == "no control group"
    assert pooled.loc["overflow_email", "params_key"] == "score.overflow.save_rate"
    everything = pooled.loc[ALL_ACTIONS]
    assert everything["n_treated"] == 170 and everything["n_control"] == 110
    per_list = table[table["scope"] == "list"]
    assert per_list[["action", "list_date", "window_end"]].values.tolist()[0] == [
        "call",
        "2025-01-06",
        "2025-04-06",
    ]


def test_an_interval_that_holds_the_assumed_rate_changes_nothing():
    sp = SP.model_copy(update={"playbook": [rule("call", 0.35), rule("remind", 0.05)]})
    table = uplift_table(measured(), sp, 90, 0.95)
    call = table[(table["scope"] == "pooled") & (table["action"] == "call")].iloc[0]
    assert call["verdict"] == "as assumed" and math.isnan(call["suggested_save_rate"])
    assert recommendations(table) == []


def test_the_recommendation_names_the_key_and_the_value():
    advice = recommendations(uplift_table(measured(), SP, 90, 0.95))
    assert len(advice) == 1
    assert "set score.playbook[0].save_rate to 0.40" in advice[0]
    assert "[0.14, 0.58] from 200 customers" in advice[0]


def test_an_action_that_does_harm_is_told_to_set_zero():
    harm = pd.concat(
        [arm("call", D1, "treated", 100, 60, 0.3), arm("call", D1, "control", 100, 40, 0.3)]
    )
    advice = recommendations(uplift_table(harm, SP, 90, 0.95))
    assert "to 0.00" in advice[0] and "consider dropping the rule" in advice[0]


def test_power_formula_gives_the_worked_numbers_of_the_docs():
    # control churn 60%, save rate 0.30, 10% held out: 1,544 entries for ±0.10
    assert entries_needed(0.6, 0.3, 0.1, 0.1, 0.95) == 1544
    assert entries_needed(0.6, 0.3, 0.1, 0.05, 0.95) == 6175
    assert entries_needed(0.6, 0.3, 0.5, 0.1, 0.95) == 771
    assert entries_needed(0.5, 0.1, 0.1, 0.1, 0.95) == 3535


def test_the_power_formula_matches_the_interval_it_predicts():
    """Entries from the formula give an interval of about ±0.10 on data at those rates."""
    n = entries_needed(0.6, 0.3, 0.1, 0.1, 0.95)
    n0, n1 = round(0.1 * n), round(0.9 * n)
    rr, lo, hi = mh_risk_ratio([round(0.42 * n1)], [n1], [round(0.6 * n0)], [n0], 0.95)
    assert (hi - lo) / 2 == pytest.approx(0.1, abs=0.01)


def test_the_page_escapes_names_and_is_the_same_for_the_same_table():
    frame = measured()
    frame.loc[frame["action"] == "remind", "action"] = "<script>x</script>"
    table = uplift_table(frame, SP, 90, 0.95)
    meta = {"last_transaction": "2025-06-30", "horizon_days": 90, "control_share": 0.1}
    page = render_html(table, {**meta, "recommendations": recommendations(table)})
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert page == render_html(table, {**meta, "recommendations": recommendations(table)})
    assert "score.playbook[0].save_rate" in page and "http" not in page


def test_no_measured_entry_gives_an_empty_table_and_a_page_that_says_so():
    table = uplift_table(measured().iloc[0:0], SP, 90, 0.95)
    assert table.empty
    page = render_html(
        table, {"pending": [{"list_date": "2025-06-02", "ready_on": "2025-08-31", "entries": 12}]}
    )
    assert "No save rate can be measured yet: 1 list waits" in page and "2025-08-31" in page
    assert '<td class="d">2025-06-02</td><td class="n">12</td>' in page  # the list waiting
