"""The outcome ledger on disk (``outcomes.ledger``): which customers were on which list,
in which arm, and what managers recorded for them.

A folder, every file written atomically while holding the ledger's lock
(``.<folder>.lock`` beside it, the same link-refusing lock scoring uses):

    lists/<YYYY-MM-DD>.parquet   one list date: every customer with an action, both arms,
                                 the action, its assumed save rate, the episode (score)
    imports/<NNNNNN>.parquet     the outcome records one import added or changed, in order
                                 (the history: the latest record of a key is the current one)
    rejects/<stem>-<sha8>.csv    the rows an import refused (``churnguard.feedback``)

``churnguard score`` records its list (not inside ``dvc exp run``: an experiment's list
reaches no manager) and reads the lists of the last ``features.horizon_days`` days to keep
ongoing episodes' arms. Once outcomes are recorded for a list date, that list is frozen: a
later re-score of the same date (another model, say) keeps the recorded list, with a
warning. Importing outcomes and measuring uplift are in :mod:`churnguard.feedback`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from churnguard import outcomes as oc
from churnguard.config import OutcomesParams, ScoreParams
from churnguard.errors import ConfigError
from churnguard.io import atomic_path, folder_lock

log = logging.getLogger(__name__)

LISTS, IMPORTS, REJECTS = "lists", "imports", "rejects"
LOCK_WAIT_SECONDS = 60.0  # score and import take the lock for seconds; wait, then exit 5
META_KEY = b"churnguard"
DVC_EXP_ENV = "DVC_EXP_NAME"  # set by DVC inside `dvc exp run`

LIST_SCHEMA = pa.schema(
    [
        ("list_date", pa.date32()),
        ("customer_id", pa.string()),
        ("account_manager", pa.string()),
        ("action", pa.string()),
        ("owner", pa.string()),
        ("arm", pa.string()),
        ("episode_start", pa.date32()),
        ("save_rate", pa.float64()),
        ("p_churn", pa.float64()),
        ("risk_band", pa.string()),
        ("lapsed", pa.bool_()),
    ]
)
RECORD_SCHEMA = pa.schema(
    [
        ("list_date", pa.date32()),
        ("customer_id", pa.string()),
        ("action", pa.string()),
        ("contacted_on", pa.date32()),
        ("outcome", pa.string()),
        ("note", pa.string()),
        ("source", pa.string()),
        ("source_row", pa.int64()),
        ("change", pa.string()),
    ]
)


def ledger_path(op: OutcomesParams) -> Path:
    if not op.ledger:
        raise ConfigError(
            "outcomes.ledger is not set in params.yaml: set it to a folder (e.g. outcomes/ledger) "
            "so that churnguard score records its lists there"
        )
    return Path(op.ledger)


def recording_allowed() -> bool:
    """Lists made inside ``dvc exp run`` never reach a manager, so they are not recorded."""
    return not os.environ.get(DVC_EXP_ENV)


def list_file(ledger: Path, day: dt.date) -> Path:
    return ledger / LISTS / f"{day.isoformat()}.parquet"


def list_dates(ledger: Path) -> list[dt.date]:
    """Every list date recorded, oldest first."""
    out = []
    for path in sorted((ledger / LISTS).glob("*.parquet")) if (ledger / LISTS).is_dir() else []:
        try:
            out.append(dt.date.fromisoformat(path.stem))
        except ValueError:
            continue
    return out


def _meta(path: Path) -> dict[str, Any]:
    raw = (pq.read_schema(path).metadata or {}).get(META_KEY)
    return json.loads(raw) if raw else {}


def write_table(path: Path, frame: pd.DataFrame, schema: pa.Schema, meta: dict[str, Any]) -> None:
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta, sort_keys=True).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, str(tmp), compression="zstd")


def read_lists_table(ledger: Path, days: Sequence[dt.date] | None = None) -> pa.Table:
    """Recorded list rows (all dates, or ``days``) as an Arrow table of :data:`LIST_SCHEMA`
    (what an engine registers as the view ``lists``)."""
    chosen = list_dates(ledger) if days is None else [d for d in days]
    files = [str(list_file(ledger, d)) for d in chosen if list_file(ledger, d).is_file()]
    if not files:
        return LIST_SCHEMA.empty_table()
    return pads.dataset(files, schema=LIST_SCHEMA).to_table()


def read_lists(ledger: Path, days: Sequence[dt.date] | None = None) -> pd.DataFrame:
    """Recorded list rows (all dates, or ``days``), as :data:`LIST_SCHEMA`."""
    return read_lists_table(ledger, days).to_pandas()


# --------------------------------------------------------------------------- score side


def read_holdover(ledger: Path, as_of: dt.date, horizon_days: int) -> pd.DataFrame:
    """Ongoing episodes at ``as_of`` (customer_id, arm, episode_start) from the lists of the
    previous ``horizon_days`` days."""
    since = as_of - dt.timedelta(days=horizon_days)
    days = [d for d in list_dates(ledger) if since < d < as_of]
    return oc.ongoing_episodes(read_lists(ledger, days), as_of, horizon_days)


def holdover_digest(holdover: pd.DataFrame) -> str:
    """Short digest of the ongoing episodes (part of the scoring run's key)."""
    text = holdover.astype(str).to_csv(index=False, lineterminator="\n")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def earlier_lists_digest(ledger: Path, as_of: dt.date) -> str:
    """Short digest of the lists recorded before ``as_of`` (the report measures their save
    rates: part of the scoring run's key)."""
    rows = read_lists(ledger, [d for d in list_dates(ledger) if d < as_of])
    cols = ["list_date", "customer_id", "action", "arm", "episode_start", "save_rate"]
    text = rows[cols].astype(str).to_csv(index=False, lineterminator="\n")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def new_entries(
    scored: pd.DataFrame, as_of: dt.date, sp: ScoreParams, holdover: pd.DataFrame | None
) -> pd.DataFrame:
    """The rows of this list that start an episode (as :func:`record_list` records them)."""
    return oc.entries(oc.list_rows(scored, as_of, sp, holdover))


def _outcome_dates(ledger: Path) -> set[dt.date]:
    files = sorted((ledger / IMPORTS).glob("*.parquet")) if (ledger / IMPORTS).is_dir() else []
    if not files:
        return set()
    days = pads.dataset([str(f) for f in files], schema=RECORD_SCHEMA).to_table(["list_date"])
    return set(days.column("list_date").to_pylist())


def needs_recording(ledger: Path, as_of: dt.date, key: str) -> bool:
    """Whether a scoring run with this key still has to record its list: not when the list
    of that date was recorded by the same run inputs, nor when it is frozen (outcomes)."""
    path = list_file(ledger, as_of)
    if not path.is_file():
        return True
    if _meta(path).get("key") == key:
        return False
    return as_of not in _outcome_dates(ledger)


def record_list(
    ledger: Path,
    as_of: dt.date,
    scored: pd.DataFrame,
    sp: ScoreParams,
    holdover: pd.DataFrame | None,
    key: str,
    horizon_days: int,
) -> str:
    """Write the list of ``as_of`` (both arms) into the ledger; returns ``recorded``,
    ``unchanged`` or ``kept`` (outcomes exist for that date and the new list differs: the
    recorded one stays)."""
    rows = oc.list_rows(scored, as_of, sp, holdover)
    path = list_file(ledger, as_of)
    meta = {
        "key": key,
        "list_date": as_of.isoformat(),
        "control_share": sp.control_share,
        "horizon_days": horizon_days,
    }
    with folder_lock(ledger, wait_seconds=LOCK_WAIT_SECONDS):
        if path.is_file():
            old = pq.read_table(path, schema=LIST_SCHEMA)
            if old.equals(pa.Table.from_pandas(rows, schema=LIST_SCHEMA, preserve_index=False)):
                if _meta(path).get("key") != key:
                    write_table(path, rows, LIST_SCHEMA, meta)
                return "unchanged"
            if as_of in _outcome_dates(ledger):
                log.warning(
                    "%s: the list of %s already has outcomes recorded, so the ledger keeps the list "
                    "managers worked; this run's different list (another model or params) is not "
                    "recorded",
                    ledger,
                    as_of,
                )
                return "kept"
        write_table(path, rows, LIST_SCHEMA, meta)
    n_control = int((rows["arm"] == "control").sum())
    log.info(
        "ledger: list of %s recorded (%s customers, %s held out) → %s",
        as_of,
        f"{len(rows):,}",
        f"{n_control:,}",
        path,
    )
    return "recorded"


def treated_entries(ledger: Path) -> pd.DataFrame:
    """Treated episode entries of every recorded list: customer_id, list_date, action (what
    the synthetic generator's treatment effect acts on)."""
    rows = oc.entries(read_lists(ledger))
    rows = rows[rows["arm"] == "treated"]
    return rows[["customer_id", "list_date", "action"]].reset_index(drop=True)


# --------------------------------------------------------------------------- outcomes


def current_outcomes(ledger: Path) -> pd.DataFrame:
    """The latest record per (list date, customer, action), across every import."""
    files = sorted((ledger / IMPORTS).glob("*.parquet")) if (ledger / IMPORTS).is_dir() else []
    if not files:
        return RECORD_SCHEMA.empty_table().to_pandas()
    frames = []
    for seq, f in enumerate(files):
        frames.append(pq.read_table(f, schema=RECORD_SCHEMA).to_pandas().assign(_seq=seq))
    allrec = pd.concat(frames, ignore_index=True)
    latest = allrec.sort_values("_seq", kind="stable").groupby(list(oc.KEY), sort=True).tail(1)
    return (
        latest.drop(columns="_seq").sort_values(list(oc.KEY), kind="stable").reset_index(drop=True)
    )
