"""SQL engines behind one interface: the stages never ask which engine runs.

An engine runs the project's SQL programs (``sql/*.sql``, DuckDB dialect, parameters
bound) on canonical transactions, builds the feature snapshots, and produces the scoring
snapshot with P(churn). ``engine.name`` in params.yaml picks one from :data:`ENGINES`.

Adding an engine (Polars, BigQuery, Snowflake…) is one module in this package with a
class implementing :class:`Engine`, plus its entry in :data:`ENGINES` (``churnguard.config.ENGINES``); see
``docs/engines.md``. This module imports nothing heavy: an engine's module is imported
only when that engine is used.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from churnguard.config import ENGINES

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

    from churnguard.config import EngineParams, FeaturesParams
    from churnguard.modeling import LoadedModel
    from churnguard.scoring import Scorer

# engine.name → "module:class": the registry is declared in config (beside engine.name,
# which it validates) and re-exported here
__all__ = ["ENGINES", "Engine", "get_engine"]


@runtime_checkable
class Engine(Protocol):
    """One execution backend. Every method takes canonical transactions (the Parquet that
    ``churnguard ingest`` writes, or a frame with the same columns)."""

    name: str

    def data_range(self, transactions: str | Path) -> tuple[dt.date, dt.date, int]:
        """(first day, last day, lines); :class:`DataError` when there is no line."""
        ...

    def run_program(
        self,
        sql: str,
        transactions: str | Path | pd.DataFrame,
        params: Mapping[str, Any] | None = None,
        name: str | None = None,
        views: Mapping[str, pa.Table] | None = None,
    ) -> pd.DataFrame:
        """Run one SQL program over the view ``transactions`` with ``$name`` parameters bound;
        ``name`` (e.g. ``sql/crr.sql``) labels the program in errors; ``views``: further
        in-memory tables the program reads, by view name (e.g. the ledger's ``lists``)."""
        ...

    def build_features(self, params: FeaturesParams) -> dict[str, Any]:
        """Write ``snapshots.parquet``, ``current.parquet`` and ``cutoffs.json`` under
        ``params.output_dir``; return the run summary (``feature_defs.run_summary``)."""
        ...

    def score_snapshot(
        self,
        transactions: str | Path,
        as_of: dt.date,
        lost_after_days: int,
        loaded: LoadedModel,
        snapshot: str | Path | None = None,
    ) -> tuple[pd.DataFrame, Scorer]:
        """The snapshot at ``as_of`` (pandas, as DuckDB gives it) and a scorer for it
        (:class:`churnguard.scoring.Scorer`). ``snapshot``: read that file (the features
        stage's ``current.parquet``, already checked to be this snapshot) instead of
        building it; the BTYD columns are fitted again when the scorer needs them."""
        ...

    def extra_score_files(self, folder: Path, present: pd.DataFrame) -> list[str]:
        """Engine-specific files written beside the lists (paths relative to ``folder``)."""
        ...


def get_engine(params: EngineParams) -> Engine:
    """The engine ``params.name`` names, configured from the ``engine`` section."""
    from churnguard.errors import ConfigError

    spec = ENGINES.get(params.name)
    if spec is None:
        raise ConfigError(f"engine.name {params.name!r} is not one of {sorted(ENGINES)}")
    module, cls = spec.split(":")
    engine: Engine = getattr(importlib.import_module(module), cls)(params)
    return engine
