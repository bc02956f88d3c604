"""What-if patches for benchmarks/score.py --proposed (measures proposed package changes).

Imported in the scoring child process before run_score; replaces, in memory only:

* churnguard.score.top_reasons  -> top_reasons_fast.top_reasons (same texts, no iterrows)
* churnguard.io.excel_safe_frame -> vectorised prefix check (same bytes)
* with CG_EXPLAIN_SCOPE=manual: churnguard.score.score_frame explains (SHAP + texts) only the
  customers whose action a person carries out (owner account_manager); automated actions
  get no reasons. Default (unset / "listed"): every listed customer, as now.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import top_reasons_fast  # noqa: E402

from churnguard import io as cg_io  # noqa: E402
from churnguard import score as cg_score  # noqa: E402


def excel_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            continue
        if pd.api.types.is_datetime64_any_dtype(series):
            continue
        text = series.map(lambda v: v if isinstance(v, str) else None) if series.dtype == object else series
        hit = text.str.startswith(cg_io.FORMULA_PREFIXES, na=False).to_numpy(dtype=bool)
        if hit.any():
            series = series.astype(object).copy()
            series[hit] = "'" + series[hit].astype(str)
        out[col] = series
    return out


def score_frame_manual_reasons(snapshot, model, sp):
    from churnguard.actions import assign_actions, risk_band, value_tier
    from churnguard.errors import DataError
    from churnguard.value import value_at_risk, value_if_retained

    if snapshot.empty:
        raise DataError("empty population: no customer has a purchase on or before the as-of date")
    model.check_features(snapshot)
    scored = snapshot.copy()
    scored["p_churn"] = np.round(model.predict(scored), 6)
    scored["value_if_retained"] = value_if_retained(scored, sp.value_horizon_days)
    scored["value_at_risk"] = value_at_risk(scored["p_churn"], scored["value_if_retained"])
    scored["risk_band"] = risk_band(scored["p_churn"], sp.risk_bands)
    scored["value_tier"] = value_tier(scored["value_if_retained"], sp.value_tiers)
    scored = cg_score.assign_actions(scored, sp)
    scored["reasons"] = ""
    listed = scored.index[scored["on_list"] & (scored["owner"] == "account_manager")]
    if len(listed) and sp.explain_top:
        contrib = model.contributions(scored.loc[listed])
        scored.loc[listed, "reasons"] = cg_score.top_reasons(contrib, scored.loc[listed], sp.explain_top)
    return scored


cg_score.top_reasons = top_reasons_fast.top_reasons
cg_io.excel_safe_frame = excel_safe_frame
if os.environ.get("CG_EXPLAIN_SCOPE", "listed") == "manual":
    cg_score.score_frame = score_frame_manual_reasons
