"""Lapsed customers are their own band: no model score, no value at risk, win-back actions.

Small hand-built snapshots scored with a real (tiny) LightGBM model through the real
``score_frame``, CSV writer/reader, summary and report: no mocks.
"""

from __future__ import annotations

import datetime as dt
import math
import re

import numpy as np
import pandas as pd
import pytest

from churnguard.actions import RISK_ORDER, assign_actions, match_playbook, risk_band
from churnguard.config import ActionRule, RiskBands, ScoreParams
from churnguard.csvsafe import read_excel_csv, write_excel_csv_atomic
from churnguard.modeling import ChurnModel, LoadedModel
from churnguard.report import render_html
from churnguard.scoring import (
    RISK_LIST_SCHEMA,
    build_summary,
    compare_with_previous,
    present_columns,
    score_frame,
)

FEATURES = ["recency_days", "orders_90d"]

WINBACK = ActionRule(
    name="winback",
    action="We miss you",
    channel="email",
    owner="automated",
    cost=0.5,
    save_rate=0.05,
    lapsed=True,
)
CALL_HIGH = ActionRule(
    name="call_high",
    action="Call",
    channel="phone",
    owner="account_manager",
    cost=20.0,
    save_rate=0.3,
    risk_bands=["high"],
)
REMIND_ANY = ActionRule(
    name="remind_any",
    action="Reminder",
    channel="email",
    owner="automated",
    cost=0.1,
    save_rate=0.1,
    risk_bands=["low", "medium", "high"],
)


@pytest.fixture(scope="module")
def model(tiny_model: ChurnModel) -> ChurnModel:
    """The tiny real booster of conftest (recency_days, orders_90d)."""
    return tiny_model


def snapshot() -> pd.DataFrame:
    """a: active and at high risk; b: active and safe; c, d: lapsed (silent > a year)."""
    return pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "customer_name": ["Ann", "Ben", "Cem", "Dee"],
            "account_manager": ["M", "M", "M", "M"],
            "region": ["EU"] * 4,
            "recency_days": [300, 5, 400, 500],
            "orders_90d": [0, 5, 0, 0],
            "orders_prev_90d": [1, 4, 0, 0],
            "gap_mean_days": [60.0, 10.0, 25.0, np.nan],
            "gap_std_days": [5.0, 2.0, 3.0, np.nan],
            "monetary_total": [3000.0, 800.0, 5000.0, 90.0],
            "tenure_days": [900, 400, 1000, 600],
            "purchase_days": [15, 40, 40, 1],
            "rfm_segment": ["at_risk", "champions", "lost", "lost"],
            "lapsed": [0, 0, 1, 1],
            "one_time_buyer": [0, 0, 0, 1],
            "recency_to_gap": [5.0, 0.5, 16.0, np.nan],
            "last_purchase_date": pd.to_datetime(
                ["2024-03-06", "2024-12-27", "2023-11-27", "2023-08-19"]
            ),
        }
    )


def params(*rules: ActionRule, **kw) -> ScoreParams:
    return ScoreParams(playbook=list(rules), **kw)


def by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("customer_id")


def test_lapsed_rows_get_their_own_band_and_no_model_score(model):
    out = by_id(score_frame(snapshot(), model, params(WINBACK, CALL_HIGH)))
    lapsed = out.loc[["c", "d"]]
    assert (lapsed["risk_band"] == "lapsed").all()
    assert lapsed["p_churn"].isna().all() and lapsed["value_at_risk"].isna().all()
    assert (lapsed["value_if_retained"] > 0).all()  # what winning them back is worth


def test_lapsed_win_back_benefit_treats_them_as_already_lost(model):
    out = by_id(score_frame(snapshot(), model, params(WINBACK, CALL_HIGH)))
    c = out.loc["c"]
    assert c["rule"] == "winback" and c["on_list"]
    # P(lost) = 1: value if won back × save rate − cost (value: churnguard.value)
    assert c["value_if_retained"] > 0
    assert c["expected_net_benefit"] == pytest.approx(round(c["value_if_retained"] * 0.05 - 0.5, 2))
    d = out.loc["d"]
    assert d["expected_net_benefit"] == pytest.approx(round(d["value_if_retained"] * 0.05 - 0.5, 2))


def test_risk_band_rules_never_pick_a_lapsed_customer(model):
    # even a rule matching every risk band, listed first, with a lapsed customer worth a lot
    out = by_id(score_frame(snapshot(), model, params(REMIND_ANY, CALL_HIGH)))
    assert (out.loc[["c", "d"], "rule"] == "none").all()
    assert not out.loc[["c", "d"], "on_list"].any()
    frame = pd.DataFrame(
        {
            "risk_band": ["lapsed", "high"],
            "lapsed": [1, 0],
            "value_tier": ["high", "high"],
        }
    )
    assert match_playbook(frame, [CALL_HIGH]).tolist() == ["none", "call_high"]
    assert match_playbook(frame, [REMIND_ANY, WINBACK]).tolist() == ["winback", "remind_any"]


def test_active_customers_are_scored_as_before(model):
    sp = params(WINBACK, CALL_HIGH)
    snap = snapshot()
    out = by_id(score_frame(snap, model, sp))
    p = pd.Series(np.round(model.predict(snap), 6), index=snap["customer_id"])
    for cid in ("a", "b"):
        row = out.loc[cid]
        assert row["p_churn"] == p[cid]
        assert row["value_at_risk"] == pytest.approx(round(p[cid] * row["value_if_retained"], 2))
        want = risk_band(pd.Series([p[cid]]), sp.risk_bands).iloc[0]
        assert row["risk_band"] == want
    a = out.loc["a"]
    assert a["risk_band"] == "high" and a["rule"] == "call_high"
    assert a["expected_net_benefit"] == pytest.approx(
        round(a["p_churn"] * a["value_if_retained"] * 0.3 - 20.0, 2)
    )


def test_risk_band_takes_the_lapsed_flag_and_the_order_puts_it_above_high():
    bands = risk_band(
        pd.Series([0.1, 0.9, np.nan, 0.95]), RiskBands(), pd.Series([0, 0, 1, 1])
    ).tolist()
    assert bands == ["low", "high", "lapsed", "lapsed"]
    assert RISK_ORDER["lapsed"] > RISK_ORDER["high"]


def test_assign_actions_uses_p_one_for_lapsed_rows_only():
    frame = pd.DataFrame(
        {
            "customer_id": ["x", "y"],
            "account_manager": ["M", "M"],
            "p_churn": [np.nan, 0.4],
            "value_if_retained": [1000.0, 1000.0],
            "risk_band": ["lapsed", "medium"],
            "value_tier": ["high", "high"],
            "lapsed": [1, 0],
        }
    )
    rule = WINBACK.model_copy(update={"lapsed": None})  # matches both
    out = by_id(assign_actions(frame, params(rule)))
    assert out.loc["x", "expected_net_benefit"] == pytest.approx(1000 * 0.05 - 0.5)
    assert out.loc["y", "expected_net_benefit"] == pytest.approx(0.4 * 1000 * 0.05 - 0.5)


def test_lapsed_customers_on_a_list_get_their_recency_as_the_reason(model):
    out = by_id(score_frame(snapshot(), model, params(WINBACK, CALL_HIGH)))
    assert out.loc["c", "explained"]
    assert out.loc["c", "reasons"] == "No order for 400 days; usually orders every 25 days"
    assert out.loc["d", "reasons"] == "No order for 500 days since the first and only purchase"
    assert out.loc["a", "reasons"] != ""  # the active one still gets model drivers
    off = score_frame(snapshot(), model, params(WINBACK, CALL_HIGH, explain_top=0))
    assert (off["reasons"] == "").all()


def scored_with_change(model) -> pd.DataFrame:
    scored = score_frame(snapshot(), model, params(WINBACK, CALL_HIGH))
    change, _, _ = compare_with_previous(scored, None)
    return scored.assign(change=change)


def test_risk_list_has_empty_cells_for_lapsed_and_reads_back(model, tmp_path):
    scored = scored_with_change(model)
    present = present_columns(scored)
    path = tmp_path / "risk_list.csv"
    write_excel_csv_atomic(path, present)
    back = by_id(read_excel_csv(path, RISK_LIST_SCHEMA))
    for col in ("churn_risk_pct", "p_churn", "value_at_risk"):
        assert back.loc[["c", "d"], col].isna().all(), col
        assert back.loc[["a", "b"], col].notna().all(), col
    assert back.loc["c", "risk_band"] == "lapsed"
    c = by_id(scored).loc["c"]
    assert back.loc["c", "expected_net_benefit"] == pytest.approx(c["expected_net_benefit"])
    assert back.loc["c", "value_if_retained"] == pytest.approx(c["value_if_retained"])

    # next week, against that list: still lapsed = unchanged; high → lapsed = escalated
    later = scored.copy()
    later.loc[later["customer_id"] == "a", ["lapsed", "risk_band", "p_churn"]] = [
        1,
        "lapsed",
        np.nan,
    ]
    change, _, movers = compare_with_previous(later, back.reset_index())
    got = dict(zip(later["customer_id"], change, strict=True))
    assert got["c"] == "unchanged" and got["a"] == "escalated"
    # no P(churn) to move: c (lapsed both weeks) is no mover, a's change has no delta
    assert "c" not in set(movers["customer_id"])
    assert movers.set_index("customer_id")["delta"].isna()["a"]


def test_summary_counts_the_lapsed_band_and_skips_their_value_at_risk(model):
    scored = scored_with_change(model)
    loaded = LoadedModel(model, "models/", "file", "0" * 32)
    s = build_summary(scored, dt.date(2024, 12, 31), loaded, {})
    assert s["risk_band_counts"]["lapsed"] == 2 == s["lapsed"]
    assert sum(s["risk_band_counts"].values()) == s["customers_scored"] == 4
    active = scored[scored["lapsed"] == 0]
    want = round(float((active["p_churn"] * active["value_if_retained"]).round(2).sum()), 2)
    assert s["value_at_risk_total"] == pytest.approx(want)
    assert not math.isnan(s["managers"]["M"]["value_at_risk"])


def test_report_leaves_lapsed_out_of_the_histogram_and_shows_them_as_lapsed(model):
    scored = scored_with_change(model)
    loaded = LoadedModel(model, "models/", "file", "0" * 32)
    summary = build_summary(scored, dt.date(2024, 12, 31), loaded, {})
    page = render_html({"as_of": "2024-12-31", "summary": summary, "scored": scored})
    hist = page.split("<h2>Risk distribution</h2>", 1)[1].split("</section>", 1)[0]
    counts = [int(c) for c in re.findall(r": ([\d,]+) customers?</title>", hist)]
    assert len(counts) == 10 and sum(counts) == 2  # a and b only
    assert "2 lapsed customers are left out" in hist and "win-back" in hist
    top = page.split("<h2>Top 20", 1)[1].split("</section>", 1)[0]
    assert "Cem" in top and '<td class="n">lapsed</td>' in top
    assert not re.search(r"\bnan\b", page, re.IGNORECASE)  # missing values never print as nan
    actions = page.split("<h2>Actions by rule and owner</h2>", 1)[1].split("</section>", 1)[0]
    assert re.search(
        r"<code class=\"small\">winback</code></td>.*?<td class=\"n\">2</td><td class=\"n\">–</td>",
        actions,
    )
