"""What a snapshot is: the feature dictionary, the SQL that computes it, the cutoff grid,
labels and the population checks. Pure definitions shared by every engine.

One SQL definition (``sql/features.sql``) builds every snapshot: the rolling training
snapshots (one per cutoff on a grid, labelled) and the scoring snapshot at the as-of
date (unlabelled). A snapshot at cutoff ``c`` sees only transactions dated on or before
``c``; its label ``churned`` is 1 when the customer has no purchase day in
``(c, c + horizon_days]``. Customers silent for more than ``lost_after_days`` at ``c``
are flagged ``lapsed``: they belong to win-back, not to the churn model's training rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pandas as pd

from churnguard.config import FeaturesParams
from churnguard.errors import DataError
from churnguard.horizon import Plan, chain_cutoffs, plan_training

log = logging.getLogger(__name__)

FEATURES_SQL = "sql/features.sql"
SNAPSHOTS_FILE = "snapshots.parquet"
CURRENT_FILE = "current.parquet"
# what current.parquet was built from: `churnguard score --snapshot` scores it only when it
# is the snapshot the run would build (churnguard.scoring.snapshot_mismatch)
CURRENT_META_FILE = "current.json"
CUTOFFS_FILE = "cutoffs.json"
CHAIN_FILE = "chain.parquet"  # chained plans: snapshots that calibrate the chained horizon
WINDOWS_DAYS = (30, 90, 180, 365)


@dataclass(frozen=True)
class Column:
    name: str
    role: str  # key | attribute | feature | label | info
    description: str


# The feature dictionary. Order and names must match sql/features.sql (a test checks it);
# docs/features.md is generated from this list by `churnguard features --describe`.
COLUMNS: tuple[Column, ...] = (
    Column(
        "cutoff_date", "key", "Snapshot date; only transactions dated on or before it are seen."
    ),
    Column("customer_id", "key", "Customer identifier, as in the source (string)."),
    Column(
        "account_manager",
        "attribute",
        "Account manager on the customer's latest line up to the cutoff.",
    ),
    Column("customer_name", "attribute", "Customer name on the latest line up to the cutoff."),
    Column("region", "attribute", "Region on the latest line up to the cutoff."),
    Column("first_purchase_date", "info", "Date of the first purchase."),
    Column("last_purchase_date", "info", "Date of the latest purchase up to the cutoff."),
    Column("recency_days", "feature", "Days from the last purchase to the cutoff."),
    Column("tenure_days", "feature", "Days from the first purchase to the cutoff."),
    Column("purchase_days", "feature", "Distinct days with a purchase (frequency)."),
    Column("orders", "feature", "Orders (distinct order ids per day) with a purchase line."),
    Column("monetary_total", "feature", "Net spend: sum of all line amounts, returns included."),
    Column("avg_order_value", "feature", "Gross purchase value divided by orders."),
    Column("max_order_value", "feature", "Largest single order value."),
    Column("last_day_spend", "feature", "Gross purchase value on the last purchase day."),
    Column(
        "units_total",
        "feature",
        "Units bought: sum of quantity on purchase lines (empty when the data has no quantity).",
    ),
    Column("units_per_order", "feature", "units_total / orders: the usual basket size."),
    Column("avg_unit_price", "feature", "Gross purchase value / units_total."),
    Column("max_order_units", "feature", "Most units in a single order."),
    Column("last_day_units", "feature", "Units bought on the last purchase day."),
    Column(
        "first_day_spend",
        "feature",
        "Gross purchase value on the first purchase day (the same at every cutoff).",
    ),
    Column("first_day_units", "feature", "Units bought on the first purchase day."),
    Column(
        "gap_mean_days",
        "feature",
        "Mean days between consecutive purchase days (empty for one-time buyers).",
    ),
    Column(
        "gap_std_days", "feature", "Standard deviation of those gaps (needs three purchase days)."
    ),
    Column("gap_last_days", "feature", "Gap between the last two purchase days."),
    Column(
        "recency_to_gap",
        "feature",
        "recency_days / gap_mean_days: how overdue the customer is against their own rhythm.",
    ),
    *(
        Column(f"orders_{w}d", "feature", f"Orders in the {w} days up to the cutoff.")
        for w in WINDOWS_DAYS
    ),
    Column("orders_prev_90d", "feature", "Orders in the 90 days before the last 90."),
    *(
        Column(f"spend_{w}d", "feature", f"Net spend in the {w} days up to the cutoff.")
        for w in WINDOWS_DAYS
    ),
    Column("spend_prev_90d", "feature", "Net spend in the 90 days before the last 90."),
    Column(
        "orders_trend_90d",
        "feature",
        "(orders_90d − orders_prev_90d) / (orders_90d + orders_prev_90d), in [−1, 1].",
    ),
    Column(
        "spend_trend_90d",
        "feature",
        "(spend_90d − spend_prev_90d) / (|spend_90d| + |spend_prev_90d|), in [−1, 1].",
    ),
    Column("returned_share", "feature", "Returned value / gross purchase value."),
    Column(
        "distinct_products",
        "feature",
        "Distinct product ids bought (0 when the data has no product column).",
    ),
    Column("one_time_buyer", "feature", "1 when the customer has exactly one purchase day."),
    Column(
        "purchase_days_per_30d",
        "feature",
        "Purchase days per 30 days of tenure (tenure floored at 30 days): frequency that means "
        "the same at every cutoff.",
    ),
    Column(
        "spend_per_30d",
        "feature",
        "Net spend per 30 days of tenure (tenure floored at 30 days).",
    ),
    Column(
        "recency_to_tenure",
        "feature",
        "recency_days / tenure_days: the share of the customer's life spent silent (1 for "
        "one-time buyers).",
    ),
    Column(
        "r_score",
        "feature",
        "Recency quintile within the cutoff, 5 = most recent (ties share a score).",
    ),
    Column(
        "f_score",
        "feature",
        "Frequency (purchase days) quintile within the cutoff, 5 = most frequent.",
    ),
    Column("m_score", "feature", "Monetary (net spend) quintile within the cutoff, 5 = highest."),
    Column("rfm_score", "feature", "r_score + f_score + m_score (3–15)."),
    Column(
        "rfm_segment",
        "attribute",
        "Named RFM segment from r_score and FM = round((f+m)/2); see the map below.",
    ),
    Column(
        "lapsed",
        "info",
        "1 when recency_days > features.lost_after_days: win-back, excluded from training rows.",
    ),
    Column(
        "churned",
        "label",
        "1 when no purchase day falls in (cutoff, cutoff + horizon_days]; empty in the scoring snapshot.",
    ),
)
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
MODEL_FEATURES: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.role == "feature")

# Optional columns (features.btyd_features) appended after the SQL by the engine, from each
# cutoff's own rows (churnguard.btyd_features); models trained with them need them to score.
BTYD_COLUMNS: tuple[Column, ...] = (
    Column(
        "btyd_p_alive",
        "feature",
        "Optional (features.btyd_features). P(alive) under an MBG/NBD fitted by maximum "
        "likelihood on every customer of this cutoff (x repeat days, first-to-last, tenure).",
    ),
    Column(
        "btyd_rate_30d",
        "feature",
        "Optional. Expected purchase days per 30 days if alive: 30·(r + x)/(alpha + T), the "
        "purchase rate shrunk to the cutoff's population.",
    ),
    Column(
        "btyd_no_purchase_90d",
        "feature",
        "Optional. MBG/NBD P(no purchase day in the 90 days after the cutoff).",
    ),
)
BTYD_FEATURES: tuple[str, ...] = tuple(c.name for c in BTYD_COLUMNS)


def with_btyd(frame: pd.DataFrame, enabled: bool) -> pd.DataFrame:
    """``frame`` with the BTYD columns appended when ``enabled`` (fitted per cutoff)."""
    if not enabled:
        return frame
    from churnguard.btyd_features import add_btyd_features

    return add_btyd_features(frame)


def needs_btyd(scorer: Any) -> bool:
    """Whether a scorer's features include the BTYD columns (scoring must add them)."""
    return bool(set(getattr(scorer, "features", None) or ()) & set(BTYD_FEATURES))


RFM_SEGMENTS: tuple[tuple[str, str], ...] = (
    ("Champions", "R ≥ 4 and FM ≥ 4"),
    ("Loyal", "R = 3 and FM ≥ 4"),
    ("Potential loyalist", "R ≥ 4 and FM 2–3"),
    ("New", "R = 5 and FM = 1"),
    ("Promising", "R = 4 and FM = 1"),
    ("Needs attention", "R = 3 and FM ≤ 3"),
    ("Can't lose them", "R ≤ 2 and FM = 5"),
    ("At risk", "R ≤ 2 and FM 3–4"),
    ("Hibernating", "R = 2 and FM ≤ 2"),
    ("Lost", "R = 1 and FM ≤ 2"),
)


def feature_sql() -> str:
    """The single feature definition (DuckDB dialect; sqlglot transpiles it to Spark SQL)."""
    return resources.files("churnguard").joinpath(FEATURES_SQL).read_text(encoding="utf-8")


def describe_markdown(params: FeaturesParams | None = None) -> str:
    """The feature dictionary as Markdown, generated from :data:`COLUMNS`."""
    p = params or FeaturesParams()
    out = [
        "# Feature dictionary",
        "",
        "Generated by `churnguard features --describe` from `src/churnguard/feature_defs.py`;",
        "do not edit by hand. Every value at a cutoff is computed only from transactions",
        "dated on or before the cutoff (`src/churnguard/sql/features.sql`).",
        "",
        f"Label: `churned` = no purchase in (cutoff, cutoff + `features.horizon_days`] "
        f"(default {p.horizon_days} days). A purchase line has amount ≥ 0; negative lines "
        "are returns. Population at a cutoff: customers with at least one purchase on or "
        f"before it. `lapsed` customers (silent more than `features.lost_after_days`, "
        f"default {p.lost_after_days} days) stay in the snapshots but are left out of "
        "training rows: they need win-back, not churn prevention.",
        "",
        "| column | role | description |",
        "|---|---|---|",
    ]
    out += [f"| `{c.name}` | {c.role} | {c.description} |" for c in (*COLUMNS, *BTYD_COLUMNS)]
    out += ["", "## RFM segments", "", "| segment | rule (first match wins) |", "|---|---|"]
    out += [f"| {name} | {rule} |" for name, rule in RFM_SEGMENTS]
    return "\n".join(out) + "\n"


def plan_cutoffs(
    data_min: dt.date, data_max: dt.date, params: FeaturesParams
) -> tuple[dt.date, list[dt.date]]:
    """Return (as_of, labelled cutoffs oldest first) of the training plan
    (:func:`churnguard.horizon.plan_training`), or raise :class:`DataError` saying what fits.

    Direct: the latest labelled cutoff is ``as_of − horizon_days`` so its whole label
    window lies inside the data; earlier ones step back by ``cutoff_step_days``. Chained:
    the base horizon's grid. Each cutoff has at least one day of history before it.
    """
    plan = plan_training(data_min, data_max, params)
    if plan.as_of > data_max:
        log.warning("features.as_of %s is after the last transaction (%s)", plan.as_of, data_max)
    return plan.as_of, plan.cutoffs


def cutoff_table(
    cutoffs: list[dt.date], horizon_days: int | None, lost_after_days: int
) -> pd.DataFrame:
    """The ``cutoffs`` input of the SQL: dates and window bounds, no parameters in SQL."""
    days = dt.timedelta
    return pd.DataFrame(
        {
            "cutoff_date": pd.to_datetime(cutoffs).date,
            "horizon_end": [c + days(horizon_days) if horizon_days else None for c in cutoffs],
            **{f"d{w}": [c - days(w) for c in cutoffs] for w in WINDOWS_DAYS},
            "lost_after_days": [lost_after_days] * len(cutoffs),
        }
    ).astype({"horizon_end": "object"})


def run_summary(
    per_cutoff: list[tuple[Any, ...]],
    n_cutoffs: int,
    n_tx: int,
    data_range_: tuple[dt.date, dt.date],
    as_of: dt.date,
    horizon_days: int,
    n_snap: int,
    n_cur: int,
    plan: Plan | None = None,
) -> dict[str, Any]:
    """Check the populations and build ``cutoffs.json`` from per-cutoff counts (any engine).

    ``horizon_days`` is the snapshots' label horizon; ``plan`` (what train follows) is
    recorded under ``plan``.

    ``per_cutoff`` rows: (cutoff_date, customers, churned, lapsed, churn rate among active).
    """
    if n_cur == 0:
        raise DataError(
            f"empty population at as-of {as_of}: no customer has a purchase on or before it"
        )
    empty = [str(row[0]) for row in per_cutoff if row[1] == 0]
    if len(per_cutoff) < n_cutoffs or empty:
        raise DataError(f"empty population at cutoff(s) {empty or 'some'}; move features.n_cutoffs")
    summary = {
        "transactions": n_tx,
        "data_min": str(data_range_[0]),
        "data_max": str(data_range_[1]),
        "as_of": str(as_of),
        "horizon_days": horizon_days,
        "snapshot_rows": n_snap,
        "current_rows": n_cur,
        "cutoffs": [
            {
                "cutoff_date": str(c),
                "customers": int(n),
                "churned": int(ch or 0),
                "lapsed": int(la or 0),
                "churn_rate_active": round(float(rate), 6) if rate is not None else None,
            }
            for c, n, ch, la, rate in per_cutoff
        ],
    }
    if plan is not None:
        summary["plan"] = plan.to_dict()
    for row in summary["cutoffs"]:
        log.info(
            "cutoff %s: %s customers, %s lapsed, churn rate among active %s",
            row["cutoff_date"],
            f"{row['customers']:,}",
            f"{row['lapsed']:,}",
            "n/a" if row["churn_rate_active"] is None else f"{100 * row['churn_rate_active']:.1f}%",
        )
    return summary


def current_meta(
    as_of: str,
    lost_after_days: int,
    transactions: str,
    transactions_md5: str,
    snapshot_md5: str,
) -> dict[str, Any]:
    """``current.json``: what ``current.parquet`` (digest ``snapshot_md5``) was built from —
    the as-of date, ``features.lost_after_days`` and the transactions (path and digest), all
    the scoring snapshot depends on besides the SQL."""
    return {
        "as_of": as_of,
        "lost_after_days": lost_after_days,
        "transactions": transactions,
        "transactions_md5": transactions_md5,
        "snapshot_md5": snapshot_md5,
    }


CHAIN_KEYS = ("chain_origin", "chain_step")
SnapshotBuilder = Callable[[list[dt.date], int | None, dt.date], pd.DataFrame]


def assemble_chain(plan: Plan, build: SnapshotBuilder) -> pd.DataFrame:
    """``chain.parquet`` of a chained plan, from an engine's snapshot builder.

    ``build(cutoffs, horizon_days, data_end)`` returns the snapshots at ``cutoffs`` from the
    lines dated ≤ ``data_end`` (labelled when ``horizon_days``). For every chain origin o:
    the snapshots at o + k·h from the lines up to o (``chain_origin``, ``chain_step`` k),
    each customer active at o (not lapsed) with the realised target label at o
    (``churned_target``: no purchase in (o, o + H]). Empty for a direct plan.
    """
    parts = []
    for origin in plan.chain_origins:
        steps = chain_cutoffs(origin, plan.label_horizon_days, plan.target_horizon_days)
        snap = build(steps, None, origin)
        label = build([origin], plan.target_horizon_days, plan.as_of)
        label = label.loc[label["lapsed"] == 0, ["customer_id", "churned"]]
        snap = snap.merge(label.rename(columns={"churned": "churned_target"}), on="customer_id")
        step_of = {pd.Timestamp(c): k for k, c in enumerate(steps)}
        snap.insert(0, "chain_step", pd.to_datetime(snap["cutoff_date"]).map(step_of))
        snap.insert(0, "chain_origin", origin)
        parts.append(snap)
    if not parts:
        empty = {c: pd.Series(dtype="object") for c in (*CHAIN_KEYS, *COLUMN_NAMES)}
        return pd.DataFrame({**empty, "churned_target": pd.Series(dtype="Int64")})
    out = pd.concat(parts, ignore_index=True)
    out["chain_step"] = out["chain_step"].astype("int32")
    out["churned_target"] = out["churned_target"].astype("int32")
    return out.sort_values(
        ["chain_origin", "chain_step", "customer_id"], kind="stable"
    ).reset_index(drop=True)


# snapshot columns every prediction row carries: training keeps them beside the scores,
# the evaluate stage requires them
PREDICTION_COLUMNS = (
    "cutoff_date",
    "customer_id",
    "churned",
    "rfm_segment",
    "tenure_days",
    "recency_days",
    "monetary_total",
    "purchase_days",  # value if retained
)
