"""Batch scoring into ranked, costed retention-action lists (``churnguard score``).

For scheduled use the run is:
- **locked**: one writer per output folder (exit 5 for a second one);
- **idempotent**: a manifest of the model, input hash and params makes a re-run with
  the same inputs a no-op (``--force`` rewrites); outputs are byte-identical;
- **atomic**: everything is written to a staging folder and swapped in whole, so a run
  killed at any moment leaves the previous lists intact and no partial file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnguard import __version__
from churnguard.actions import (
    NO_ACTION,
    RISK_ORDER,
    action_texts,
    assign_actions,
    due_dates,
    risk_band,
    value_tier,
)
from churnguard.baselines import BASELINE_LABELS, CANDIDATES, MODEL, SCORER_LABELS
from churnguard.config import EngineParams, FeaturesParams, ReportParams, ScoreParams
from churnguard.csvsafe import (
    MalformedCsvError,
    is_formula_like,
    read_excel_csv,
    safe_file_stem,
    write_excel_csv_atomic,
)
from churnguard.drift import drift_summary, population_stability
from churnguard.engines import Engine, Scorer, get_engine
from churnguard.errors import DataError, ModelError, RefusedTargetError, output_error
from churnguard.explain import phrase, top_reasons
from churnguard.i18n import (
    Notice,
    left_list_action,
    manager_languages,
    notice_codes,
    reader,
    unmatched_managers,
)
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
from churnguard.modeling import ChurnModel, LoadedModel
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
from churnguard.timing import timed
from churnguard.value import (
    amount_basis,
    fit_value_prior,
    value_at_risk,
    value_if_retained,
    value_summary,
)

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"
RISK_LIST_FILE = "risk_list.csv"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
MANAGER_DIR = "by_manager"
OWNER_LABEL = {"account_manager": "account manager", "automated": "automated", "": ""}

# risk_list.csv: its columns in order, with the types it is read back with (previous list)
RISK_LIST_SCHEMA: dict[str, str] = {
    "customer_id": "str",
    "customer_name": "str",
    "account_manager": "str",
    "region": "str",
    "rank": "int",
    "churn_risk_pct": "float",
    "risk_band": "str",
    "value_if_retained": "float",
    "value_at_risk": "float",
    "value_tier": "str",
    "rfm_segment": "str",
    "lapsed": "int",
    "recommended_action": "str",
    "action": "str",
    "owner": "str",
    "channel": "str",
    "action_cost": "float",
    "save_rate": "float",
    "expected_net_benefit": "float",
    "reasons": "str",
    "last_purchase_date": "str",
    "recency_days": "int",
    "usual_gap_days": "Int64",
    "expected_next_order_date": "str",
    "days_overdue": "Int64",
    "change": "str",
    "p_churn": "float",
    "scored_by": "str",
    "arm": "str",  # treated | control (held out: on no manager's list) | "" (no action)
}
RISK_LIST_COLUMNS = list(RISK_LIST_SCHEMA)
# what `change` needs from an earlier list (read with these types; other columns may differ)
PREVIOUS_SCHEMA = {
    k: RISK_LIST_SCHEMA[k]
    for k in (
        "customer_id",
        "customer_name",
        "account_manager",
        "rank",
        "risk_band",
        "p_churn",
        "last_purchase_date",
    )
}
# a folder rewritten in place (--output-dir, the DVC stage's scores/latest) keeps the earlier
# list it was compared with, so a re-run for the same date compares with the same list
PREVIOUS_LIST_FILE = "previous_list.csv"
MANAGER_COLUMNS = [
    "rank",
    "customer_id",
    "customer_name",
    "churn_risk_pct",
    "risk_band",
    "value_at_risk",
    "expected_net_benefit",
    "action",
    "recommended_action",
    "due_date",
    "owner",
    "channel",
    "reasons",
    "last_purchase_date",
    "usual_gap_days",
    "expected_next_order_date",
    "days_overdue",
    "change",
    "scored_by",
]


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


def model_quality(
    evaluation: dict[str, Any] | None,
    scorer: str = MODEL,
    selection: list[str] | None = None,
    warn_below_roc_auc: float = 0.6,
) -> tuple[dict[str, Any], list[str]]:
    """How good the scorer that made the lists is against the other scorers on its test
    cutoff, and warnings when that evidence is weak (not evaluated, a baseline ranks the
    lists, no lead, near chance)."""
    label = SCORER_LABELS.get(scorer, scorer)
    if not evaluation or not isinstance(evaluation.get(scorer), dict):
        return {"evaluated": False, "scorer": scorer, "scorer_label": label}, [
            Notice("not_evaluated", label=label)
        ]
    mine = evaluation[scorer]
    others = {
        k: v
        for k, v in evaluation.items()
        if k in BASELINE_LABELS
        and k != scorer
        and isinstance(v, dict)
        and v.get("roc_auc") is not None
    }
    auc = mine.get("roc_auc")
    quality: dict[str, Any] = {
        "evaluated": True,
        "scorer": scorer,
        "scorer_label": label,
        "roc_auc": auc,
        "pr_auc": mine.get("pr_auc"),
        "brier": mine.get("brier"),
        "baselines_roc_auc": {k: v["roc_auc"] for k, v in sorted(others.items())},
        "selection": list(selection or []),
    }
    if scorer != MODEL and isinstance(evaluation.get(MODEL), dict):
        quality["model_roc_auc"] = evaluation[MODEL].get("roc_auc")
    warnings: list[str] = []
    if scorer != MODEL:
        detail = f" ({selection[0]})" if selection else ""
        warnings.append(Notice("baseline_ranks", label=label, detail=detail))
    if auc is None:
        warnings.append(Notice("auc_undefined", label=label))
        return quality, warnings
    if others:
        best = max(sorted(others), key=lambda k: others[k]["roc_auc"])
        lead = round(float(auc) - float(others[best]["roc_auc"]), 6)
        quality.update(
            best_baseline=best, best_baseline_label=BASELINE_LABELS[best], lead_roc_auc=lead
        )
        if lead <= 0 and scorer == MODEL:
            warnings.append(
                Notice(
                    "no_lead",
                    baseline=BASELINE_LABELS[best],
                    baseline_auc=float(others[best]["roc_auc"]),
                    auc=float(auc),
                )
            )
    if auc < warn_below_roc_auc:
        warnings.append(
            Notice("weak_auc", label=label, auc=float(auc), threshold=warn_below_roc_auc)
        )
    return quality, warnings


def scored_by(loaded: LoadedModel) -> str:
    """Every row says which scorer ranked it: 'LightGBM model v12' or
    'baseline: days since last purchase (from folder)'."""
    label = SCORER_LABELS.get(loaded.scorer, loaded.scorer)
    if loaded.version.isdigit():
        version = f"v{loaded.version}"
    else:
        version = "from folder" if loaded.version == "file" else loaded.version
    return f"{label} {version}" if loaded.scorer == MODEL else f"baseline: {label} ({version})"


def data_drift(
    snapshot: pd.DataFrame, reference: dict[str, Any] | None, threshold: float
) -> tuple[dict[str, Any], list[str]]:
    """PSI of each model feature between the scorer's training rows and the active
    (non-lapsed) customers scored now; a warning naming the top shifts above ``threshold``."""
    if not reference:
        return {"measured": False}, [Notice("drift_unmeasured")]
    active = snapshot[snapshot["lapsed"] == 0] if "lapsed" in snapshot.columns else snapshot
    present = [f for f in reference.get("features", {}) if f in active.columns]
    if active.empty or not present:
        return {"measured": False}, []
    subset = {**reference, "features": {f: reference["features"][f] for f in present}}
    table = population_stability(subset, active)
    drift = {"measured": True, **drift_summary(table, threshold)}
    drift["psi"] = {r.feature: round(float(r.psi), 4) for r in table.itertuples()}
    warnings = []
    if drift["features_over"]:
        shifts = "; ".join(
            f"{t['feature']} PSI {t['psi']:.2f} ({t['top_bin']})"
            for t in drift["top"]
            if t["psi"] >= threshold
        )
        warnings.append(
            Notice("drift", n=len(drift["features_over"]), threshold=threshold, shifts=shifts)
        )
    return drift, warnings


def list_warnings(
    scored: pd.DataFrame, loaded: LoadedModel, sp: ScoreParams, as_of: dt.date
) -> tuple[dict[str, Any], list[str]]:
    """Band concentration and scorer age: facts for summary.json and warnings with a fix."""
    warnings: list[str] = []
    bands = scored["risk_band"].value_counts()
    active = bands.drop(labels=["lapsed"], errors="ignore")
    facts: dict[str, Any] = {}
    if active.sum():
        top_band, n = str(active.idxmax()), int(active.max())
        share = n / int(active.sum())
        facts["largest_band"] = {"band": top_band, "share": round(share, 4)}
        if share > sp.warn_band_share:
            warnings.append(
                Notice("band_share", share=share, band=top_band, limit=sp.warn_band_share)
            )
    cutoff = loaded.model.metadata.get("test_cutoff")
    meta = loaded.model.metadata
    horizon = meta.get("label_horizon_days", meta.get("horizon_days"))  # chained: the base label
    if isinstance(cutoff, str) and isinstance(horizon, int):
        newest_label = dt.date.fromisoformat(cutoff) + dt.timedelta(days=horizon)
        age = (as_of - newest_label).days
        facts["scorer_age_days"] = age
        facts["scorer_newest_label"] = newest_label.isoformat()
        if age > sp.warn_champion_age_days:
            warnings.append(
                Notice("scorer_age", newest=newest_label, age=age, limit=sp.warn_champion_age_days)
            )
    if loaded.registered_at:
        facts["registered_at"] = loaded.registered_at
    return facts, warnings


def params_digest(sp: ScoreParams, fp: FeaturesParams, rp: ReportParams) -> str:
    payload = {
        "score": sp.model_dump(mode="json", exclude={"as_of", "output_root", "transactions"}),
        "lost_after_days": fp.lost_after_days,
        "horizon_days": fp.horizon_days,
        "report": rp.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


@timed("score_frame total")
def score_frame(
    snapshot: pd.DataFrame,
    model: ChurnModel | Scorer,
    sp: ScoreParams,
    rp: ReportParams | None = None,
    horizon_days: int = FeaturesParams().horizon_days,
    *,
    as_of: dt.date | None = None,
    holdover: pd.Series | None = None,
) -> pd.DataFrame:
    """Pure core: snapshot → risk, value, action, benefit, rank and reasons per customer.

    ``action`` and ``reasons`` are in ``report.language`` (risk_list.csv, the report);
    ``manager_action`` and ``manager_reasons`` in the language of each customer's manager
    (``manager_language``: ``score.manager_languages``, else ``report.language``).

    ``as_of`` (the list date) draws the control group (``score.control_share``; none without
    it) and ``holdover`` keeps ongoing episodes' arms: see :mod:`churnguard.actions`.

    Lapsed customers (``lapsed`` = 1) are their own risk band, ``lapsed``: the model is
    never trained on them (train drops them), so their p_churn and value_at_risk are NaN.
    They still get win-back actions (net benefit with P = 1, see :mod:`churnguard.actions`)
    and, instead of model drivers, their recency as the reason. Value if retained is
    shrunk toward this population (:mod:`churnguard.value`; the fitted prior is in
    ``attrs["value_prior"]``), retained meaning a purchase within ``horizon_days``.
    """
    if snapshot.empty:
        raise DataError("empty population: no customer has a purchase on or before the as-of date")
    model.check_features(snapshot)
    scored = snapshot.copy()
    lapsed = scored["lapsed"].astype(bool).to_numpy()
    scored["p_churn"] = np.where(lapsed, np.nan, np.round(model.predict(scored), 6))
    prior = fit_value_prior(scored)
    scored["value_if_retained"] = value_if_retained(
        scored, sp.value_horizon_days, horizon_days, prior
    )
    scored["value_at_risk"] = value_at_risk(scored["p_churn"], scored["value_if_retained"])
    scored["risk_band"] = risk_band(scored["p_churn"], sp.risk_bands, scored["lapsed"])
    scored["value_tier"] = value_tier(scored["value_if_retained"], sp.value_tiers)
    rp = rp or ReportParams()
    scored = assign_actions(scored, sp, as_of, holdover, rp.language, rp.fallback_language)
    speaks = scored["account_manager"].map(manager_languages(scored["account_manager"], sp, rp))
    scored["manager_language"] = speaks
    scored["manager_action"] = action_texts(scored, sp, speaks, rp.fallback_language)
    scored["reasons"] = ""
    scored["manager_reasons"] = ""
    explained = customers_to_explain(scored, sp.explain_max_customers)
    scored["explained"] = False
    if len(explained) and sp.explain_top:
        lost = scored.loc[explained, "lapsed"].astype(bool).to_numpy()
        by_model, by_recency = explained[~lost], explained[lost]
        contrib = model.contributions(scored.loc[by_model]) if len(by_model) else None
        # report.language for every explained row, then each other language its readers'
        for lang in [rp.language, *sorted(set(speaks[explained]) - {rp.language})]:
            tr = reader(rp, lang)
            column = "reasons" if lang == rp.language else "manager_reasons"
            mine = by_model if lang == rp.language else by_model[speaks[by_model] == lang]
            if len(mine):
                scored.loc[mine, column] = top_reasons(
                    contrib.loc[mine], scored.loc[mine], sp.explain_top, tr
                )
            silent = by_recency if lang == rp.language else by_recency[speaks[by_recency] == lang]
            # no model score to explain: why they are lapsed is how long they have been silent
            rows = scored.loc[silent, ["recency_days", "gap_mean_days"]]
            scored.loc[silent, column] = [
                phrase("recency", r, tr) for r in rows.itertuples(index=False)
            ]
        scored.loc[explained, "explained"] = True
    same = speaks == rp.language
    scored.loc[same, "manager_reasons"] = scored.loc[same, "reasons"]
    scored.attrs["value_prior"] = prior
    return scored


def customers_to_explain(scored: pd.DataFrame, limit: int | None) -> pd.Index:
    """Listed customers who get reasons: every manual action (what account managers read),
    then automated actions by net benefit, best first, up to ``limit`` customers in all
    (``None``: every listed customer). Returned in the frame's own order. Lapsed customers
    (no p_churn, so after scored ones at equal benefit) share the budget."""
    listed = scored[scored["on_list"]]
    if limit is None or len(listed) <= limit:
        return listed.index
    manual = listed.index[listed["owner"] == "account_manager"]
    auto = listed[listed["owner"] != "account_manager"].sort_values(
        ["expected_net_benefit", "p_churn", "customer_id"],
        ascending=[False, False, True],
        kind="stable",
    )
    keep = manual.union(auto.index[: max(0, limit - len(manual))])
    return scored.index[scored.index.isin(keep)]


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


@timed("compare with previous")
def compare_with_previous(
    scored: pd.DataFrame, prev: pd.DataFrame | None
) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame]:
    """Change status per customer, recovered/dropped rows, and the biggest movers."""
    if prev is None:
        change = pd.Series(np.where(scored["on_list"], "first list", ""), index=scored.index)
        return change, pd.DataFrame(), pd.DataFrame()
    prev = prev.copy()
    prev["prev_on_list"] = prev["rank"].fillna(0).astype(int) > 0
    prev = prev.set_index("customer_id")
    cur = scored.set_index("customer_id")
    joined = cur[["on_list", "risk_band", "p_churn"]].join(
        prev[["prev_on_list", "risk_band", "p_churn"]].rename(
            columns={"risk_band": "prev_band", "p_churn": "p_prev"}
        ),
        how="left",
    )
    was = joined["prev_on_list"].fillna(False).astype(bool)
    up = joined["risk_band"].map(RISK_ORDER) - joined["prev_band"].map(RISK_ORDER).fillna(-1)
    status = np.select(
        [~joined["on_list"], ~was, up > 0, up < 0],
        ["", "new", "escalated", "de-escalated"],
        default="unchanged",
    )
    change = pd.Series(status, index=scored.index)
    off = prev[prev["prev_on_list"]].index.difference(cur.index[cur["on_list"]])
    gone = prev.loc[off, ["customer_name", "account_manager", "last_purchase_date"]].reset_index()
    if not gone.empty:
        now_last = cur["last_purchase_date"].astype(str).reindex(gone["customer_id"]).to_numpy()
        bought_again = (
            pd.Series(now_last).astype(str) > gone["last_purchase_date"].astype(str).to_numpy()
        )
        gone["change"] = np.where(bought_again.fillna(False), "recovered", "off list")
        # a recovered customer's last purchase is the new one (the one that recovered them)
        now = pd.to_datetime(cur["last_purchase_date"]).dt.strftime("%Y-%m-%d")
        now = now.reindex(gone["customer_id"]).to_numpy()
        gone["last_purchase_date"] = np.where(
            gone["change"] == "recovered", now, gone["last_purchase_date"].astype(str)
        )
        # current manager when still scored, else the previous one
        cur_mgr = cur["account_manager"].reindex(gone["customer_id"]).to_numpy()
        gone["account_manager"] = np.where(pd.isna(cur_mgr), gone["account_manager"], cur_mgr)
    movers = joined.dropna(subset=["p_prev"]).assign(delta=lambda f: f["p_churn"] - f["p_prev"])
    movers = movers.join(cur[["customer_name", "account_manager"]]).reset_index()
    movers = movers.sort_values(["delta", "customer_id"], kind="stable")
    return change, gone.sort_values("customer_id", kind="stable").reset_index(drop=True), movers


@timed("present columns")
def _present(scored: pd.DataFrame) -> pd.DataFrame:
    """Columns as people read them: percentages, dates as ISO text, readable owner.

    Lapsed customers have no churn_risk_pct, p_churn or value_at_risk: NaN, an empty cell
    in the CSVs (read back as NaN by ``RISK_LIST_SCHEMA``'s ``float``)."""
    out = pd.DataFrame(index=scored.index)
    out["customer_id"] = scored["customer_id"]
    out["customer_name"] = scored["customer_name"].fillna("")
    out["account_manager"] = scored["account_manager"]
    out["region"] = scored["region"].fillna("")
    out["rank"] = scored["rank"].astype(int)
    out["churn_risk_pct"] = (scored["p_churn"] * 100).round(1)
    for col in ("risk_band", "value_if_retained", "value_at_risk", "value_tier", "rfm_segment"):
        out[col] = scored[col]
    out["lapsed"] = scored["lapsed"].astype(int)
    out["recommended_action"] = scored["action"]
    out["action"] = scored["rule"].where(scored["rule"] != NO_ACTION, "")
    out["owner"] = scored["owner"].map(OWNER_LABEL)
    out["channel"] = scored["channel"]
    out["action_cost"] = scored["action_cost"].round(2)
    out["save_rate"] = scored["save_rate"].round(4)
    out["expected_net_benefit"] = scored["expected_net_benefit"].round(2)
    out["reasons"] = scored["reasons"]
    last = pd.to_datetime(scored["last_purchase_date"])
    out["last_purchase_date"] = last.dt.strftime("%Y-%m-%d")
    out["recency_days"] = scored["recency_days"].astype(int)
    gap = scored["gap_mean_days"].round(0)
    out["usual_gap_days"] = gap.astype("Int64")
    nxt = last + pd.to_timedelta(gap, unit="D")
    # a past date says nothing to act on: how many days overdue instead (0 = not yet due)
    overdue = (scored["recency_days"] - gap).clip(lower=0).astype("Int64")
    not_yet_due = (overdue == 0).fillna(False).astype(bool)
    out["expected_next_order_date"] = nxt.dt.strftime("%Y-%m-%d").where(not_yet_due, "")
    out["expected_next_order_date"] = out["expected_next_order_date"].fillna("")
    out["days_overdue"] = overdue
    out["change"] = scored["change"]
    out["p_churn"] = scored["p_churn"]
    out["scored_by"] = scored["scored_by"] if "scored_by" in scored.columns else ""
    out["arm"] = scored["arm"]
    return out[RISK_LIST_COLUMNS]


@timed("manager lists")
def manager_lists(
    present: pd.DataFrame,
    gone: pd.DataFrame,
    *,
    as_of: dt.date | None = None,
    due_within_days: int = 7,
    capacity: int = 25,
    local: pd.DataFrame | None = None,
    languages: Mapping[str, str] | None = None,
) -> dict[str, pd.DataFrame]:
    """One short list per manager: their own (manual) actions in rank order, each with a due
    date (:func:`churnguard.actions.due_dates`; empty without ``as_of``), then customers who
    left the list since last time. Automated actions stay in risk_list.csv.

    Texts are in each manager's language: ``recommended_action`` and ``reasons`` from
    ``local``'s ``manager_action`` / ``manager_reasons`` (aligned with ``present``; without
    it, ``present``'s own), the rows of customers who left in ``languages[manager]`` (else
    English). Column names, codes, numbers and dates stay as they are."""
    lists: dict[str, pd.DataFrame] = {}
    managers = sorted(
        set(present["account_manager"]) | set(gone.get("account_manager", pd.Series(dtype=str)))
    )
    for manager in managers:
        mine = present[
            (present["account_manager"] == manager)
            & (present["rank"] > 0)
            & (present["owner"] == OWNER_LABEL["account_manager"])
        ]
        mine = mine.sort_values("rank", kind="stable")
        due = due_dates(len(mine), as_of, due_within_days, capacity) if as_of else []
        mine = mine.assign(due_date=[d.isoformat() for d in due] if as_of else "")
        mine = mine[MANAGER_COLUMNS]
        if local is not None:
            mine = mine.assign(
                recommended_action=local.loc[mine.index, "manager_action"].astype(
                    mine["recommended_action"].dtype
                ),
                reasons=local.loc[mine.index, "manager_reasons"].astype(mine["reasons"].dtype),
            )
        lang = (languages or {}).get(manager, "en")
        if not gone.empty:
            left = gone[gone["account_manager"] == manager]
            if not left.empty:
                extra = pd.DataFrame(
                    {c: pd.Series([pd.NA] * len(left), dtype=object) for c in MANAGER_COLUMNS}
                )
                extra["customer_id"] = left["customer_id"].to_numpy()
                extra["customer_name"] = left["customer_name"].to_numpy()
                extra["last_purchase_date"] = left["last_purchase_date"].astype(str).to_numpy()
                extra["change"] = left["change"].to_numpy()
                extra["recommended_action"] = [
                    left_list_action(c, lang) for c in left["change"].to_numpy()
                ]
                mine = pd.concat([mine.astype(object), extra], ignore_index=True)
        lists[manager] = mine.reset_index(drop=True)
    return lists


def build_summary(
    scored: pd.DataFrame, as_of: dt.date, model: LoadedModel, extra: dict[str, Any]
) -> dict[str, Any]:
    """summary.json. Value at risk totals cover active customers only (a lapsed customer's
    is NaN, skipped); ``risk_band_counts`` includes the ``lapsed`` band."""
    on = scored[scored["on_list"]]
    per_manager = {
        str(m): {
            "on_list": int(len(g)),
            "manual": int((g["owner"] == "account_manager").sum()),
            "automated": int((g["owner"] == "automated").sum()),
            "value_at_risk": round(float(g["value_at_risk"].sum()), 2),
            "expected_net_benefit": round(float(g["expected_net_benefit"].sum()), 2),
        }
        for m, g in on.groupby("account_manager", sort=True)
    }
    return {
        "as_of": as_of.isoformat(),
        "model": {"ref": model.ref, "version": model.version, "digest": model.digest},
        "customers_scored": int(len(scored)),
        "customers_on_lists": int(len(on)),
        "customers_explained": int(scored["explained"].sum()) if "explained" in scored else 0,
        "manual_actions": int((on["owner"] == "account_manager").sum()),
        "automated_actions": int((on["owner"] == "automated").sum()),
        "overflowed": int(scored["overflowed"].sum()),
        "lapsed": int(scored["lapsed"].sum()),
        # written exactly (never altered), so a spreadsheet opening the CSV may run them
        "ids_spreadsheets_may_misread": int(scored["customer_id"].map(is_formula_like).sum()),
        "risk_band_counts": {b: int((scored["risk_band"] == b).sum()) for b in RISK_ORDER},
        "value_at_risk_total": round(float(scored["value_at_risk"].sum()), 2),
        "expected_net_benefit_total": round(float(on["expected_net_benefit"].sum()), 2),
        "actions": {str(k): int(v) for k, v in on["rule"].value_counts().sort_index().items()},
        "managers": per_manager,
        **extra,
        # each warning's code and parameters, so pages can say it in their reader's language
        "warning_codes": notice_codes(extra.get("warnings") or []),
    }


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
) -> dict[str, Any]:
    """Score, write lists and report, and return the summary (with ``status``).

    ``ledger`` (``outcomes.ledger``): ongoing episodes there keep their arm, and the list
    (both arms) is recorded there before the new lists are swapped in — unless ``record``
    is false (inside ``dvc exp run``). The report shows the save rates measured on the
    ledger's earlier lists as known at ``as_of`` (``uplift_confidence``:
    ``outcomes.confidence``, the level of their intervals)."""
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

        quality, quality_warnings = model_quality(
            loaded.evaluation, loaded.scorer, loaded.selection, sp.warn_below_roc_auc
        )
        snap, scoring_model = runner.score_snapshot(tx, as_of, fp.lost_after_days, loaded)
        scored = score_frame(
            snap,
            scoring_model,
            sp,
            rp,
            fp.horizon_days,
            as_of=as_of,
            holdover=None if holdover is None else holdover.set_index("customer_id")["arm"],
        )
        scored["scored_by"] = scored_by(loaded)
        drift, drift_warnings = data_drift(snap, loaded.drift_reference, sp.drift_psi_threshold)
        health, health_warnings = list_warnings(scored, loaded, sp, as_of)
        prev_as_of, prev, prev_error = (
            _previous_in_folder(out_dir, as_of)
            if in_place
            else _previous_list(out_dir.parent, as_of)
        )
        change, gone, movers = compare_with_previous(scored, prev)
        if not gone.empty:  # a held-out customer is on no manager's file, not even "off list"
            gone = gone[
                ~gone["customer_id"].isin(scored.loc[scored["arm"] == "control", "customer_id"])
            ]
        scored["change"] = change
        present = _present(scored)
        readers = set(scored["account_manager"]) | set(gone.get("account_manager", []))
        lists = manager_lists(
            present,
            gone,
            local=scored[["manager_action", "manager_reasons"]],
            languages=manager_languages(readers, sp, rp),
            as_of=as_of,
            due_within_days=rp.due_within_days,
            capacity=sp.manager_capacity_per_week,
        )
        unmatched = unmatched_managers(readers, sp)
        language_warnings = (
            [Notice("unmatched_managers", names=", ".join(map(repr, unmatched)))]
            if unmatched
            else []
        )
        for warning in language_warnings:
            log.warning(warning)
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
        summary = build_summary(
            scored,
            as_of,
            loaded,
            {
                "previous_list": prev_as_of.isoformat() if prev_as_of else None,
                **({"previous_list_ignored": prev_error} if prev_error else {}),
                "recovered": int((gone.get("change", pd.Series(dtype=str)) == "recovered").sum()),
                "inputs": inputs,
                "data_freshness": freshness,
                "model_quality": {**quality, **health},
                "drift": drift,
                "control_group": {
                    "share": sp.control_share,
                    "customers": int((scored["arm"] == "control").sum()),
                    "actions": {
                        str(k): int(v)
                        for k, v in scored.loc[scored["arm"] == "control", "rule"]
                        .value_counts()
                        .sort_index()
                        .items()
                    },
                },
                "value": value_summary(
                    scored,
                    scored.attrs["value_prior"],
                    sp.value_horizon_days,
                    fp.horizon_days,
                    amount_basis(_parquet_metadata(tx), AMOUNT_METADATA_KEY),
                ),
                "warnings": [
                    *quality_warnings,
                    *freshness["warnings"],
                    *drift_warnings,
                    *health_warnings,
                    *language_warnings,
                ],
            },
        )
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = new_staging_dir(out_dir)
        try:
            files = _write_outputs(
                staging,
                present,
                lists,
                summary,
                scored,
                movers,
                gone,
                crr,
                fp,
                sp,
                rp,
                loaded,
                carried=prev if in_place else None,
                uplift=uplift,
            )
            files += runner.extra_score_files(staging, present)
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


def data_freshness(
    first_day: dt.date, last_day: dt.date, as_of: dt.date, horizon_days: int
) -> dict[str, Any]:
    """How old the data is at the as-of date, with a warning when the lists say more about
    the data's age than about churn (no purchase can be seen after the last transaction)."""
    silent = (as_of - last_day).days
    warnings = []
    if silent > horizon_days:
        warnings.append(
            Notice(
                "data_too_old",
                days=silent,
                as_of=as_of,
                last=last_day,
                horizon=horizon_days,
                last_iso=last_day,
            )
        )
    elif silent > 7:
        warnings.append(Notice("data_old", days=silent, as_of=as_of, last=last_day))
    return {
        "first_transaction": first_day.isoformat(),
        "last_transaction": last_day.isoformat(),
        "days_from_last_transaction_to_as_of": silent,
        "warnings": warnings,
    }


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
