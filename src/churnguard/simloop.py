"""The synthetic closed loop: score a list, let the simulated world react, score again,
record what managers saw, and measure — the proof that ``report uplift`` recovers known
save rates.

Round k (list date d_k): the world so far (the generator with its treatment effect applied
to every list recorded before d_k) is ingested and scored at d_k with the ledger, so the
list and its control group are recorded; simulated managers fill in a workbook per manager
for the treated manual actions (the columns of the workbook contract) and the workbooks are
imported. After the last round the final world (every list's effect applied) is ingested
and ``report uplift`` measures each action. Nothing here is mocked: it runs the same
functions as ``churnguard generate``, ``ingest``, ``score``, ``outcomes import`` and
``report uplift``.

Simulated managers: a treated manual entry is worked with probability 0.8; its
``contacted_on`` is 1–7 days after the list date and its ``outcome`` is ``saved`` when the
generator saved the customer, else ``reached``, ``no answer`` or ``declined`` (hash draws,
so reproducible).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from churnguard import feedback, ledger, synth
from churnguard.config import (
    EngineParams,
    FeaturesParams,
    GenerateParams,
    IngestParams,
    OutcomesParams,
    ReportParams,
    ScoreParams,
    SourceParams,
    TreatmentParams,
)
from churnguard.csvsafe import safe_file_stem

WORKED_SHARE = 0.8
NOT_SAVED = ("reached", "no answer", "declined")


@dataclass(frozen=True)
class LoopResult:
    uplift: dict[str, Any]  # what feedback.run_uplift returned (table included)
    rounds: list[dict[str, Any]]  # per list date: scoring summary counts and import counts
    truth: dict[str, float]  # the known save rates
    realised: pd.DataFrame  # per action: treated entries and the share the generator saved


def _u(*parts: object) -> float:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return (int.from_bytes(digest[:8]) >> 11) / float(2**53)


def write_workbooks(rows: pd.DataFrame, saved: pd.Series, folder: Path, seed: int) -> list[Path]:
    """One workbook per manager in the contract's layout (sheet ``List``, typed cells) for the
    treated manual rows of one list, filled in as simulated managers would."""
    from openpyxl import Workbook

    paths = []
    mine = rows[(rows["arm"] == "treated") & (rows["owner"] == "account_manager")]
    for manager, group in mine.groupby("account_manager", sort=True):
        wb = Workbook()
        ws = wb.active
        ws.title = "List"
        ws.append(["rank", "list_date", "customer_id", "action", "contacted_on", "outcome", "note"])
        for rank, r in enumerate(group.itertuples(index=False), start=1):
            worked = _u(seed, "worked", r.list_date, r.customer_id) < WORKED_SHARE
            contacted = r.list_date + dt.timedelta(
                days=1 + int(_u(seed, "day", r.list_date, r.customer_id) * 7)
            )
            if saved.get(r.customer_id, False):
                outcome = "saved"
            else:
                outcome = NOT_SAVED[int(_u(seed, "outcome", r.list_date, r.customer_id) * 3)]
            ws.append(
                [
                    rank,
                    r.list_date,
                    r.customer_id,
                    r.action,
                    contacted if worked else None,
                    outcome if worked else None,
                    None,
                ]
            )
            row = ws.max_row
            ws.cell(row, 2).number_format = "yyyy-mm-dd"
            if worked:
                ws.cell(row, 5).number_format = "yyyy-mm-dd"
        path = folder / f"{safe_file_stem(str(manager))}-{rows['list_date'].iloc[0]}.xlsx"
        folder.mkdir(parents=True, exist_ok=True)
        wb.save(path)
        paths.append(path)
    return paths


def _world(gp: GenerateParams, root: Path, name: str, engine: EngineParams) -> Path:
    """Generate and ingest one world; returns its canonical transactions."""
    from churnguard.ingest import run_ingest

    raw = root / name / "raw.parquet"
    cfg = gp.model_copy(
        update={
            "format": "parquet",
            "output": str(raw),
            "truth_output": str(root / name / "truth.parquet"),
        }
    )
    synth.run_generate(cfg)
    out = root / name / "interim"
    run_ingest(IngestParams(source=SourceParams(path=str(raw)), output_dir=str(out)), engine)
    return out / "transactions.parquet"


def run_loop(
    root: Path,
    gp: GenerateParams,
    sp: ScoreParams,
    fp: FeaturesParams,
    engine: EngineParams,
    model: str,
    list_dates: Sequence[dt.date],
    save_rates: dict[str, float],
    confidence: float = 0.95,
) -> LoopResult:
    """Run the loop in ``root`` (see the module docstring)."""
    from churnguard.score import run_score

    led = root / "ledger"
    op = OutcomesParams(ledger=str(led), uplift_dir=str(root / "uplift"), confidence=confidence)
    treated = gp.model_copy(
        update={"treatment": TreatmentParams(ledger=str(led), save_rates=save_rates)}
    )
    rounds = []
    for k, day in enumerate(list_dates):
        tx = _world(treated if k else gp, root, f"world-{k}", engine)
        summary = run_score(
            sp.model_copy(update={"output_root": str(root / "scores")}),
            fp,
            ReportParams(),
            engine,
            as_of=day,
            model=model,
            transactions=tx,
            ledger=led,
            uplift_confidence=confidence,
        )
        rows = ledger.read_lists(led, [day])
        entry = rows[rows["list_date"] == rows["episode_start"]]
        saved = synth.saved_entries(
            gp.seed,
            treated.treatment,  # type: ignore[arg-type]
            entry["customer_id"].tolist(),
            entry["list_date"].tolist(),
            entry["action"].tolist(),
        )
        books = write_workbooks(
            rows,
            pd.Series(saved & (entry["arm"] == "treated").to_numpy(), index=entry["customer_id"]),
            root / "workbooks",
            gp.seed,
        )
        report = feedback.run_import(books, op, fp.horizon_days)
        rounds.append(
            {
                "list_date": day.isoformat(),
                "listed": int(len(rows)),
                "held_out": int((rows["arm"] == "control").sum()),
                "entries": int(len(entry)),
                "customers_scored": summary["customers_scored"],
                "workbooks": len(books),
                "outcomes_recorded": report["totals"]["new"] + report["totals"]["changed"],
                "rejected": report["totals"]["rejected"],
            }
        )
    final = _world(treated, root, "world-final", engine)
    result = feedback.run_uplift(op, sp, fp, engine, transactions=final)
    entries = ledger.treated_entries(led)
    saved = synth.saved_entries(
        gp.seed,
        treated.treatment,  # type: ignore[arg-type]
        entries["customer_id"].tolist(),
        entries["list_date"].tolist(),
        entries["action"].tolist(),
    )
    realised = (
        entries.assign(saved=saved)
        .groupby("action", sort=True)["saved"]
        .agg(treated_entries="size", saved_share="mean")
        .reset_index()
    )
    return LoopResult(result, rounds, dict(save_rates), realised)
