"""The randomised control group: reproducible, the right share, never on a manager's list,
capacity filled from the treated arm, and held-out customers standing for the same
customers as the treated ones."""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pandas as pd
import pytest

from churnguard.actions import CONTROL, TREATED, assign_actions, control_draw
from churnguard.config import ActionRule, OverflowAction, ScoreParams

DAY = dt.date(2025, 3, 3)
CALL = ActionRule(
    name="call",
    action="Call",
    channel="phone",
    owner="account_manager",
    cost=20,
    save_rate=0.3,
    risk_bands=["high"],
)
REMIND = ActionRule(
    name="remind",
    action="Remind",
    channel="email",
    owner="automated",
    cost=1,
    save_rate=0.1,
    risk_bands=["medium"],
)
OVERFLOW = OverflowAction(name="overflow_email", cost=1.0, save_rate=0.06)


def customers(n: int, manager: str = "Ali", band: str = "high", start: int = 0) -> pd.DataFrame:
    """n customers whose value (so net benefit) falls with their number."""
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(start, start + n)],
            "account_manager": [manager] * n,
            "p_churn": [0.7] * n,
            "value_if_retained": [10_000.0 - 10 * i for i in range(n)],
            "risk_band": [band] * n,
            "value_tier": ["high"] * n,
            "rfm_segment": ["At risk"] * n,
            "lapsed": [0] * n,
            "one_time_buyer": [0] * n,
            "tenure_days": [400] * n,
            "recency_days": [60] * n,
            "recency_to_gap": [2.0] * n,
        }
    )


def params(**kw) -> ScoreParams:
    return ScoreParams(playbook=[CALL, REMIND], overflow=OVERFLOW, **kw)


def test_the_draw_is_sha256_of_list_date_and_customer_id():
    digest = hashlib.sha256(b"2025-03-03|C0000042").digest()
    expected = (int.from_bytes(digest[:8], "big") >> 11) / 2**53
    assert control_draw(DAY, ["C0000042"])[0] == expected
    assert control_draw(DAY, ["C0000042"])[0] == control_draw(DAY, ["C0000042"])[0]
    assert control_draw(DAY + dt.timedelta(days=7), ["C0000042"])[0] != expected


def test_the_draw_is_uniform_so_the_share_held_out_is_the_share_asked():
    u = control_draw(DAY, [f"C{i:07d}" for i in range(40_000)])
    assert u.min() >= 0 and u.max() < 1
    # 40,000 draws: the share below 0.1 is within 4 standard errors (0.006) of 0.1
    assert abs((u < 0.1).mean() - 0.1) < 0.006
    assert abs(u.mean() - 0.5) < 0.006


def test_control_customers_are_on_no_list_and_keep_what_they_stand_for():
    out = assign_actions(
        customers(400), params(control_share=0.2, manager_capacity_per_week=1000), DAY
    )
    control = out[out["arm"] == CONTROL]
    assert 40 < len(control) < 120
    assert not control["on_list"].any() and (control["rank"] == 0).all()
    assert (control[["action", "channel", "owner"]] == "").all().all()
    assert (control[["action_cost", "expected_net_benefit"]] == 0).all().all()
    assert (control["rule"] == "call").all() and (control["save_rate"] == 0.3).all()
    treated = out[out["arm"] == TREATED]
    assert treated["on_list"].all() and (treated["rank"] > 0).all()
    assert len(treated) + len(control) == 400


def test_the_same_customers_are_held_out_whatever_the_row_order():
    frame = customers(300)
    a = assign_actions(frame, params(control_share=0.3), DAY).set_index("customer_id")["arm"]
    shuffled = frame.sample(frac=1, random_state=3).reset_index(drop=True)
    b = assign_actions(shuffled, params(control_share=0.3), DAY).set_index("customer_id")["arm"]
    assert a.sort_index().tolist() == b.sort_index().tolist()


def test_without_a_list_date_nobody_is_held_out():
    out = assign_actions(customers(50), params(control_share=0.5))
    assert (out["arm"] == TREATED).all()


def test_capacity_is_filled_from_the_treated_arm():
    out = assign_actions(
        customers(60), params(control_share=0.4, manager_capacity_per_week=10), DAY
    )
    calls = out[(out["rule"] == "call") & out["on_list"]]
    assert len(calls) == 10 and (calls["arm"] == TREATED).all()


def test_held_out_customers_overflow_at_the_same_cut_as_the_treated():
    """Control rows ranked above the manager's last kept treated call stand for the call,
    the rest for the overflow: both arms split the same customers at the same place."""
    out = assign_actions(
        customers(80), params(control_share=0.4, manager_capacity_per_week=10), DAY
    ).sort_values("value_if_retained", ascending=False)
    cut = out[(out["arm"] == TREATED) & (out["rule"] == "call")]["value_if_retained"].min()
    control = out[out["arm"] == CONTROL]
    above = control["value_if_retained"] > cut
    assert above.any() and (~above).any()
    assert (control.loc[above, "rule"] == "call").all()
    assert (control.loc[~above, "rule"] == "overflow_email").all()
    # and the treated below the cut overflowed too
    treated_below = out[(out["arm"] == TREATED) & (out["value_if_retained"] < cut)]
    assert (treated_below["rule"] == "overflow_email").all()


def test_with_no_capacity_every_held_out_manual_customer_stands_for_the_overflow():
    out = assign_actions(customers(40), params(control_share=0.5, manager_capacity_per_week=0), DAY)
    assert set(out.loc[out["arm"] == CONTROL, "rule"]) == {"overflow_email"}


def test_an_ongoing_episode_keeps_its_arm_whatever_the_new_draw():
    frame = customers(200)
    fresh = assign_actions(frame, params(control_share=0.5), DAY).set_index("customer_id")
    flip = fresh["arm"].map({TREATED: CONTROL, CONTROL: TREATED}).head(30)
    kept = assign_actions(frame, params(control_share=0.5), DAY, flip).set_index("customer_id")
    assert kept.loc[flip.index, "arm"].tolist() == flip.tolist()
    rest = fresh.index.difference(flip.index)
    assert kept.loc[rest, "arm"].tolist() == fresh.loc[rest, "arm"].tolist()


@pytest.mark.parametrize("share", [0.0, 0.1, 0.5], ids=["no control", "ten percent", "half"])
def test_customers_without_an_action_have_no_arm(share):
    frame = pd.concat([customers(50), customers(50, band="low", start=50)], ignore_index=True)
    out = assign_actions(frame, params(control_share=share), DAY)
    assert (out.loc[out["rule"] == "none", "arm"] == "").all()
    assert (out.loc[out["rule"] != "none", "arm"].isin([TREATED, CONTROL])).all()
    assert np.isclose(
        (out["arm"] == CONTROL).sum() / max((out["rule"] != "none").sum(), 1), share, atol=0.15
    )
