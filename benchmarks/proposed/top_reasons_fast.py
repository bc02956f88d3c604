"""Proposed drop-in replacement for churnguard.explain.top_reasons (same output, no iterrows).

The current version walks ``grouped.iterrows()`` and takes ``snapshot.loc[idx]`` for every
listed customer (two pandas Series built per row); this one ranks the groups with one numpy
argsort and reads the few snapshot columns the phrases use through ``itertuples``
(attribute access works the same on a namedtuple as on a row Series).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnguard.explain import FEATURE_GROUP, PHRASES

PHRASE_COLUMNS = (
    "recency_days", "gap_mean_days", "gap_std_days", "spend_90d", "spend_prev_90d",
    "orders_90d", "orders_prev_90d", "purchase_days", "tenure_days", "monetary_total",
    "avg_order_value", "returned_share", "distinct_products",
)


def top_reasons(contrib: pd.DataFrame, snapshot: pd.DataFrame, k: int = 3) -> pd.Series:
    if contrib.empty or k == 0:
        return pd.Series("", index=snapshot.index, name="reasons", dtype=object)
    grouped = contrib.T.groupby(lambda f: FEATURE_GROUP.get(f, "other")).sum().T
    grouped = grouped.drop(columns=["other"], errors="ignore")
    names = list(grouped.columns)  # sorted by name: a stable sort on -value breaks ties by name
    values = grouped.to_numpy()
    order = np.argsort(-values, axis=1, kind="stable")
    positive = np.take_along_axis(values, order, axis=1) > 0
    phrases = [PHRASES[g] for g in names]
    rows = snapshot.loc[grouped.index, [c for c in PHRASE_COLUMNS if c in snapshot.columns]]
    texts = []
    for row, ranked, pos in zip(rows.itertuples(index=False), order.tolist(), positive.tolist(), strict=True):
        said: list[str] = []
        for j, g in enumerate(ranked):
            if not pos[j]:
                break
            text = phrases[g](row)
            if text and text not in said:
                said.append(text)
                if len(said) == k:
                    break
        texts.append(" | ".join(said))
    return pd.Series(texts, index=grouped.index, name="reasons", dtype=object)
