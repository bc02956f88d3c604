"""Shared fixtures: one small real pipeline run (generate → ingest → features → train)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

from churnguard.config import (
    EngineParams,
    FeaturesParams,
    GenerateParams,
    IngestParams,
    SourceParams,
    TrainParams,
)


@dataclass(frozen=True)
class Pipeline:
    root: Path
    engine: EngineParams
    features: FeaturesParams
    train: TrainParams
    transactions: Path
    summary: dict


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """A real, small run of the first four stages on synthetic data (no mocks)."""
    from churnguard.features import run_features
    from churnguard.ingest import run_ingest
    from churnguard.synth import run_generate
    from churnguard.train import run_train

    root = tmp_path_factory.mktemp("pipeline")
    engine = EngineParams(temp_directory=str(root / "duck"), threads=2, memory_limit="1GB")
    raw = root / "raw.csv"
    run_generate(
        GenerateParams(
            n_customers=2500,
            seed=11,
            start_date=dt.date(2022, 1, 1),
            end_date=dt.date(2024, 12, 31),
            output=str(raw),
            truth_output=str(root / "truth.parquet"),
        )
    )
    run_ingest(
        IngestParams(source=SourceParams(path=str(raw)), output_dir=str(root / "interim")), engine
    )
    tx = root / "interim" / "transactions.parquet"
    fp = FeaturesParams(
        input=str(tx),
        output_dir=str(root / "features"),
        horizon_days=90,
        cutoff_step_days=30,
        n_cutoffs=6,
    )
    run_features(fp, engine)
    tp = TrainParams(features_dir=fp.output_dir, model_dir=str(root / "models"), min_rows=100)
    summary = run_train(tp)
    return Pipeline(root, engine, fp, tp, tx, summary)
