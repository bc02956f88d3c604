"""The ``features`` stage (``churnguard features``): point-in-time snapshots on the
configured engine.

What a snapshot is — the feature dictionary, the SQL, the cutoff grid and the labels —
lives in :mod:`churnguard.feature_defs`; how it is computed lives in the engine
(:mod:`churnguard.engines`). This module wires the two, records what the as-of snapshot
was built from (``current.json``, checked by ``churnguard score --snapshot``), and
re-exports the definitions and the DuckDB helpers under their historical names.
"""

from __future__ import annotations

from pathlib import Path
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
    CURRENT_META_FILE,
    CUTOFFS_FILE,
    FEATURES_SQL,
    MODEL_FEATURES,
    RFM_SEGMENTS,
    SNAPSHOTS_FILE,
    WINDOWS_DAYS,
    Column,
    current_meta,
    cutoff_table,
    describe_markdown,
    feature_sql,
    plan_cutoffs,
    run_summary,
)
from churnguard.io import file_md5, write_json_atomic


def run_features(params: FeaturesParams, engine: EngineParams) -> dict[str, Any]:
    """Build ``snapshots.parquet`` (labelled cutoffs), ``current.parquet`` (as-of) and
    ``cutoffs.json`` on the engine ``engine.name`` names, and ``current.json``, what
    ``current.parquet`` was built from (local files only: ``churnguard score --snapshot``
    reads both)."""
    source = Path(params.input)
    digest = file_md5(source) if source.is_file() else None  # the lines the engine reads
    summary = get_engine(engine).build_features(params)
    current = Path(params.output_dir) / CURRENT_FILE
    if digest is not None and current.is_file():  # not for a folder of parts or a URI
        write_json_atomic(
            Path(params.output_dir) / CURRENT_META_FILE,
            current_meta(
                summary["as_of"], params.lost_after_days, str(source), digest, file_md5(current)
            ),
        )
    return summary
