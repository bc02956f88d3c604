"""Retention actions: risk bands, value tiers, the playbook, net benefit and capacity.

expected_net_benefit = p × value_if_retained × save_rate − cost

where p = p_churn for an active customer and p = 1 for a ``lapsed`` one: they are already
gone (the model, never trained on them, gives them no p_churn), so a win-back action is
worth value_if_retained × save_rate − cost. Lapsed customers are their own risk band
(``lapsed``): rules with ``risk_bands`` never match them, rules with ``lapsed: true`` do.

Rules are tried in ``score.playbook`` order; the first rule whose conditions all hold
gives the customer's action. A customer whose best action has a net benefit ≤ 0 gets no
action. Manual actions (owner ``account_manager``) are capped per manager by
``score.manager_capacity_per_week`` in net-benefit order; the overflow goes to the
automated ``score.overflow`` action when that still pays, otherwise to no action.

**Control group.** Of the customers who would get an action, ``score.control_share`` are
held out at random (``arm`` = ``control``; the others ``treated``): a customer is held out
when ``control_draw(list date, customer id)`` < the share, a uniform number from SHA-256
(reproducible anywhere, independent of row order and of any random state). A customer
still inside an earlier list's window keeps that list's arm (``holdover``), so a held-out
customer is not treated a week later and a treated one is never compared as a control.
Capacity is filled from the treated arm: each manager gets their best
``manager_capacity_per_week`` *treated* manual actions. A held-out customer is recorded
with the action they would have got, capacity included: the manual action when they rank
above their manager's last treated manual action, otherwise the overflow. Control rows are
on no list (``on_list`` false, rank 0, no action text, owner, cost or net benefit); only
``rule``, ``save_rate`` and ``arm`` say what they stand for.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from churnguard.config import ActionRule, OverflowAction, RiskBands, ScoreParams, ValueTiers
from churnguard.timing import timed

LAPSED = "lapsed"  # the risk band of customers silent longer than features.lost_after_days
RISK_ORDER = {"low": 0, "medium": 1, "high": 2, LAPSED: 3}
NO_ACTION = "none"
TREATED, CONTROL = "treated", "control"


def control_draw(list_date: dt.date, customer_ids: Iterable[str]) -> np.ndarray:
    """A uniform number in [0, 1) per customer: the first 53 bits of
    SHA-256("<list date ISO>|<customer id>") / 2**53. Held out when below
    ``score.control_share``; the same date and id always give the same number."""
    prefix = f"{list_date.isoformat()}|".encode()
    bits = [
        int.from_bytes(
            hashlib.sha256(prefix + str(c).encode("utf-8", "surrogatepass")).digest()[:8]
        )
        >> 11
        for c in customer_ids
    ]
    return np.asarray(bits, dtype=np.float64) / float(2**53)


def risk_band(p_churn: pd.Series, bands: RiskBands, lapsed: pd.Series | None = None) -> pd.Series:
    """low / medium / high from the ``bands`` thresholds on P(churn); ``lapsed`` (when
    given, 1 = lapsed) puts those customers in their own band whatever their p_churn."""
    p = p_churn.astype(float)
    out = np.where(p >= bands.high, "high", np.where(p >= bands.medium, "medium", "low"))
    if lapsed is not None:
        out = np.where(lapsed.astype(bool).to_numpy(), LAPSED, out)
    return pd.Series(out, index=p_churn.index, name="risk_band")


def value_tier(value: pd.Series, tiers: ValueTiers) -> pd.Series:
    """Tiers from quantiles of value among the scored customers (adapts to the business)."""
    v = value.astype(float)
    if v.empty:
        return pd.Series([], dtype=object, name="value_tier")
    hi, mid = v.quantile(tiers.high), v.quantile(tiers.mid)
    out = np.where(v >= hi, "high", np.where(v >= mid, "mid", "low"))
    return pd.Series(out, index=value.index, name="value_tier")


def rule_mask(rule: ActionRule, frame: pd.DataFrame) -> pd.Series:
    """Rows of ``frame`` where every condition of ``rule`` holds (unset conditions hold)."""
    m = pd.Series(True, index=frame.index)
    if rule.risk_bands is not None:
        m &= frame["risk_band"].isin(rule.risk_bands)
    if rule.value_tiers is not None:
        m &= frame["value_tier"].isin(rule.value_tiers)
    if rule.segments is not None:
        m &= frame["rfm_segment"].isin(rule.segments)
    if rule.lapsed is not None:
        m &= frame["lapsed"].astype(bool) == rule.lapsed
    if rule.one_time_buyer is not None:
        m &= frame["one_time_buyer"].astype(bool) == rule.one_time_buyer
    if rule.min_tenure_days is not None:
        m &= frame["tenure_days"] >= rule.min_tenure_days
    if rule.max_tenure_days is not None:
        m &= frame["tenure_days"] <= rule.max_tenure_days
    if rule.min_recency_days is not None:
        m &= frame["recency_days"] >= rule.min_recency_days
    if rule.max_recency_days is not None:
        m &= frame["recency_days"] <= rule.max_recency_days
    if rule.min_recency_to_gap is not None:
        m &= frame["recency_to_gap"].fillna(-np.inf) >= rule.min_recency_to_gap
    return m


def match_playbook(frame: pd.DataFrame, playbook: list[ActionRule]) -> pd.Series:
    """Name of the first matching rule per row (``none`` when no rule matches)."""
    chosen = pd.Series(NO_ACTION, index=frame.index, name="rule")
    free = pd.Series(True, index=frame.index)
    for rule in playbook:
        hit = free & rule_mask(rule, frame)
        chosen[hit] = rule.name
        free &= ~hit
    return chosen


def _apply(
    frame: pd.DataFrame, idx: pd.Index, rule: ActionRule | OverflowAction, owner: str, text: str
) -> None:
    frame.loc[idx, "rule"] = rule.name
    frame.loc[idx, "action"] = text
    frame.loc[idx, "channel"] = rule.channel
    frame.loc[idx, "owner"] = owner
    frame.loc[idx, "action_cost"] = rule.cost
    frame.loc[idx, "save_rate"] = rule.save_rate
    # a lapsed customer is already lost: P(lost without the action) = 1, not their p_churn
    p = frame.loc[idx, "p_churn"].astype(float)
    if "lapsed" in frame:
        p = p.mask(frame.loc[idx, "lapsed"].astype(bool), 1.0)
    frame.loc[idx, "expected_net_benefit"] = (
        p * frame.loc[idx, "value_if_retained"] * rule.save_rate - rule.cost
    ).round(2)


def _arms(
    frame: pd.DataFrame,
    acting: pd.Series,
    share: float,
    list_date: dt.date | None,
    holdover: pd.Series | None,
) -> pd.Series:
    """treated / control for customers with an action, "" for the rest (module docstring)."""
    arm = pd.Series("", index=frame.index, dtype=object)
    ids = frame.loc[acting, "customer_id"]
    drawn = np.full(len(ids), TREATED, dtype=object)
    if list_date is not None and share > 0:
        drawn[control_draw(list_date, ids) < share] = CONTROL
    arm[acting] = drawn
    if holdover is not None and len(holdover):
        kept = ids.map(holdover)
        kept = kept[kept.isin([TREATED, CONTROL])]
        arm[kept.index] = kept
    return arm


@timed("actions (playbook, capacity)")
def assign_actions(
    scored: pd.DataFrame,
    params: ScoreParams,
    list_date: dt.date | None = None,
    holdover: pd.Series | None = None,
    language: str = "en",
    fallback_language: str | None = None,
) -> pd.DataFrame:
    """Add rule, action, channel, owner, cost, save rate, net benefit, arm and list rank.
    ``action`` is each rule's text in ``language`` (see :meth:`ActionRule.action_in`).

    ``scored`` needs p_churn (NaN for lapsed customers), value_if_retained, risk_band,
    value_tier, lapsed, account_manager and the snapshot columns the rules look at. Returns
    a new frame sorted by manager, then by net benefit (best first); ``on_list`` marks
    treated customers with a positive-benefit action. ``list_date`` seeds the control
    group (none without it); ``holdover`` maps customer id → the arm an ongoing episode
    keeps (see the module docstring).
    """
    out = scored.copy()
    for col, default in (
        ("rule", NO_ACTION),
        ("action", ""),
        ("channel", ""),
        ("owner", ""),
        ("action_cost", 0.0),
        ("save_rate", 0.0),
        ("expected_net_benefit", 0.0),
    ):
        out[col] = default
    chosen = match_playbook(out, params.playbook)
    for rule in params.playbook:
        idx = out.index[chosen == rule.name]
        if len(idx):
            _apply(out, idx, rule, rule.owner, rule.action_in(language, fallback_language))
    out.loc[out["expected_net_benefit"] <= 0, ["rule", "action", "channel", "owner"]] = [
        NO_ACTION,
        "",
        "",
        "",
    ]
    out.loc[out["rule"] == NO_ACTION, ["action_cost", "save_rate", "expected_net_benefit"]] = 0.0

    out["arm"] = _arms(out, out["rule"] != NO_ACTION, params.control_share, list_date, holdover)

    # capacity: each manager keeps the best `capacity` treated manual actions; the rest
    # overflow. A held-out customer overflows when they rank after their manager's last kept
    # treated action (the same cut), so both arms stand for the same customers.
    capacity = params.manager_capacity_per_week
    order = ["account_manager", "expected_net_benefit", "customer_id"]
    manual = out[(out["owner"] == "account_manager") & (out["arm"] == TREATED)].sort_values(
        order, ascending=[True, False, True], kind="stable"
    )
    rank_in_manager = manual.groupby("account_manager", sort=False).cumcount()
    overflow_idx = rank_in_manager.index[rank_in_manager >= capacity]
    held = out[(out["owner"] == "account_manager") & (out["arm"] == CONTROL)]
    if len(held):
        last = manual[rank_in_manager == capacity - 1].set_index("account_manager")
        cut = held["account_manager"].isin(last.index)  # managers whose capacity is full
        after = pd.Series(capacity == 0, index=held.index)
        if cut.any():
            mine = held[cut]
            benefit = mine["account_manager"].map(last["expected_net_benefit"])
            cut_id = mine["account_manager"].map(last["customer_id"]).astype(str)
            after[cut] = (mine["expected_net_benefit"] < benefit) | (
                (mine["expected_net_benefit"] == benefit)
                & (mine["customer_id"].astype(str) > cut_id)
            )
        held_over = held.index[after.to_numpy(dtype=bool)]
    else:
        held_over = held.index
    out["overflowed"] = False
    moved = overflow_idx.union(held_over)
    if len(moved):
        text = params.overflow.action_in(language, fallback_language)
        _apply(out, moved, params.overflow, "automated", text)
        out.loc[overflow_idx, "overflowed"] = True
        lost = moved[out.loc[moved, "expected_net_benefit"] <= 0]
        out.loc[lost, ["rule", "action", "channel", "owner", "arm"]] = [NO_ACTION, "", "", "", ""]
        out.loc[lost, ["action_cost", "save_rate", "expected_net_benefit"]] = 0.0

    # held out: on no list; only rule, save_rate and arm say what they stand for
    control = out["arm"] == CONTROL
    out.loc[control, ["action", "channel", "owner"]] = ""
    out.loc[control, ["action_cost", "expected_net_benefit"]] = 0.0
    out["on_list"] = (out["rule"] != NO_ACTION) & ~control
    out = out.sort_values(
        ["account_manager", "on_list", "expected_net_benefit", "p_churn", "customer_id"],
        ascending=[True, False, False, False, True],
        kind="stable",
    )
    out["rank"] = out.groupby("account_manager", sort=False).cumcount() + 1
    out.loc[~out["on_list"], "rank"] = 0
    return out.reset_index(drop=True)


def due_dates(n: int, start: dt.date, within_days: int, capacity: int) -> list[dt.date]:
    """Due dates of a manager's ``n`` manual actions in rank order: at the pace of
    ``capacity`` actions per ``within_days`` days after ``start``, the best first — rank i
    (1-based) is due on day ⌈i × within_days / capacity⌉, never later than ``within_days``."""
    if n <= 0:
        return []
    pace = max(capacity, n)
    return [
        start + dt.timedelta(days=min(within_days, math.ceil(i * within_days / pace)))
        for i in range(1, n + 1)
    ]


def action_texts(
    frame: pd.DataFrame,
    params: ScoreParams,
    languages: pd.Series,
    fallback_language: str | None = None,
) -> pd.Series:
    """Each row's action text in the language of its reader (``languages``, aligned with
    ``frame``): the rule's text, the overflow action's for an overflowed row, "" for none."""
    texts = pd.Series("", index=frame.index, dtype=object)
    on = frame["rule"] != NO_ACTION
    if "arm" in frame:  # held out: on no list, so no text to read
        on &= frame["arm"] != CONTROL
    overflowed = frame["overflowed"].astype(bool) if "overflowed" in frame else on & False
    overflowed |= frame["rule"] == params.overflow.name
    rules = {r.name: r for r in params.playbook}
    for language in sorted(set(languages[on])):
        mine = on & (languages == language)
        if (mine & overflowed).any():
            texts[mine & overflowed] = params.overflow.action_in(language, fallback_language)
        named = frame.loc[mine & ~overflowed, "rule"]
        by_rule = {n: rules[n].action_in(language, fallback_language) for n in set(named)}
        texts[named.index] = named.map(by_rule)
    return texts
