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
"""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd

from churnguard.config import ActionRule, OverflowAction, RiskBands, ScoreParams, ValueTiers

LAPSED = "lapsed"  # the risk band of customers silent longer than features.lost_after_days
RISK_ORDER = {"low": 0, "medium": 1, "high": 2, LAPSED: 3}
NO_ACTION = "none"


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


def assign_actions(
    scored: pd.DataFrame,
    params: ScoreParams,
    language: str = "en",
    fallback_language: str | None = None,
) -> pd.DataFrame:
    """Add rule, action, channel, owner, cost, save rate, net benefit and list rank columns.
    ``action`` is each rule's text in ``language`` (see :meth:`ActionRule.action_in`).

    ``scored`` needs p_churn (NaN for lapsed customers), value_if_retained, risk_band,
    value_tier, lapsed, account_manager and the snapshot columns the rules look at. Returns
    a new frame sorted by manager, then by net benefit (best first); ``on_list`` marks
    customers with a positive-benefit action.
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

    # capacity: each manager keeps the best `capacity` manual actions; the rest overflow
    manual = out[out["owner"] == "account_manager"].sort_values(
        ["account_manager", "expected_net_benefit", "customer_id"],
        ascending=[True, False, True],
        kind="stable",
    )
    rank_in_manager = manual.groupby("account_manager", sort=False).cumcount()
    overflow_idx = rank_in_manager.index[rank_in_manager >= params.manager_capacity_per_week]
    out["overflowed"] = False
    if len(overflow_idx):
        text = params.overflow.action_in(language, fallback_language)
        _apply(out, overflow_idx, params.overflow, "automated", text)
        out.loc[overflow_idx, "overflowed"] = True
        lost = overflow_idx[out.loc[overflow_idx, "expected_net_benefit"] <= 0]
        out.loc[lost, ["rule", "action", "channel", "owner"]] = [NO_ACTION, "", "", ""]
        out.loc[lost, ["action_cost", "save_rate", "expected_net_benefit"]] = 0.0

    out["on_list"] = out["rule"] != NO_ACTION
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
    overflowed = frame["overflowed"].astype(bool) if "overflowed" in frame else on & False
    rules = {r.name: r for r in params.playbook}
    for language in sorted(set(languages[on])):
        mine = on & (languages == language)
        if (mine & overflowed).any():
            texts[mine & overflowed] = params.overflow.action_in(language, fallback_language)
        named = frame.loc[mine & ~overflowed, "rule"]
        by_rule = {n: rules[n].action_in(language, fallback_language) for n in set(named)}
        texts[named.index] = named.map(by_rule)
    return texts
