"""Customer value: what keeping a customer is worth over the value horizon.

value_if_retained = max(monetary_total, 0) / max(tenure_days, 30) × value_horizon_days

The customer's own net spend rate since their first purchase (tenure floored at 30 days
so a one-day-old customer's first order is not annualised into a fortune), projected
over ``value_horizon_days``. value_at_risk = p_churn × value_if_retained.

Lapsed customers have no p_churn (NaN: the model is not trained on them) and so no value
at risk (NaN): they are already gone, so none of their value is at risk of a future loss.
Their value_if_retained is still what winning them back is worth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MIN_TENURE_DAYS = 30


def value_if_retained(frame: pd.DataFrame, value_horizon_days: int) -> pd.Series:
    """Expected spend over the next ``value_horizon_days`` if the customer stays."""
    spend = frame["monetary_total"].astype(float).clip(lower=0)
    tenure = frame["tenure_days"].astype(float).clip(lower=MIN_TENURE_DAYS)
    return (spend / tenure * value_horizon_days).round(2).rename("value_if_retained")


def value_at_risk(p_churn: pd.Series | np.ndarray, value: pd.Series) -> pd.Series:
    """P(churn) × value if retained; NaN where p_churn is NaN (lapsed customers)."""
    return (
        (pd.Series(np.asarray(p_churn, dtype=float), index=value.index) * value)
        .round(2)
        .rename("value_at_risk")
    )
