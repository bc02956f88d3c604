"""Scoring logic, pure: a feature snapshot and a scorer → ranked, costed, explained lists.

Everything ``churnguard score`` computes lives here and reads nothing but frames, dicts and
params: risk, value, actions and reasons per customer (:func:`score_frame`), the change
since the previous list, the columns people read, one list per manager, the model-quality,
drift and freshness warnings, and ``summary.json``. :mod:`churnguard.score` does the I/O
around it (the lock, the model, the engine that builds the snapshot, the previous list,
the files); the import contract (``tests/unit/test_layout.py``) keeps this module pure.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from churnguard.actions import (
    NO_ACTION,
    RISK_ORDER,
    action_texts,
    assign_actions,
    due_dates,
    risk_band,
    value_tier,
)
from churnguard.baselines import BASELINE_LABELS, MODEL, SCORER_LABELS
from churnguard.config import FeaturesParams, ReportParams, ScoreParams
from churnguard.drift import drift_summary, population_stability
from churnguard.errors import DataError
from churnguard.explain import phrase, top_reasons
from churnguard.formulas import is_formula_like
from churnguard.i18n import (
    Notice,
    left_list_action,
    manager_languages,
    notice_codes,
    reader,
    unmatched_managers,
)
from churnguard.timing import timed
from churnguard.value import (
    fit_value_prior,
    value_at_risk,
    value_if_retained,
    value_summary,
)

log = logging.getLogger(__name__)


@runtime_checkable
class Scorer(Protocol):
    """What scoring needs from a model once the engine has run it (``ChurnModel``, a
    baseline scorer, or a stand-in holding probabilities the engine computed)."""

    features: list[str]

    def check_features(self, frame: pd.DataFrame) -> None: ...
    def predict(self, frame: pd.DataFrame) -> Any: ...
    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame: ...


class ScorerInfo(Protocol):
    """What the lists record about the scorer that ranked them
    (:class:`churnguard.modeling.LoadedModel`)."""

    @property
    def model(self) -> Any: ...  # its ``metadata`` dict: test cutoff, label horizon
    @property
    def ref(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def digest(self) -> str: ...
    @property
    def scorer(self) -> str: ...
    @property
    def registered_at(self) -> str | None: ...
    @property
    def evaluation(self) -> dict[str, Any] | None: ...  # test-cutoff metrics per scorer
    @property
    def selection(self) -> list[str]: ...  # why the gate chose it
    @property
    def drift_reference(self) -> dict[str, Any] | None: ...  # training feature profile


OWNER_LABEL = {"account_manager": "account manager", "automated": "automated", "": ""}

# risk_list.csv: its columns in order, with the types it is read back with (previous list)
RISK_LIST_SCHEMA: dict[str, str] = {
    "customer_id": "str",
    "customer_name": "str",
    "account_manager": "str",
    "region": "str",
    "rank": "int",
    "churn_risk_pct": "float",
    "risk_band": "str",
    "value_if_retained": "float",
    "value_at_risk": "float",
    "value_tier": "str",
    "rfm_segment": "str",
    "lapsed": "int",
    "recommended_action": "str",
    "action": "str",
    "owner": "str",
    "channel": "str",
    "action_cost": "float",
    "save_rate": "float",
    "expected_net_benefit": "float",
    "reasons": "str",
    "last_purchase_date": "str",
    "recency_days": "int",
    "usual_gap_days": "Int64",
    "expected_next_order_date": "str",
    "days_overdue": "Int64",
    "change": "str",
    "p_churn": "float",
    "scored_by": "str",
    "arm": "str",  # treated | control (held out: on no manager's list) | "" (no action)
}
RISK_LIST_COLUMNS = list(RISK_LIST_SCHEMA)
# what `change` needs from an earlier list (read with these types; other columns may differ)
PREVIOUS_SCHEMA = {
    k: RISK_LIST_SCHEMA[k]
    for k in (
        "customer_id",
        "customer_name",
        "account_manager",
        "rank",
        "risk_band",
        "p_churn",
        "last_purchase_date",
    )
}


MANAGER_COLUMNS = [
    "rank",
    "customer_id",
    "customer_name",
    "churn_risk_pct",
    "risk_band",
    "value_at_risk",
    "expected_net_benefit",
    "action",
    "recommended_action",
    "due_date",
    "owner",
    "channel",
    "reasons",
    "last_purchase_date",
    "usual_gap_days",
    "expected_next_order_date",
    "days_overdue",
    "change",
    "scored_by",
]


def model_quality(
    evaluation: dict[str, Any] | None,
    scorer: str = MODEL,
    selection: list[str] | None = None,
    warn_below_roc_auc: float = 0.6,
) -> tuple[dict[str, Any], list[str]]:
    """How good the scorer that made the lists is against the other scorers on its test
    cutoff, and warnings when that evidence is weak (not evaluated, a baseline ranks the
    lists, no lead, near chance)."""
    label = SCORER_LABELS.get(scorer, scorer)
    if not evaluation or not isinstance(evaluation.get(scorer), dict):
        return {"evaluated": False, "scorer": scorer, "scorer_label": label}, [
            Notice("not_evaluated", label=label)
        ]
    mine = evaluation[scorer]
    others = {
        k: v
        for k, v in evaluation.items()
        if k in BASELINE_LABELS
        and k != scorer
        and isinstance(v, dict)
        and v.get("roc_auc") is not None
    }
    auc = mine.get("roc_auc")
    quality: dict[str, Any] = {
        "evaluated": True,
        "scorer": scorer,
        "scorer_label": label,
        "roc_auc": auc,
        "pr_auc": mine.get("pr_auc"),
        "brier": mine.get("brier"),
        "baselines_roc_auc": {k: v["roc_auc"] for k, v in sorted(others.items())},
        "selection": list(selection or []),
    }
    if scorer != MODEL and isinstance(evaluation.get(MODEL), dict):
        quality["model_roc_auc"] = evaluation[MODEL].get("roc_auc")
    warnings: list[str] = []
    if scorer != MODEL:
        detail = f" ({selection[0]})" if selection else ""
        warnings.append(Notice("baseline_ranks", label=label, detail=detail))
    if auc is None:
        warnings.append(Notice("auc_undefined", label=label))
        return quality, warnings
    if others:
        best = max(sorted(others), key=lambda k: others[k]["roc_auc"])
        lead = round(float(auc) - float(others[best]["roc_auc"]), 6)
        quality.update(
            best_baseline=best, best_baseline_label=BASELINE_LABELS[best], lead_roc_auc=lead
        )
        if lead <= 0 and scorer == MODEL:
            warnings.append(
                Notice(
                    "no_lead",
                    baseline=BASELINE_LABELS[best],
                    baseline_auc=float(others[best]["roc_auc"]),
                    auc=float(auc),
                )
            )
    if auc < warn_below_roc_auc:
        warnings.append(
            Notice("weak_auc", label=label, auc=float(auc), threshold=warn_below_roc_auc)
        )
    return quality, warnings


def scored_by(loaded: ScorerInfo) -> str:
    """Every row says which scorer ranked it: 'LightGBM model v12' or
    'baseline: days since last purchase (from folder)'."""
    label = SCORER_LABELS.get(loaded.scorer, loaded.scorer)
    if loaded.version.isdigit():
        version = f"v{loaded.version}"
    else:
        version = "from folder" if loaded.version == "file" else loaded.version
    return f"{label} {version}" if loaded.scorer == MODEL else f"baseline: {label} ({version})"


def data_drift(
    snapshot: pd.DataFrame, reference: dict[str, Any] | None, threshold: float
) -> tuple[dict[str, Any], list[str]]:
    """PSI of each model feature between the scorer's training rows and the active
    (non-lapsed) customers scored now; a warning naming the top shifts above ``threshold``."""
    if not reference:
        return {"measured": False}, [Notice("drift_unmeasured")]
    active = snapshot[snapshot["lapsed"] == 0] if "lapsed" in snapshot.columns else snapshot
    present = [f for f in reference.get("features", {}) if f in active.columns]
    if active.empty or not present:
        return {"measured": False}, []
    subset = {**reference, "features": {f: reference["features"][f] for f in present}}
    table = population_stability(subset, active)
    drift = {"measured": True, **drift_summary(table, threshold)}
    drift["psi"] = {r.feature: round(float(r.psi), 4) for r in table.itertuples()}
    warnings = []
    if drift["features_over"]:
        shifts = "; ".join(
            f"{t['feature']} PSI {t['psi']:.2f} ({t['top_bin']})"
            for t in drift["top"]
            if t["psi"] >= threshold
        )
        warnings.append(
            Notice("drift", n=len(drift["features_over"]), threshold=threshold, shifts=shifts)
        )
    return drift, warnings


def list_warnings(
    scored: pd.DataFrame, loaded: ScorerInfo, sp: ScoreParams, as_of: dt.date
) -> tuple[dict[str, Any], list[str]]:
    """Band concentration and scorer age: facts for summary.json and warnings with a fix."""
    warnings: list[str] = []
    bands = scored["risk_band"].value_counts()
    active = bands.drop(labels=["lapsed"], errors="ignore")
    facts: dict[str, Any] = {}
    if active.sum():
        top_band, n = str(active.idxmax()), int(active.max())
        share = n / int(active.sum())
        facts["largest_band"] = {"band": top_band, "share": round(share, 4)}
        if share > sp.warn_band_share:
            warnings.append(
                Notice("band_share", share=share, band=top_band, limit=sp.warn_band_share)
            )
    cutoff = loaded.model.metadata.get("test_cutoff")
    meta = loaded.model.metadata
    horizon = meta.get("label_horizon_days", meta.get("horizon_days"))  # chained: the base label
    if isinstance(cutoff, str) and isinstance(horizon, int):
        newest_label = dt.date.fromisoformat(cutoff) + dt.timedelta(days=horizon)
        age = (as_of - newest_label).days
        facts["scorer_age_days"] = age
        facts["scorer_newest_label"] = newest_label.isoformat()
        if age > sp.warn_champion_age_days:
            warnings.append(
                Notice("scorer_age", newest=newest_label, age=age, limit=sp.warn_champion_age_days)
            )
    if loaded.registered_at:
        facts["registered_at"] = loaded.registered_at
    return facts, warnings


def params_digest(sp: ScoreParams, fp: FeaturesParams, rp: ReportParams) -> str:
    payload = {
        "score": sp.model_dump(mode="json", exclude={"as_of", "output_root", "transactions"}),
        "lost_after_days": fp.lost_after_days,
        "horizon_days": fp.horizon_days,
        "report": rp.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def data_freshness(
    first_day: dt.date, last_day: dt.date, as_of: dt.date, horizon_days: int
) -> dict[str, Any]:
    """How old the data is at the as-of date, with a warning when the lists say more about
    the data's age than about churn (no purchase can be seen after the last transaction)."""
    silent = (as_of - last_day).days
    warnings = []
    if silent > horizon_days:
        warnings.append(
            Notice(
                "data_too_old",
                days=silent,
                as_of=as_of,
                last=last_day,
                horizon=horizon_days,
                last_iso=last_day,
            )
        )
    elif silent > 7:
        warnings.append(Notice("data_old", days=silent, as_of=as_of, last=last_day))
    return {
        "first_transaction": first_day.isoformat(),
        "last_transaction": last_day.isoformat(),
        "days_from_last_transaction_to_as_of": silent,
        "warnings": warnings,
    }


@timed("score_frame total")
def score_frame(
    snapshot: pd.DataFrame,
    model: Scorer,
    sp: ScoreParams,
    rp: ReportParams | None = None,
    horizon_days: int = FeaturesParams().horizon_days,
    *,
    as_of: dt.date | None = None,
    holdover: pd.Series | None = None,
) -> pd.DataFrame:
    """Pure core: snapshot → risk, value, action, benefit, rank and reasons per customer.

    ``action`` and ``reasons`` are in ``report.language`` (risk_list.csv, the report);
    ``manager_action`` and ``manager_reasons`` in the language of each customer's manager
    (``manager_language``: ``score.manager_languages``, else ``report.language``).

    ``as_of`` (the list date) draws the control group (``score.control_share``; none without
    it) and ``holdover`` keeps ongoing episodes' arms: see :mod:`churnguard.actions`.

    Lapsed customers (``lapsed`` = 1) are their own risk band, ``lapsed``: the model is
    never trained on them (train drops them), so their p_churn and value_at_risk are NaN.
    They still get win-back actions (net benefit with P = 1, see :mod:`churnguard.actions`)
    and, instead of model drivers, their recency as the reason. Value if retained is
    shrunk toward this population (:mod:`churnguard.value`; the fitted prior is in
    ``attrs["value_prior"]``), retained meaning a purchase within ``horizon_days``.
    """
    if snapshot.empty:
        raise DataError("empty population: no customer has a purchase on or before the as-of date")
    model.check_features(snapshot)
    scored = snapshot.copy()
    lapsed = scored["lapsed"].astype(bool).to_numpy()
    scored["p_churn"] = np.where(lapsed, np.nan, np.round(model.predict(scored), 6))
    prior = fit_value_prior(scored)
    scored["value_if_retained"] = value_if_retained(
        scored, sp.value_horizon_days, horizon_days, prior
    )
    scored["value_at_risk"] = value_at_risk(scored["p_churn"], scored["value_if_retained"])
    scored["risk_band"] = risk_band(scored["p_churn"], sp.risk_bands, scored["lapsed"])
    scored["value_tier"] = value_tier(scored["value_if_retained"], sp.value_tiers)
    rp = rp or ReportParams()
    scored = assign_actions(scored, sp, as_of, holdover, rp.language, rp.fallback_language)
    speaks = scored["account_manager"].map(manager_languages(scored["account_manager"], sp, rp))
    scored["manager_language"] = speaks
    scored["manager_action"] = action_texts(scored, sp, speaks, rp.fallback_language)
    scored["reasons"] = ""
    scored["manager_reasons"] = ""
    explained = customers_to_explain(scored, sp.explain_max_customers)
    scored["explained"] = False
    if len(explained) and sp.explain_top:
        lost = scored.loc[explained, "lapsed"].astype(bool).to_numpy()
        by_model, by_recency = explained[~lost], explained[lost]
        contrib = model.contributions(scored.loc[by_model]) if len(by_model) else None
        # report.language for every explained row, then each other language its readers'
        for lang in [rp.language, *sorted(set(speaks[explained]) - {rp.language})]:
            tr = reader(rp, lang)
            column = "reasons" if lang == rp.language else "manager_reasons"
            mine = by_model if lang == rp.language else by_model[speaks[by_model] == lang]
            if len(mine):
                scored.loc[mine, column] = top_reasons(
                    contrib.loc[mine], scored.loc[mine], sp.explain_top, tr
                )
            silent = by_recency if lang == rp.language else by_recency[speaks[by_recency] == lang]
            # no model score to explain: why they are lapsed is how long they have been silent
            rows = scored.loc[silent, ["recency_days", "gap_mean_days"]]
            scored.loc[silent, column] = [
                phrase("recency", r, tr) for r in rows.itertuples(index=False)
            ]
        scored.loc[explained, "explained"] = True
    same = speaks == rp.language
    scored.loc[same, "manager_reasons"] = scored.loc[same, "reasons"]
    scored.attrs["value_prior"] = prior
    return scored


def customers_to_explain(scored: pd.DataFrame, limit: int | None) -> pd.Index:
    """Listed customers who get reasons: every manual action (what account managers read),
    then automated actions by net benefit, best first, up to ``limit`` customers in all
    (``None``: every listed customer). Returned in the frame's own order. Lapsed customers
    (no p_churn, so after scored ones at equal benefit) share the budget."""
    listed = scored[scored["on_list"]]
    if limit is None or len(listed) <= limit:
        return listed.index
    manual = listed.index[listed["owner"] == "account_manager"]
    auto = listed[listed["owner"] != "account_manager"].sort_values(
        ["expected_net_benefit", "p_churn", "customer_id"],
        ascending=[False, False, True],
        kind="stable",
    )
    keep = manual.union(auto.index[: max(0, limit - len(manual))])
    return scored.index[scored.index.isin(keep)]


@timed("compare with previous")
def compare_with_previous(
    scored: pd.DataFrame, prev: pd.DataFrame | None
) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame]:
    """Change status per customer, recovered/dropped rows, and the biggest movers."""
    if prev is None:
        change = pd.Series(np.where(scored["on_list"], "first list", ""), index=scored.index)
        return change, pd.DataFrame(), pd.DataFrame()
    prev = prev.copy()
    prev["prev_on_list"] = prev["rank"].fillna(0).astype(int) > 0
    prev = prev.set_index("customer_id")
    cur = scored.set_index("customer_id")
    joined = cur[["on_list", "risk_band", "p_churn"]].join(
        prev[["prev_on_list", "risk_band", "p_churn"]].rename(
            columns={"risk_band": "prev_band", "p_churn": "p_prev"}
        ),
        how="left",
    )
    was = joined["prev_on_list"].fillna(False).astype(bool)
    up = joined["risk_band"].map(RISK_ORDER) - joined["prev_band"].map(RISK_ORDER).fillna(-1)
    status = np.select(
        [~joined["on_list"], ~was, up > 0, up < 0],
        ["", "new", "escalated", "de-escalated"],
        default="unchanged",
    )
    change = pd.Series(status, index=scored.index)
    off = prev[prev["prev_on_list"]].index.difference(cur.index[cur["on_list"]])
    gone = prev.loc[off, ["customer_name", "account_manager", "last_purchase_date"]].reset_index()
    if not gone.empty:
        now_last = cur["last_purchase_date"].astype(str).reindex(gone["customer_id"]).to_numpy()
        bought_again = (
            pd.Series(now_last).astype(str) > gone["last_purchase_date"].astype(str).to_numpy()
        )
        gone["change"] = np.where(bought_again.fillna(False), "recovered", "off list")
        # a recovered customer's last purchase is the new one (the one that recovered them)
        now = pd.to_datetime(cur["last_purchase_date"]).dt.strftime("%Y-%m-%d")
        now = now.reindex(gone["customer_id"]).to_numpy()
        gone["last_purchase_date"] = np.where(
            gone["change"] == "recovered", now, gone["last_purchase_date"].astype(str)
        )
        # current manager when still scored, else the previous one
        cur_mgr = cur["account_manager"].reindex(gone["customer_id"]).to_numpy()
        gone["account_manager"] = np.where(pd.isna(cur_mgr), gone["account_manager"], cur_mgr)
    movers = joined.dropna(subset=["p_prev"]).assign(delta=lambda f: f["p_churn"] - f["p_prev"])
    movers = movers.join(cur[["customer_name", "account_manager"]]).reset_index()
    movers = movers.sort_values(["delta", "customer_id"], kind="stable")
    return change, gone.sort_values("customer_id", kind="stable").reset_index(drop=True), movers


@timed("present columns")
def present_columns(scored: pd.DataFrame) -> pd.DataFrame:
    """Columns as people read them: percentages, dates as ISO text, readable owner.

    Lapsed customers have no churn_risk_pct, p_churn or value_at_risk: NaN, an empty cell
    in the CSVs (read back as NaN by ``RISK_LIST_SCHEMA``'s ``float``)."""
    out = pd.DataFrame(index=scored.index)
    out["customer_id"] = scored["customer_id"]
    out["customer_name"] = scored["customer_name"].fillna("")
    out["account_manager"] = scored["account_manager"]
    out["region"] = scored["region"].fillna("")
    out["rank"] = scored["rank"].astype(int)
    out["churn_risk_pct"] = (scored["p_churn"] * 100).round(1)
    for col in ("risk_band", "value_if_retained", "value_at_risk", "value_tier", "rfm_segment"):
        out[col] = scored[col]
    out["lapsed"] = scored["lapsed"].astype(int)
    out["recommended_action"] = scored["action"]
    out["action"] = scored["rule"].where(scored["rule"] != NO_ACTION, "")
    out["owner"] = scored["owner"].map(OWNER_LABEL)
    out["channel"] = scored["channel"]
    out["action_cost"] = scored["action_cost"].round(2)
    out["save_rate"] = scored["save_rate"].round(4)
    out["expected_net_benefit"] = scored["expected_net_benefit"].round(2)
    out["reasons"] = scored["reasons"]
    last = pd.to_datetime(scored["last_purchase_date"])
    out["last_purchase_date"] = last.dt.strftime("%Y-%m-%d")
    out["recency_days"] = scored["recency_days"].astype(int)
    gap = scored["gap_mean_days"].round(0)
    out["usual_gap_days"] = gap.astype("Int64")
    nxt = last + pd.to_timedelta(gap, unit="D")
    # a past date says nothing to act on: how many days overdue instead (0 = not yet due)
    overdue = (scored["recency_days"] - gap).clip(lower=0).astype("Int64")
    not_yet_due = (overdue == 0).fillna(False).astype(bool)
    out["expected_next_order_date"] = nxt.dt.strftime("%Y-%m-%d").where(not_yet_due, "")
    out["expected_next_order_date"] = out["expected_next_order_date"].fillna("")
    out["days_overdue"] = overdue
    out["change"] = scored["change"]
    out["p_churn"] = scored["p_churn"]
    out["scored_by"] = scored["scored_by"] if "scored_by" in scored.columns else ""
    out["arm"] = scored["arm"]
    return out[RISK_LIST_COLUMNS]


@timed("manager lists")
def manager_lists(
    present: pd.DataFrame,
    gone: pd.DataFrame,
    *,
    as_of: dt.date | None = None,
    due_within_days: int = 7,
    capacity: int = 25,
    local: pd.DataFrame | None = None,
    languages: Mapping[str, str] | None = None,
) -> dict[str, pd.DataFrame]:
    """One short list per manager: their own (manual) actions in rank order, each with a due
    date (:func:`churnguard.actions.due_dates`; empty without ``as_of``), then customers who
    left the list since last time. Automated actions stay in risk_list.csv.

    Texts are in each manager's language: ``recommended_action`` and ``reasons`` from
    ``local``'s ``manager_action`` / ``manager_reasons`` (aligned with ``present``; without
    it, ``present``'s own), the rows of customers who left in ``languages[manager]`` (else
    English). Column names, codes, numbers and dates stay as they are."""
    lists: dict[str, pd.DataFrame] = {}
    managers = sorted(
        set(present["account_manager"]) | set(gone.get("account_manager", pd.Series(dtype=str)))
    )
    for manager in managers:
        mine = present[
            (present["account_manager"] == manager)
            & (present["rank"] > 0)
            & (present["owner"] == OWNER_LABEL["account_manager"])
        ]
        mine = mine.sort_values("rank", kind="stable")
        due = due_dates(len(mine), as_of, due_within_days, capacity) if as_of else []
        mine = mine.assign(due_date=[d.isoformat() for d in due] if as_of else "")
        mine = mine[MANAGER_COLUMNS]
        if local is not None:
            mine = mine.assign(
                recommended_action=local.loc[mine.index, "manager_action"].astype(
                    mine["recommended_action"].dtype
                ),
                reasons=local.loc[mine.index, "manager_reasons"].astype(mine["reasons"].dtype),
            )
        lang = (languages or {}).get(manager, "en")
        if not gone.empty:
            left = gone[gone["account_manager"] == manager]
            if not left.empty:
                extra = pd.DataFrame(
                    {c: pd.Series([pd.NA] * len(left), dtype=object) for c in MANAGER_COLUMNS}
                )
                extra["customer_id"] = left["customer_id"].to_numpy()
                extra["customer_name"] = left["customer_name"].to_numpy()
                extra["last_purchase_date"] = left["last_purchase_date"].astype(str).to_numpy()
                extra["change"] = left["change"].to_numpy()
                extra["recommended_action"] = [
                    left_list_action(c, lang) for c in left["change"].to_numpy()
                ]
                mine = pd.concat([mine.astype(object), extra], ignore_index=True)
        lists[manager] = mine.reset_index(drop=True)
    return lists


def build_summary(
    scored: pd.DataFrame, as_of: dt.date, model: ScorerInfo, extra: dict[str, Any]
) -> dict[str, Any]:
    """summary.json. Value at risk totals cover active customers only (a lapsed customer's
    is NaN, skipped); ``risk_band_counts`` includes the ``lapsed`` band."""
    on = scored[scored["on_list"]]
    per_manager = {
        str(m): {
            "on_list": int(len(g)),
            "manual": int((g["owner"] == "account_manager").sum()),
            "automated": int((g["owner"] == "automated").sum()),
            "value_at_risk": round(float(g["value_at_risk"].sum()), 2),
            "expected_net_benefit": round(float(g["expected_net_benefit"].sum()), 2),
        }
        for m, g in on.groupby("account_manager", sort=True)
    }
    return {
        "as_of": as_of.isoformat(),
        "model": {"ref": model.ref, "version": model.version, "digest": model.digest},
        "customers_scored": int(len(scored)),
        "customers_on_lists": int(len(on)),
        "customers_explained": int(scored["explained"].sum()) if "explained" in scored else 0,
        "manual_actions": int((on["owner"] == "account_manager").sum()),
        "automated_actions": int((on["owner"] == "automated").sum()),
        "overflowed": int(scored["overflowed"].sum()),
        "lapsed": int(scored["lapsed"].sum()),
        # written exactly (never altered), so a spreadsheet opening the CSV may run them
        "ids_spreadsheets_may_misread": int(scored["customer_id"].map(is_formula_like).sum()),
        "risk_band_counts": {b: int((scored["risk_band"] == b).sum()) for b in RISK_ORDER},
        "value_at_risk_total": round(float(scored["value_at_risk"].sum()), 2),
        "expected_net_benefit_total": round(float(on["expected_net_benefit"].sum()), 2),
        "actions": {str(k): int(v) for k, v in on["rule"].value_counts().sort_index().items()},
        "managers": per_manager,
        **extra,
        # each warning's code and parameters, so pages can say it in their reader's language
        "warning_codes": notice_codes(extra.get("warnings") or []),
    }


@dataclass(frozen=True)
class ScoredLists:
    """One run's lists, before anything is written."""

    scored: pd.DataFrame  # every customer (score_frame), with scored_by and change
    present: pd.DataFrame  # risk_list.csv: the columns as people read them
    lists: dict[str, pd.DataFrame]  # one list per manager
    movers: pd.DataFrame  # P(churn) moves since the previous list, biggest fall first
    gone: pd.DataFrame  # off the list since the previous one (held-out customers left out)
    summary: dict[str, Any]  # summary.json, without the per-manager file names


def build_lists(
    snapshot: pd.DataFrame,
    model: Scorer,
    loaded: ScorerInfo,
    sp: ScoreParams,
    fp: FeaturesParams,
    rp: ReportParams,
    *,
    as_of: dt.date,
    inputs: dict[str, Any],
    freshness: dict[str, Any],
    amount_basis: dict[str, Any],
    holdover: pd.DataFrame | None = None,
    previous: pd.DataFrame | None = None,
    previous_as_of: dt.date | None = None,
    previous_error: str | None = None,
) -> ScoredLists:
    """Everything one run writes, from the snapshot at ``as_of`` and the scorer for it.

    ``loaded`` says which scorer it is (and its evaluation and drift reference); ``inputs``
    (what keys the run) and ``freshness`` (:func:`data_freshness`) go into the summary as
    they are; ``amount_basis`` (:func:`churnguard.value.amount_basis`) says what the amounts
    are. ``holdover``: ongoing episodes' arms (customer_id, arm) from the ledger;
    ``previous``: the earlier list the change status compares with (dated
    ``previous_as_of``), or ``previous_error`` when it could not be read."""
    quality, quality_warnings = model_quality(
        loaded.evaluation, loaded.scorer, loaded.selection, sp.warn_below_roc_auc
    )
    scored = score_frame(
        snapshot,
        model,
        sp,
        rp,
        fp.horizon_days,
        as_of=as_of,
        holdover=None if holdover is None else holdover.set_index("customer_id")["arm"],
    )
    scored["scored_by"] = scored_by(loaded)
    drift, drift_warnings = data_drift(snapshot, loaded.drift_reference, sp.drift_psi_threshold)
    health, health_warnings = list_warnings(scored, loaded, sp, as_of)
    change, gone, movers = compare_with_previous(scored, previous)
    if not gone.empty:  # a held-out customer is on no manager's file, not even "off list"
        gone = gone[
            ~gone["customer_id"].isin(scored.loc[scored["arm"] == "control", "customer_id"])
        ]
    scored["change"] = change
    present = present_columns(scored)
    readers = set(scored["account_manager"]) | set(gone.get("account_manager", []))
    lists = manager_lists(
        present,
        gone,
        local=scored[["manager_action", "manager_reasons"]],
        languages=manager_languages(readers, sp, rp),
        as_of=as_of,
        due_within_days=rp.due_within_days,
        capacity=sp.manager_capacity_per_week,
    )
    unmatched = unmatched_managers(readers, sp)
    language_warnings = (
        [Notice("unmatched_managers", names=", ".join(map(repr, unmatched)))] if unmatched else []
    )
    for warning in language_warnings:
        log.warning(warning)
    summary = build_summary(
        scored,
        as_of,
        loaded,
        {
            "previous_list": previous_as_of.isoformat() if previous_as_of else None,
            **({"previous_list_ignored": previous_error} if previous_error else {}),
            "recovered": int((gone.get("change", pd.Series(dtype=str)) == "recovered").sum()),
            "inputs": inputs,
            "data_freshness": freshness,
            "model_quality": {**quality, **health},
            "drift": drift,
            "control_group": {
                "share": sp.control_share,
                "customers": int((scored["arm"] == "control").sum()),
                "actions": {
                    str(k): int(v)
                    for k, v in scored.loc[scored["arm"] == "control", "rule"]
                    .value_counts()
                    .sort_index()
                    .items()
                },
            },
            "value": value_summary(
                scored,
                scored.attrs["value_prior"],
                sp.value_horizon_days,
                fp.horizon_days,
                amount_basis,
            ),
            "warnings": [
                *quality_warnings,
                *freshness["warnings"],
                *drift_warnings,
                *health_warnings,
                *language_warnings,
            ],
        },
    )
    return ScoredLists(scored, present, lists, movers, gone, summary)


def snapshot_mismatch(
    meta: Mapping[str, Any],
    *,
    as_of: dt.date,
    lost_after_days: int,
    transactions_md5: str,
    snapshot_md5: str,
) -> list[str]:
    """Why a snapshot the features stage wrote is not the one this run would build, from
    the record beside it (:func:`churnguard.feature_defs.current_meta`); empty when it is.

    The scoring snapshot depends on the transactions, the as-of date and
    ``features.lost_after_days`` only (the BTYD columns are fitted again when the scorer
    needs them), so a match on all three, and on the file's own digest, means the same rows
    as building it here."""
    problems = []
    if meta.get("snapshot_md5") != snapshot_md5:
        problems.append("the file changed since `churnguard features` wrote it")
    if meta.get("as_of") != as_of.isoformat():
        problems.append(
            f"it was built for as-of {meta.get('as_of')}, this run scores at {as_of} "
            "(features.as_of and score.as_of / --as-of must agree)"
        )
    if meta.get("lost_after_days") != lost_after_days:
        problems.append(
            f"it was built with features.lost_after_days {meta.get('lost_after_days')}, "
            f"params.yaml now says {lost_after_days}"
        )
    if meta.get("transactions_md5") != transactions_md5:
        problems.append(
            f"it was built from other transactions ({meta.get('transactions')} as it was "
            "then) than the ones scored now"
        )
    return problems
