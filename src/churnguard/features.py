"""The ``features`` stage (``churnguard features``): point-in-time snapshots on the
configured engine.

What a snapshot is — the feature dictionary, the SQL, the cutoff grid and the labels —
lives in :mod:`churnguard.feature_defs`; how it is computed lives in the engine
(:mod:`churnguard.engines`). This module wires the two and re-exports the definitions
and the DuckDB helpers under their historical names.
"""

from __future__ import annotations

from typing import Any

from churnguard.config import EngineParams, FeaturesParams
from churnguard.engines import get_engine
from churnguard.engines.duckdb import (  # noqa: F401 - re-exported
    AUTO_LINE_CUTOFFS_PER_GB,
    ROW_GROUP_ROWS,
    build_snapshot,
    concat_parts,
    cutoffs_per_query,
    data_range,
    memory_gb,
    remove_stale_parts,
    snapshot_frame,
)
from churnguard.feature_defs import (  # noqa: F401 - re-exported
    COLUMN_NAMES,
    COLUMNS,
    CURRENT_FILE,
    CUTOFFS_FILE,
    FEATURES_SQL,
    MODEL_FEATURES,
    RFM_SEGMENTS,
    SNAPSHOTS_FILE,
    WINDOWS_DAYS,
    Column,
    cutoff_table,
    describe_markdown,
    feature_sql,
    plan_cutoffs,
    run_summary,
)


def run_features(params: FeaturesParams, engine: EngineParams) -> dict[str, Any]:
    """Build ``snapshots.parquet`` (labelled cutoffs), ``current.parquet`` (as-of) and
    ``cutoffs.json`` on the engine ``engine.name`` names."""
    return get_engine(engine).build_features(params)
