"""Playbook matching, net-benefit ranking, capacity overflow; Excel-safe files."""

from __future__ import annotations

import string

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnguard.actions import assign_actions, match_playbook, risk_band, value_tier
from churnguard.config import ActionRule, OverflowAction, RiskBands, ScoreParams, ValueTiers
from churnguard.csvsafe import excel_safe_frame, safe_file_stem, write_excel_csv_atomic
from churnguard.formulas import FORMULA_PREFIXES

CALL = ActionRule(
    name="call",
    action="Call",
    channel="phone",
    owner="account_manager",
    cost=20,
    save_rate=0.3,
    risk_bands=["high"],
    value_tiers=["high"],
)
WINBACK = ActionRule(
    name="winback",
    action="Survey",
    channel="email",
    owner="automated",
    cost=0.5,
    save_rate=0.05,
    lapsed=True,
)
REMIND = ActionRule(
    name="remind",
    action="Remind",
    channel="email",
    owner="automated",
    cost=1,
    save_rate=0.1,
    risk_bands=["medium", "high"],
)


def customers(n: int, **overrides) -> pd.DataFrame:
    base = {
        "customer_id": [f"c{i:03d}" for i in range(n)],
        "account_manager": ["Ali"] * n,
        "p_churn": [0.7] * n,
        "value_if_retained": [1000.0] * n,
        "risk_band": ["high"] * n,
        "value_tier": ["high"] * n,
        "rfm_segment": ["At risk"] * n,
        "lapsed": [0] * n,
        "one_time_buyer": [0] * n,
        "tenure_days": [400] * n,
        "recency_days": [60] * n,
        "recency_to_gap": [2.0] * n,
    }
    base.update(overrides)
    return pd.DataFrame(base)


def test_first_matching_rule_wins_in_playbook_order():
    frame = customers(
        3,
        lapsed=[1, 0, 0],
        risk_band=["high", "high", "medium"],
        value_tier=["high", "high", "low"],
    )
    assert match_playbook(frame, [WINBACK, CALL, REMIND]).tolist() == ["winback", "call", "remind"]
    # order matters: with CALL first, the lapsed high-value customer gets the call
    assert match_playbook(frame, [CALL, WINBACK, REMIND]).tolist() == ["call", "call", "remind"]


def test_unmatched_and_negative_benefit_customers_get_no_action():
    frame = customers(
        2, p_churn=[0.7, 0.7], value_if_retained=[1000.0, 10.0], risk_band=["high", "low"]
    )
    out = assign_actions(frame, ScoreParams(playbook=[CALL, REMIND])).set_index("customer_id")
    # c000: 0.7 × 1000 × 0.3 − 20 = 190; c001 is low risk: no rule matches
    assert out.loc["c000", "expected_net_benefit"] == pytest.approx(190.0)
    assert out.loc["c001", "rule"] == "none" and not out.loc["c001", "on_list"]
    cheap = customers(1, value_if_retained=[50.0])  # 0.7 × 50 × 0.3 − 20 < 0
    out = assign_actions(cheap, ScoreParams(playbook=[CALL]))
    assert out.loc[0, "rule"] == "none" and out.loc[0, "expected_net_benefit"] == 0.0
    assert out.loc[0, "rank"] == 0


def test_lists_rank_by_net_benefit_and_capacity_overflows_to_automated():
    frame = customers(5, value_if_retained=[100.0, 5000.0, 300.0, 2000.0, 800.0])
    params = ScoreParams(
        playbook=[CALL],
        manager_capacity_per_week=2,
        overflow=OverflowAction(cost=1.0, save_rate=0.05),
    )
    out = assign_actions(frame, params)
    listed = out[out.on_list]
    assert listed["customer_id"].tolist()[:2] == ["c001", "c003"]  # best two keep the call
    assert (listed.iloc[:2]["owner"] == "account_manager").all()
    overflow = out.set_index("customer_id").loc[["c004", "c002", "c000"]]
    assert overflow["owner"].tolist() == ["automated"] * 3
    assert overflow["overflowed"].all()
    # 0.7 × 800 × 0.05 − 1 = 27
    assert overflow.loc["c004", "expected_net_benefit"] == pytest.approx(27.0)
    assert listed["rank"].tolist() == list(range(1, len(listed) + 1))
    assert listed["expected_net_benefit"].is_monotonic_decreasing


def test_capacity_is_per_manager():
    frame = customers(4, account_manager=["Ali", "Ali", "Sara", "Sara"])
    out = assign_actions(frame, ScoreParams(playbook=[CALL], manager_capacity_per_week=1))
    manual = out[out.owner == "account_manager"].groupby("account_manager").size().to_dict()
    assert manual == {"Ali": 1, "Sara": 1}


def test_bands_and_tiers():
    p = pd.Series([0.1, 0.3, 0.59, 0.6, 0.95])
    assert risk_band(p, RiskBands(medium=0.3, high=0.6)).tolist() == [
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]
    v = pd.Series([float(i) for i in range(10)])
    tiers = value_tier(v, ValueTiers(mid=0.5, high=0.8)).tolist()
    assert tiers.count("high") == 2 and tiers.count("mid") == 3 and tiers.count("low") == 5


# ---------------------------------------------------------------- Excel safety


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.printable + "=+-@\t\r\nعلی", min_size=1, max_size=20))
def test_formula_payloads_never_reach_a_cell_unescaped(payload):
    frame = pd.DataFrame({"name": [payload], "n": [1.5]})
    safe = excel_safe_frame(frame)
    cell = safe.loc[0, "name"]
    assert not cell.startswith(FORMULA_PREFIXES)
    assert cell.endswith(payload)  # nothing lost, only a leading apostrophe added
    assert safe.loc[0, "n"] == 1.5  # numbers stay numeric


def test_csv_has_bom_keeps_numbers_and_arabic_names(tmp_path):
    frame = pd.DataFrame(
        {
            "customer_name": ["مریم رضایی", '=HYPERLINK("http://x")', "-2+3"],
            "risk": [12.5, 80.0, 3.0],
        }
    )
    path = tmp_path / "list.csv"
    write_excel_csv_atomic(path, frame)
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    assert "مریم رضایی" in text
    assert "'=HYPERLINK" in text and "'-2+3" in text
    back = pd.read_csv(path, encoding="utf-8-sig")
    assert back["risk"].dtype.kind == "f"


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "a/b\\c",
        ".hidden",
        "CON",
        "  ",
        "O'Brien / North desk",
        "مریم\x00رضایی",
        "x" * 300,
    ],
)
def test_hostile_manager_names_become_safe_file_names(name):
    stem = safe_file_stem(name)
    assert stem and "/" not in stem and "\\" not in stem and ".." not in stem
    assert not stem.startswith(".") and "\x00" not in stem and len(stem) <= 80
    assert stem.upper() != "CON"


def test_names_that_clean_to_the_same_stem_do_not_collide():
    taken: set[str] = set()
    stems = [safe_file_stem(n, taken) for n in ["Ali/Reza", "Ali:Reza", "ali reza", "ALI_REZA"]]
    assert len({s.casefold() for s in stems}) == 4


def test_excel_safe_frame_handles_every_column_kind():
    frame = pd.DataFrame(
        {
            "text": pd.Series(["=cmd", "ok"], dtype="string"),
            "mixed": pd.Series([3, "+1"], dtype=object),
            "empty": [None, None],
            "category": pd.Categorical(["@SUM(A1)", "fine"]),
            "category_numbers": pd.Categorical([1, 2]),
            "delta": pd.to_timedelta([1, 2], unit="D"),
            "number": [1.5, -2.0],
        }
    )
    safe = excel_safe_frame(frame)
    assert safe["text"].tolist() == ["'=cmd", "ok"]
    assert safe["mixed"].tolist() == [3, "'+1"]  # numbers stay numbers
    assert safe["category"].tolist() == ["'@SUM(A1)", "fine"]
    assert safe["category_numbers"].tolist() == [1, 2]
    assert safe["delta"].tolist() == frame["delta"].tolist()
    assert safe["number"].tolist() == [1.5, -2.0]
    assert safe["empty"].isna().all()
