"""Batch scoring into ranked, costed retention-action lists (``churnguard score``).

For scheduled use the run is:
- **locked**: one writer per output folder (exit 5 for a second one);
- **idempotent**: a manifest of the model, input hash and params makes a re-run with
  the same inputs a no-op (``--force`` rewrites); outputs are byte-identical;
- **atomic**: everything is written to a staging folder and swapped in whole, so a run
  killed at any moment leaves the previous lists intact and no partial file.

This module is the I/O around :mod:`churnguard.scoring` (which computes the lists from
frames and params): the lock, the model, the snapshot (built by the engine, or the
features stage's ``current.parquet`` once checked), the previous list, and the files.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from churnguard import __version__
from churnguard.baselines import CANDIDATES
from churnguard.config import EngineParams, FeaturesParams, ReportParams, ScoreParams
from churnguard.csvsafe import (
    MalformedCsvError,
    read_excel_csv,
    safe_file_stem,
    write_excel_csv_atomic,
)
from churnguard.engines import Engine, get_engine
from churnguard.errors import DataError, ModelError, RefusedTargetError, output_error
from churnguard.i18n import manager_languages
from churnguard.io import (
    AMOUNT_METADATA_KEY,
    check_replaceable,
    dumps_json,
    file_md5,
    file_sha256,
    folder_lock,
    new_staging_dir,
    read_manifest,
    remove_stale_staging,
    replace_dir,
    restore_interrupted_swap,
    write_bytes_atomic,
    write_text_atomic,
)
from churnguard.labels import action_catalogue
from churnguard.modeling import LoadedModel
from churnguard.scorers import (
    BASELINES_DIR,
    GATE_FILE,
    SCORER_FILE,
    find_scorer_folder,
    load_scorer,
    read_drift_reference,
    scorer_digest,
    scorer_folder,
)
from churnguard.scoring import (
    PREVIOUS_SCHEMA,
    build_lists,
    data_freshness,
    params_digest,
    snapshot_mismatch,
)
from churnguard.timing import timed
from churnguard.value import amount_basis

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
RISK_LIST_FILE = "risk_list.csv"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
MANAGER_DIR = "by_manager"
# a folder rewritten in place (--output-dir, the DVC stage's scores/latest) keeps the earlier
# list it was compared with, so a re-run for the same date compares with the same list
PREVIOUS_LIST_FILE = "previous_list.csv"


def _evaluation_dir(folder: Path) -> Path:
    """``eval/`` of the training run a scorer folder belongs to (baselines live under it)."""
    if folder.parent.name == BASELINES_DIR:
        return folder.parent.parent / "eval"
    return folder / "eval"


def _read_json_dict(path: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def _folder_evaluation(folder: Path) -> dict[str, Any] | None:
    """The scorers' test metrics that ``churnguard evaluate`` wrote for a training run."""
    metrics = _read_json_dict(_evaluation_dir(folder) / "metrics.json") or {}
    scorers = metrics.get("scorers")
    return scorers if isinstance(scorers, dict) and "model" in scorers else None


def _gate_choice(folder: Path) -> tuple[str | None, list[str]]:
    """What the gate chose for a training-run folder: ``models:/…`` (a champion it kept),
    a scorer name, or None (not evaluated), with the reasons."""
    gate = _read_json_dict(folder / "eval" / GATE_FILE)
    if gate and gate.get("scorer") in CANDIDATES:
        own = scorer_folder(folder, gate["scorer"])
        if own.exists() and scorer_digest(own) == gate.get("scorer_digest"):
            return str(gate.get("use") or gate["scorer"]), list(gate.get("reasons") or [])
        log.warning("%s: written for another model (retrained since); ignored", GATE_FILE)
    choice = (_read_json_dict(folder / "eval" / "metrics.json") or {}).get("choice") or {}
    if choice.get("scorer") in CANDIDATES:
        return str(choice["scorer"]), list(choice.get("reasons") or [])
    return None, []


def _load_folder(folder: Path, registered_name: str) -> LoadedModel:
    if not folder.is_dir():
        raise ModelError(
            f"{folder}: not a churnguard model folder (it does not exist); run `churnguard "
            "train` (`dvc repro train`) or pass another --model"
        )
    chosen, why = (None, []) if (folder / SCORER_FILE).exists() else _gate_choice(folder)
    if chosen is not None and chosen.startswith("models:/"):
        kept = load_model(chosen, registered_name)
        note = f"the gate kept the registered champion ({chosen}) over this folder's scorer"
        return replace(kept, selection=[note, *why])
    target = scorer_folder(folder, chosen) if chosen else folder
    scorer = load_scorer(target)
    return LoadedModel(
        scorer,
        str(target),
        "file",
        scorer_digest(target),
        _folder_evaluation(target),
        scorer=scorer.kind,
        selection=why,
        drift_reference=read_drift_reference(target),
    )


@timed("load model")
def load_model(model: str | None, registered_name: str) -> LoadedModel:
    """A model folder (``--model models``: the scorer its gate chose) or a registered version
    (default: the registry's champion)."""
    if model and not model.startswith("models:/"):
        return _load_folder(Path(model), registered_name)
    from churnguard import tracking

    uri = model or f"models:/{registered_name}@{tracking.CHAMPION}"
    tracking.init_tracking()
    # the copy lives only while it is read into memory: nothing is left in the temp folder
    with tempfile.TemporaryDirectory(prefix="cg-model-") as tmp:
        try:
            import mlflow

            local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=tmp))
        except Exception as exc:
            raise ModelError(
                f"cannot load {uri} from the MLflow registry ({type(exc).__name__}: {exc}). "
                "Train and promote a model (`dvc repro`), or pass --model models/"
            ) from None
        folder = find_scorer_folder(local)
        if folder is None:
            raise ModelError(f"{uri}: the registered model holds no churnguard scorer")
        name = uri.removeprefix("models:/").split("@")[0].split("/")[0]
        number = (
            str(tracking.champion_version(registered_name))
            if model is None
            else uri.removeprefix("models:/").partition("/")[2]
        )
        version = number if number.isdigit() else uri
        evaluation = tracking.version_test_metrics(name, number) if number.isdigit() else None
        scorer = load_scorer(folder)
        return LoadedModel(
            scorer,
            uri,
            str(version),
            scorer_digest(folder),
            evaluation,
            scorer=scorer.kind,
            registered_at=tracking.version_created(name, number) if number.isdigit() else None,
            drift_reference=read_drift_reference(folder),
        )


def _previous_list(
    root: Path, as_of: dt.date
) -> tuple[dt.date | None, pd.DataFrame | None, str | None]:
    """The latest earlier list under ``root`` (churnguard folders named by date), read with
    the schema it was written with. A malformed old list is reported (third item) and
    ignored: it never stops this week's run."""
    best: dt.date | None = None
    for child in root.iterdir() if root.is_dir() else []:
        try:
            d = dt.date.fromisoformat(child.name)
        except ValueError:
            continue
        if (
            child.is_symlink()
            or not child.is_dir()
            or not d < as_of
            or (best is not None and d <= best)
        ):
            continue
        if (child / RISK_LIST_FILE).is_file() and read_manifest(child, MANIFEST_FILE) is not None:
            best = d
    if best is None:
        return None, None, None
    return _read_previous(root / best.isoformat() / RISK_LIST_FILE, best)


def _read_previous(
    path: Path, day: dt.date
) -> tuple[dt.date | None, pd.DataFrame | None, str | None]:
    try:
        prev = read_excel_csv(path, PREVIOUS_SCHEMA)
        if not prev["customer_id"].is_unique:
            raise MalformedCsvError(path, "customer_id is not unique")
    except MalformedCsvError as exc:
        log.warning("previous list ignored (no change status this run): %s", exc)
        return None, None, str(exc)
    return day, prev, None


def _previous_in_folder(
    folder: Path, as_of: dt.date
) -> tuple[dt.date | None, pd.DataFrame | None, str | None]:
    """The earlier list for a folder that is rewritten in place (``--output-dir``, the DVC
    stage's ``scores/latest``): the list it holds when that is older than ``as_of``, else the
    list that one was compared with (``previous_list.csv``) — the latest of them dated before
    ``as_of``. Call under the folder's lock, before it is replaced."""
    if read_manifest(folder, MANIFEST_FILE) is None:
        return None, None, None
    held = _read_json_dict(folder / SUMMARY_FILE) or {}
    found: list[tuple[dt.date, Path]] = []
    for key, name in (("as_of", RISK_LIST_FILE), ("previous_list", PREVIOUS_LIST_FILE)):
        try:
            day = dt.date.fromisoformat(str(held.get(key)))
        except ValueError:
            continue
        path = folder / name
        if day < as_of and path.is_file() and not path.is_symlink():
            found.append((day, path))
    if not found:
        return None, None, None
    day, path = max(found)
    return _read_previous(path, day)


def run_score(
    sp: ScoreParams,
    fp: FeaturesParams,
    rp: ReportParams,
    engine: EngineParams,
    *,
    as_of: dt.date | None = None,
    model: str | None = None,
    registered_name: str = "churnguard",
    output_dir: Path | None = None,
    transactions: Path | None = None,
    force: bool = False,
    before_swap: Callable[[Path], None] | None = None,
    allow_stale: bool = False,
    ledger: Path | None = None,
    record: bool = True,
    uplift_confidence: float = 0.95,
    snapshot: Path | None = None,
) -> dict[str, Any]:
    """Score, write lists and report, and return the summary (with ``status``).

    ``ledger`` (``outcomes.ledger``): ongoing episodes there keep their arm, and the list
    (both arms) is recorded there before the new lists are swapped in — unless ``record``
    is false (inside ``dvc exp run``). The report shows the save rates measured on the
    ledger's earlier lists as known at ``as_of`` (``uplift_confidence``:
    ``outcomes.confidence``, the level of their intervals).

    ``snapshot``: the as-of snapshot the features stage wrote (``current.parquet``), scored
    instead of building it again — only when the record beside it (``current.json``) says
    it was built from these transactions for this as-of date and these feature params
    (exit 3 otherwise, naming what to re-run)."""
    tx = Path(transactions or sp.transactions)
    if not tx.exists():
        raise DataError(
            f"{tx}: transactions not found (score.transactions or --transactions; run `churnguard ingest`)"
        )
    if as_of is None:
        as_of = sp.as_of
    runner = get_engine(engine)
    first_day, last_day, _ = runner.data_range(tx)
    if as_of is None:
        _refuse_future_dates(tx, runner, last_day)
        as_of = last_day
    freshness = data_freshness(first_day, last_day, as_of, fp.horizon_days)
    stale = freshness["days_from_last_transaction_to_as_of"]
    if stale > sp.max_days_after_data and not allow_stale:
        raise DataError(
            f"{tx}: the data ends on {last_day}, {stale} days before the as-of date {as_of} "
            f"(score.max_days_after_data is {sp.max_days_after_data}): every customer would look "
            "silent that long and the lists would overstate risk. Refresh the data (churnguard "
            f"ingest), score at --as-of {last_day}, or pass --allow-stale to score anyway (the "
            "lists then carry the warning)"
        )
    out_dir = Path(output_dir) if output_dir else Path(sp.output_root) / as_of.isoformat()
    flag = "--output-dir" if output_dir else "score.output_root"
    if out_dir.parent.exists() and not out_dir.parent.is_dir():
        raise RefusedTargetError(f"{out_dir.parent} is not a folder; point {flag} elsewhere")
    try:
        return _score_locked(
            sp,
            fp,
            rp,
            engine,
            runner,
            tx,
            as_of,
            out_dir,
            flag,
            model,
            registered_name,
            freshness,
            in_place=output_dir is not None,
            force=force,
            before_swap=before_swap,
            ledger=ledger,
            record=record,
            uplift_confidence=uplift_confidence,
            snapshot=snapshot,
        )
    except OSError as exc:
        err = output_error(exc, "lists", out_dir)
        if err is None:
            raise
        raise err from None


def _score_locked(
    sp: ScoreParams,
    fp: FeaturesParams,
    rp: ReportParams,
    engine: EngineParams,
    runner: Engine,
    tx: Path,
    as_of: dt.date,
    out_dir: Path,
    flag: str,
    model: str | None,
    registered_name: str,
    freshness: dict[str, Any],
    *,
    in_place: bool,
    force: bool,
    before_swap: Callable[[Path], None] | None,
    ledger: Path | None = None,
    record: bool = True,
    uplift_confidence: float = 0.95,
    snapshot: Path | None = None,
) -> dict[str, Any]:
    from churnguard import feedback
    from churnguard import ledger as ledger_mod

    with folder_lock(out_dir):
        # before any work: never replace what churnguard did not write
        if restore_interrupted_swap(out_dir, MANIFEST_FILE):
            log.warning("%s: restored the previous lists after an interrupted run", out_dir)
        check_replaceable(out_dir, MANIFEST_FILE, flag)
        for stale in remove_stale_staging(out_dir.parent, out_dir, MANIFEST_FILE):
            log.info("removed %s, left by a killed run", stale)
        loaded = load_model(model, registered_name)
        loaded.model.check_horizon(fp.horizon_days)
        inputs = {
            "as_of": as_of.isoformat(),
            "transactions_md5": file_md5(tx),
            "model_digest": loaded.digest,
            "model_version": loaded.version,
            "evaluation_digest": hashlib.sha256(
                json.dumps(loaded.evaluation, sort_keys=True, default=str).encode()
            ).hexdigest()[:16],
            "params_digest": params_digest(sp, fp, rp),
            "churnguard": __version__,
        }
        holdover = None
        if ledger is not None:  # ongoing episodes keep their arm: part of what the lists depend on
            holdover = ledger_mod.read_holdover(ledger, as_of, fp.horizon_days)
            inputs["holdover_digest"] = ledger_mod.holdover_digest(holdover)
            # the report's measured save rates: every earlier list, at this interval level
            inputs["earlier_lists_digest"] = ledger_mod.earlier_lists_digest(ledger, as_of)
            inputs["uplift_confidence"] = uplift_confidence
        if snapshot is not None:  # before any work: a stale snapshot stops the run
            _check_snapshot(snapshot, as_of, fp, inputs["transactions_md5"])
        # the engine changes which files are written (Spark adds partitioned Parquet), not
        # their content: it keys the manifest but stays out of summary.json
        keyed = {**inputs, "engine": engine.name}
        key = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()
        recorded = not (record and ledger and ledger_mod.needs_recording(ledger, as_of, key))
        if not force and _up_to_date(out_dir, key) and recorded:
            summary = json.loads((out_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
            log.info(
                "%s is up to date (same inputs, model and params); --force rewrites it", out_dir
            )
            return {**summary, "status": "up-to-date", "output_dir": str(out_dir)}

        prev_as_of, prev, prev_error = (
            _previous_in_folder(out_dir, as_of)
            if in_place
            else _previous_list(out_dir.parent, as_of)
        )
        snap, scoring_model = runner.score_snapshot(
            tx, as_of, fp.lost_after_days, loaded, snapshot=snapshot
        )
        run = build_lists(
            snap,
            scoring_model,
            loaded,
            sp,
            fp,
            rp,
            as_of=as_of,
            inputs=inputs,
            freshness=freshness,
            amount_basis=amount_basis(_parquet_metadata(tx), AMOUNT_METADATA_KEY),
            holdover=holdover,
            previous=prev,
            previous_as_of=prev_as_of,
            previous_error=prev_error,
        )
        scored, summary = run.scored, run.summary
        crr = _crr(tx, rp, engine, as_of)
        uplift = feedback.measured_at(ledger, tx, as_of, sp, fp, engine, uplift_confidence)
        if ledger is not None and record:  # this run's list waits for its window too
            entries = len(ledger_mod.new_entries(scored, as_of, sp, holdover))
            if entries:
                this_list = pd.DataFrame({"list_date": [as_of], "entries": [entries]})
                uplift["pending"] = [
                    *uplift["pending"],
                    *feedback.pending_lists(this_list, fp.horizon_days),
                ]
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = new_staging_dir(out_dir)
        try:
            files = _write_outputs(
                staging,
                run.present,
                run.lists,
                summary,
                scored,
                run.movers,
                run.gone,
                crr,
                fp,
                sp,
                rp,
                loaded,
                carried=prev if in_place else None,
                uplift=uplift,
            )
            files += runner.extra_score_files(staging, run.present)
            manifest = {
                "written_by": "churnguard",
                "key": key,
                "inputs": keyed,
                "files": {f: file_sha256(staging / f) for f in sorted(files)},
            }
            write_text_atomic(staging / MANIFEST_FILE, dumps_json(manifest))
            if ledger is not None and record:  # before the swap: no list without its record
                ledger_mod.record_list(ledger, as_of, scored, sp, holdover, key, fp.horizon_days)
            if before_swap is not None:
                before_swap(staging)
            left = replace_dir(staging, out_dir, MANIFEST_FILE)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
        if left:
            log.warning(
                "%s: the old lists were replaced, but files churnguard did not write appeared in "
                "them during the run and were kept in %s (%s)",
                out_dir,
                out_dir.parent / f".{out_dir.name}.previous",
                ", ".join(left[:5]),
            )
    log.info(
        "scored %s customers at %s: %s on lists (%s manual, %s automated) → %s",
        f"{summary['customers_scored']:,}",
        as_of,
        f"{summary['customers_on_lists']:,}",
        summary["manual_actions"],
        summary["automated_actions"],
        out_dir,
    )
    return {**summary, "status": "written", "output_dir": str(out_dir)}


def _check_snapshot(
    snapshot: Path, as_of: dt.date, fp: FeaturesParams, transactions_md5: str
) -> None:
    """Refuse (exit 3) a snapshot from the features stage that is not the one this run would
    build: its record (the ``.json`` beside it, :func:`churnguard.feature_defs.current_meta`)
    must name these transactions, this as-of date and ``features.lost_after_days``."""
    meta_path = snapshot.with_suffix(".json")
    fix = "re-run `churnguard features` (`dvc repro features`), or score without --snapshot"
    if not snapshot.is_file():
        raise DataError(f"{snapshot}: snapshot not found; {fix}")
    meta = _read_json_dict(meta_path)
    if meta is None:
        raise DataError(
            f"{snapshot}: {meta_path}, the record of what it was built from, is missing or "
            f"unreadable; {fix}"
        )
    problems = snapshot_mismatch(
        meta,
        as_of=as_of,
        lost_after_days=fp.lost_after_days,
        transactions_md5=transactions_md5,
        snapshot_md5=file_md5(snapshot),
    )
    if problems:
        raise DataError(
            f"{snapshot}: not the snapshot this run would build ({'; '.join(problems)}); {fix}"
        )


def _parquet_metadata(path: Path) -> dict[bytes, bytes] | None:
    """Key-value metadata of a Parquet file (what ingest records about its amounts)."""
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path).metadata
    except (OSError, ValueError):  # a folder of parts (Spark) or an unreadable footer
        return None


_FUTURE_LINES_SQL = (
    "select count(*) as n, max(cast(ts as date)) as last from transactions "
    "where cast(ts as date) > cast($today as date)"
)


def _refuse_future_dates(tx: Path, runner: Engine, last_day: dt.date) -> None:
    """The default as-of is the last transaction date: lines dated after today would move it
    into the future and make every customer look lapsed, so they stop the run (exit 3)."""
    today = dt.date.today()
    if last_day <= today:
        return
    row = runner.run_program(_FUTURE_LINES_SQL, tx, {"today": today}).iloc[0]
    raise DataError(
        f"{tx}: {int(row['n']):,} transaction line(s) are dated after today ({today}), up to "
        f"{row['last']}; the default as-of date would be {row['last']}. Fix those dates, "
        "quarantine them with ingest.as_of (then re-run ingest), or pass --as-of / set score.as_of"
    )


def _up_to_date(out_dir: Path, key: str) -> bool:
    """Same inputs as the folder's manifest, and every listed file still has its digest."""
    old = read_manifest(out_dir, MANIFEST_FILE)
    if old is None or old.get("key") != key or not isinstance(old["files"], dict):
        return False
    for rel, digest in old["files"].items():
        path = out_dir / rel
        if path.is_symlink() or not path.is_file() or file_sha256(path) != digest:
            log.warning("%s changed since it was written; rewriting the lists", path)
            return False
    return (out_dir / SUMMARY_FILE).is_file()


@timed("CRR trend")
def _crr(tx: Path, rp: ReportParams, engine: EngineParams, as_of: dt.date) -> pd.DataFrame | None:
    """Monthly CRR for the report: only complete months ending on or before ``as_of``."""
    from churnguard import crr

    try:
        table = crr.run_crr(tx, "month", rp, engine, end=as_of)
    except DataError as exc:
        log.info("CRR trend not available: %s", exc)
        return None
    return table.tail(12).reset_index(drop=True)


@timed("write outputs total")
def _write_outputs(
    folder: Path,
    present: pd.DataFrame,
    lists: dict[str, pd.DataFrame],
    summary: dict[str, Any],
    scored: pd.DataFrame,
    movers: pd.DataFrame,
    gone: pd.DataFrame,
    crr: pd.DataFrame | None,
    fp: FeaturesParams,
    sp: ScoreParams,
    rp: ReportParams,
    loaded: LoadedModel,
    *,
    carried: pd.DataFrame | None = None,
    uplift: dict[str, Any] | None = None,
) -> list[str]:
    """Write every file of one run into ``folder`` (the staging folder); return their paths.

    Per manager, under ``by_manager/``: their list as CSV, the same list as a workbook to
    work in (``.xlsx``, :mod:`churnguard.workbook`) and their page of the report
    (``.html``), all with one file stem. ``carried`` (in-place folders only) is the earlier
    list this run was compared with, kept as ``previous_list.csv``; ``uplift``: the measured
    save rates the report shows (:func:`churnguard.feedback.measured_at`)."""
    from churnguard import crr as crr_mod
    from churnguard.report import render_html, render_manager_html
    from churnguard.workbook import manager_workbook

    files = [RISK_LIST_FILE, SUMMARY_FILE, REPORT_FILE]
    ordered = present.sort_values(
        ["expected_net_benefit", "p_churn", "customer_id"],
        ascending=[False, False, True],
        kind="stable",
    )
    write_excel_csv_atomic(folder / RISK_LIST_FILE, ordered)
    if carried is not None:
        write_excel_csv_atomic(folder / PREVIOUS_LIST_FILE, carried[list(PREVIOUS_SCHEMA)])
        files.append(PREVIOUS_LIST_FILE)
    as_of = dt.date.fromisoformat(summary["as_of"])
    # who reads what: the summary in report.language, each manager's files in theirs
    speaks = manager_languages(lists, sp, rp)
    catalogues = {
        lang: action_catalogue(sp.playbook, sp.overflow, lang, rp.fallback_language)
        for lang in sorted({rp.language, *speaks.values()})
    }
    actions = catalogues[rp.language]
    taken: set[str] = set()
    stems: dict[str, str] = {}
    for manager, frame in lists.items():
        stem = stems[manager] = safe_file_stem(manager, taken)
        write_excel_csv_atomic(folder / MANAGER_DIR / f"{stem}.csv", frame)
        workbook = manager_workbook(
            frame,
            list_date=as_of,
            manager=manager,
            actions=catalogues[speaks[manager]],
            currency=rp.currency,
            language=speaks[manager],
        )
        write_bytes_atomic(folder / MANAGER_DIR / f"{stem}.xlsx", workbook)
        files += [f"{MANAGER_DIR}/{stem}.{ext}" for ext in ("csv", "xlsx", "html")]
    summary["manager_files"] = {m: f"{MANAGER_DIR}/{s}.csv" for m, s in stems.items()}
    summary["manager_workbooks"] = {m: f"{MANAGER_DIR}/{s}.xlsx" for m, s in stems.items()}
    summary["manager_pages"] = {m: f"{MANAGER_DIR}/{s}.html" for m, s in stems.items()}
    write_text_atomic(folder / SUMMARY_FILE, dumps_json(summary))
    common = {
        "as_of": summary["as_of"],
        "model": f"{loaded.ref} (version {loaded.version}, {loaded.digest[:8]})",
        "horizon_days": fp.horizon_days,
        "value_horizon_days": sp.value_horizon_days,
        "currency": rp.currency,
        "calendar": rp.calendar,
        "native_digits": rp.native_digits,
        "language": rp.language,
        "summary": summary,
        "actions": actions,
    }
    html = render_html(
        {
            **common,
            "scored": scored,
            "movers": movers,
            "recovered": gone[gone["change"] == "recovered"] if not gone.empty else None,
            "crr": crr,
            "crr_definition": crr_mod.definition(rp.active_within_days) if crr is not None else "",
            "active_within_days": rp.active_within_days,
            "uplift": uplift,
            "manager_files": {
                m: {
                    "page": f"{MANAGER_DIR}/{s}.html",
                    "workbook": f"{MANAGER_DIR}/{s}.xlsx",
                    "csv": f"{MANAGER_DIR}/{s}.csv",
                }
                for m, s in stems.items()
            },
        }
    )
    write_text_atomic(folder / REPORT_FILE, html)
    on = scored[scored["on_list"]]
    automated = on[on["owner"] == "automated"]["account_manager"].value_counts()
    for manager, frame in lists.items():
        stem = stems[manager]
        page = render_manager_html(
            {
                **common,
                "language": speaks[manager],
                "actions": catalogues[speaks[manager]],
                "manager": manager,
                "list": frame,
                "automated": int(automated.get(manager, 0)),
                "previous_list": summary.get("previous_list"),
                "due_within_days": rp.due_within_days,
                "files": {
                    "workbook": f"{stem}.xlsx",
                    "csv": f"{stem}.csv",
                    "summary": f"../{REPORT_FILE}",
                },
            }
        )
        write_text_atomic(folder / MANAGER_DIR / f"{stem}.html", page)
    return files
