"""Shared helpers for the benchmarks: cached synthetic canonical data, child-process runs.

Data is generated once per size with :func:`churnguard.synth.generate_tables` and written
as *canonical* transactions Parquet — the schema and row order ``churnguard ingest``
writes (customer_id, order_id, ts timestamp[us], amount, quantity double, account_manager,
customer_name, region, product_id null, source_row; sorted by customer_id, ts,
source_row; zstd). Large sizes are generated in chunks of customers (one seed per chunk,
customer and order ids prefixed by the chunk number) so generation never needs more than
~1.5 GB. Files are cached under ``benchmarks/.data/`` with a ``.json`` sidecar naming the
generator settings; a sidecar mismatch regenerates.

Every measurement runs in its own child process (``python <benchmark> --child SPEC``);
the parent reads that child's peak RSS from ``os.wait4`` so figures never mix.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
DATA_DIR = ROOT / ".data"
RESULTS_DIR = ROOT / "results"
TX_PER_CUSTOMER_DEFAULT = (
    8.0  # synthetic default params (orders_per_year 6): ~8.0 lines per customer
)
CHUNK_CUSTOMERS = 1_000_000
CANONICAL_ROW_GROUP = 122_880  # DuckDB's own row-group size (what ingest writes)


def parse_count(text: str) -> int:
    """``"50M"`` → 50_000_000, ``"100k"`` → 100_000, ``"1500"`` → 1500."""
    t = text.strip().lower().replace("_", "")
    mult = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def machine() -> dict[str, Any]:
    import duckdb
    import pandas as pd

    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_avg_at_start": load,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pandas": pd.__version__,
        "platform": platform.platform(),
    }


# -- canonical synthetic data ------------------------------------------------------------


def _canonical_chunk(
    chunk: int, n_customers: int, seed: int, row_offset: int, overrides: dict[str, Any]
):
    """One chunk of customers as a canonical Arrow table, ids prefixed by the chunk number."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from churnguard.config import GenerateParams
    from churnguard.synth import generate_tables

    cfg = GenerateParams(n_customers=n_customers, seed=seed + chunk, **overrides)
    tx, _ = generate_tables(cfg)
    n = tx.num_rows
    prefix = f"{chunk:02d}"
    # generate_tables rows are in (ts, customer, order) order, like the CSV ingest reads
    source_row = pa.array(range(row_offset + 1, row_offset + n + 1), type=pa.int64())
    cust = pc.utf8_replace_slice(tx["customer_id"], start=1, stop=1, replacement=prefix)
    order = pc.utf8_replace_slice(tx["order_id"], start=1, stop=1, replacement=prefix)
    table = pa.table(
        {
            "customer_id": cust,
            "order_id": order,
            "ts": pc.cast(tx["ts"], pa.timestamp("us")),
            "amount": tx["amount"],
            "quantity": pc.cast(tx["quantity"], pa.float64()),
            "account_manager": tx["account_manager"],
            "customer_name": tx["customer_name"],
            "region": tx["region"],
            "product_id": pa.nulls(n, type=pa.string()),
            "source_row": source_row,
        }
    )
    del tx
    return table.sort_by(
        [("customer_id", "ascending"), ("ts", "ascending"), ("source_row", "ascending")]
    )


def ensure_canonical(
    path: Path,
    n_customers: int,
    *,
    seed: int = 42,
    overrides: dict[str, Any] | None = None,
    chunk_customers: int = CHUNK_CUSTOMERS,
) -> dict[str, Any]:
    """Generate (or reuse) a canonical transactions Parquet; return its sidecar metadata."""
    import pyarrow.parquet as pq

    overrides = dict(overrides or {})
    meta_path = path.with_suffix(".json")
    wanted = {
        "n_customers": n_customers,
        "seed": seed,
        "overrides": overrides,
        "chunk_customers": chunk_customers,
        "format": 1,
    }
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if {k: meta.get(k) for k in wanted} == wanted:
            return meta
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # concurrent generators never share it
    t0 = time.perf_counter()
    rows = 0
    writer = None
    try:
        for chunk, start in enumerate(range(0, n_customers, chunk_customers)):
            size = min(chunk_customers, n_customers - start)
            table = _canonical_chunk(chunk, size, seed, rows, overrides)
            if writer is None:
                writer = pq.ParquetWriter(str(tmp), table.schema, compression="zstd")
            writer.write_table(table, row_group_size=CANONICAL_ROW_GROUP)
            rows += table.num_rows
            print(
                f"  generated chunk {chunk}: {size:,} customers, {rows:,} rows so far",
                file=sys.stderr,
            )
            del table
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, path)
    meta = {
        **wanted,
        "rows": rows,
        "file_mb": round(path.stat().st_size / 1e6, 1),
        "generate_seconds": round(time.perf_counter() - t0, 1),
    }
    meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return meta


# -- child processes --------------------------------------------------------------------


def run_child(script: Path, spec: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Run ``script --child SPEC`` in a fresh interpreter; return its JSON plus its peak RSS.

    ``peak_rss_mb`` is the child's ``ru_maxrss`` from ``os.wait4`` (this child only).
    """
    with tempfile.TemporaryDirectory(prefix="cg-bench-child-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(script), "--child", json.dumps(spec), "--child-out", str(out)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd)
        deadline = None if timeout is None else t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        rss_kib = usage.ru_maxrss
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    result.update(
        peak_rss_mb=round(
            rss_kib / (1024 * 1024) if sys.platform == "darwin" else rss_kib / 1024, 1
        ),
        child_wall_seconds=round(wall, 3),
        exit_code=proc.returncode,
    )
    if proc.returncode != 0:
        result.setdefault("error", f"child exited with {proc.returncode}")
    return result


class DirSizeSampler:
    """Polls the size of a folder (DuckDB's spill directory) in a thread; keeps the peak."""

    def __init__(self, folder: Path, every: float = 0.25) -> None:
        self.folder, self.every, self.peak = Path(folder), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _size(self) -> int:
        total = 0
        for root, _, files in os.walk(self.folder):
            for f in files:
                with contextlib.suppress(OSError):  # spill files come and go while we look
                    total += os.path.getsize(os.path.join(root, f))
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._size())
            self._stop.wait(self.every)

    def __enter__(self) -> DirSizeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._size())


def child_main(argv: list[str], jobs: dict[str, Any]) -> int | None:
    """If ``argv`` asks for a child job, run it, write its JSON and return 0; else None."""
    if "--child" not in argv:
        return None
    spec = json.loads(argv[argv.index("--child") + 1])
    out = Path(argv[argv.index("--child-out") + 1])
    result = jobs[spec.pop("job")](**spec)
    out.write_text(json.dumps(result), encoding="utf-8")
    return 0


# -- docs/benchmarks.md: the "Features and scoring" section ------------------------------

DOCS = ROOT.parent / "docs" / "benchmarks.md"
DOCS_SECTION = "## Features and scoring"


def write_docs_section(section: str, title: str = DOCS_SECTION, path: Path = DOCS) -> None:
    """Replace (or append) one ``## `` section of docs/benchmarks.md, keeping the others."""
    from churnguard.io import write_text_atomic

    if path.exists():
        text = path.read_text(encoding="utf-8")
    else:
        text = (
            "# Benchmarks\n\n"
            "Measured figures, each section generated by the script it names. Machine: 2 shared "
            "cores (±40%).\n"
        )
    lines = text.splitlines()
    body = section.rstrip("\n").splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.strip() == title), None)
    if start is None:
        new_lines = [*lines, "", *body] if lines else body
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), None)
        rest = ["", *lines[end:]] if end is not None else []
        new_lines = [*lines[:start], *body, *rest]
    write_text_atomic(path, "\n".join(new_lines).rstrip("\n") + "\n")


def _s(x: Any, digits: int = 1) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def _gb(mb: Any) -> str:
    return "–" if mb is None else f"{mb / 1024:.2f}"


def _cell(r: dict[str, Any] | None, key: str = "median_seconds", digits: int = 1) -> str:
    if not r:
        return "–"
    if r.get("error"):
        return "failed"
    return _s(r.get(key), digits)


def _by_size(features: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return sorted(features.get("sizes", {}).items(), key=lambda kv: kv[1].get("transactions", 0))


def _auto_per_query(transactions: int | None, memory_limit: str = "2GB") -> int | None:
    if transactions is None:
        return None
    from churnguard.features import cutoffs_per_query

    return cutoffs_per_query("auto", transactions, memory_limit)


def render_docs_section(features: dict[str, Any] | None, score: dict[str, Any] | None) -> str:
    """The section from results/features.json and results/score.json (either may be None)."""
    out = [
        DOCS_SECTION,
        "",
        "Generated by `make bench-features` (`benchmarks/features.py`) and `make bench-score` "
        "(`benchmarks/score.py`) — do not edit by hand; every figure is in "
        "`benchmarks/results/features.json` and `benchmarks/results/score.json`.",
        "",
        "Synthetic canonical transactions (`churnguard.synth.generate_tables`, written with the "
        "schema and row order `churnguard ingest` writes; cached in `benchmarks/.data/`). Every "
        "measurement runs in its own child process; peak RSS is that process's `ru_maxrss` "
        "(MiB; the 4 GB target is 4096 MiB). The machine has 2 cores and is shared with other "
        "work: expect ±40%, and read the ratios (measured side by side, alternating) rather "
        "than the absolute seconds. The largest sizes ran once.",
        "",
    ]
    if features:
        eng = features.get("engine", {})
        load = features.get("machine", {}).get("load_avg_at_start")
        out += [
            "### Feature build per cutoff against a pandas RFM summary",
            "",
            f"Command: `{features.get('command', '').strip()}` (started {features.get('started')}, "
            f"load average at start {load}). DuckDB {features.get('machine', {}).get('duckdb')}, "
            f"threads {eng.get('threads')}, memory_limit {eng.get('memory_limit')}; "
            f"pandas {features.get('machine', {}).get('pandas')}. One cutoff "
            f"(as-of − {features.get('horizon_days')} days), labelled.",
            "",
            "- **full build**: `features.build_snapshot` for one cutoff — every feature, the "
            "label, written to Parquet (package `sql/features.sql`).",
            *(
                ["- **proposed SQL**: the same with the modified SQL given by `--proposed-sql`."]
                if features.get("proposed_sql")
                else []
            ),
            "- **pandas summary**: `read_parquet` + groupby recency / frequency / monetary / "
            "tenure (lifetimes' `summary_data_from_transaction_data` by hand) on the same file.",
            "- **DuckDB summary**: the same basic summary as one DuckDB query (the summaries "
            "agree exactly).",
            "",
        ]
        has_prop = bool(features.get("proposed_sql"))
        out += [
            "| transactions | customers | full build s (tx/s) | peak RSS GB "
            + ("| proposed SQL s | peak RSS GB " if has_prop else "")
            + "| pandas summary s | peak RSS GB | DuckDB summary s | pandas ÷ full "
            + ("| pandas ÷ proposed " if has_prop else "")
            + "| runs |",
            "|---|---|---|---|---|---|---|---|---|" + ("---|---|---|" if has_prop else ""),
        ]
        for name, r in _by_size(features):
            oc = r.get("one_cutoff", {})
            full, prop = oc.get("duckdb_full", {}), oc.get("duckdb_full_proposed")
            pdm, basic = oc.get("pandas_summary", {}), oc.get("duckdb_basic", {})
            tps = full.get("transactions_per_second")
            prop_cells = (
                f"| {_cell(prop)} | {_gb((prop or {}).get('peak_rss_mb'))} " if has_prop else ""
            )
            prop_ratio = (
                f"| {_s(r.get('ratio_pandas_summary_over_duckdb_full_proposed'), 2)}× "
                if has_prop
                else ""
            )
            out.append(
                f"| {r['transactions']:,} ({name}) | {r['customers']:,} | {_cell(full)}"
                f"{f' ({tps:,.0f})' if tps else ''} | {_gb(full.get('peak_rss_mb'))} "
                f"{prop_cells}| {_cell(pdm)} "
                f"| {_gb(pdm.get('peak_rss_mb'))} | {_cell(basic)} "
                f"| {_s(r.get('ratio_pandas_summary_over_duckdb_full'), 2)}× "
                f"{prop_ratio}| {r.get('repeats')} |"
            )
        rows6 = []
        for name, r in _by_size(features):
            six = r.get("six_cutoffs", {})
            auto = six.get(
                "auto_cutoffs_per_query",
                _auto_per_query(r.get("transactions"), eng.get("memory_limit", "2GB")),
            )
            n_six = len(six.get("cutoffs", [])) or 6
            default = (
                None
                if auto is None
                else "package_one_query"
                if auto >= n_six
                else "package_per_cutoff"
                if auto == 1
                else f"package_{auto}_per_query"
            )
            for variant, v in six.items():
                if not isinstance(v, dict):
                    continue
                spill = v.get("spill_peak_mb")
                status = (
                    f"failed: {v['error'][:90]}"
                    + (
                        f" after {v['seconds_until_error']:.0f} s"
                        if v.get("seconds_until_error")
                        else ""
                    )
                    if v.get("error")
                    else ("yes" if v.get("within_4GB_rss") else "no")
                )
                shown = variant.replace("_", " ") + (" (**auto**)" if variant == default else "")
                rows6.append(
                    f"| {name} | {shown} | {_cell(v)} "
                    f"| {_cell(v, 'seconds_per_cutoff')} | {_gb(v.get('peak_rss_mb'))} "
                    f"| {_gb(spill) if spill is not None else '–'} | {status} |"
                )
        if rows6:
            out += [
                "",
                "### Six cutoffs (30 days apart)",
                "",
                "*one query*: all cutoffs in one `build_snapshot` call; *per cutoff*: one query "
                "per cutoff, the parts concatenated in cutoff order (identical rows); *N per "
                "query*: batches of N. **auto** marks what `run_features` does at that size with "
                "the default `features.cutoffs_per_query: auto` (max(1, 25M × memory_limit in GB "
                "// lines) cutoffs per query). Spill is DuckDB's temp folder at its peak; the benchmark caps it "
                f"at {eng.get('max_temp_directory_size')} so a run cannot fill the shared disk.",
                "",
                "| transactions | variant | seconds | s per cutoff | peak RSS GB | spill GB "
                "| within 4 GB RSS |",
                "|---|---|---|---|---|---|---|",
                *rows6,
            ]
        out += ["", "Targets (issue 3):", ""]
        ten = features.get("sizes", {}).get("10M")
        if ten:
            ratio = ten.get("ratio_pandas_summary_over_duckdb_full")
            oc = ten.get("one_cutoff", {})
            out.append(
                f"- 10M transactions, full build per cutoff at least 10× faster than the pandas "
                f"summary: **{'met' if ratio and ratio >= 10 else 'not met'}** — "
                f"{_cell(oc.get('duckdb_full', {}))} s against {_cell(oc.get('pandas_summary', {}))} s "
                f"({_s(ratio, 2)}×). DuckDB running only the same basic summary takes "
                f"{_cell(oc.get('duckdb_basic', {}))} s "
                f"({_s(ten.get('ratio_pandas_summary_over_duckdb_basic'), 2)}× pandas)."
            )
        fifty = features.get("sizes", {}).get("50M", {}).get("six_cutoffs", {})
        if fifty:
            auto = fifty.get(
                "auto_cutoffs_per_query",
                _auto_per_query(50_000_000, eng.get("memory_limit", "2GB")),
            )
            name = "package_per_cutoff" if auto == 1 else f"package_{auto}_per_query"
            v = fifty.get(name, {})
            one = fifty.get("package_one_query", {})
            out.append(
                f"- 50M transactions × 6 cutoffs within 4 GB peak RSS, as `run_features` builds "
                f"them by default ({auto} cutoff(s) per query): "
                f"**{'met' if v.get('within_4GB_rss') else 'not met'}** — "
                f"{_gb(v.get('peak_rss_mb'))} GB in {_cell(v)} s"
                + (
                    f". All six in one query failed ({one['error'][:60]}…), which is why "
                    "`auto` batches."
                    if one.get("error")
                    else ""
                )
            )
        out.append("")
    if score:
        data = score.get("data", {})
        load = score.get("machine", {}).get("load_avg_at_start")
        eng = score.get("engine", {})
        tr = score.get("training", {})
        out += [
            "### Scoring 1M customers end to end",
            "",
            f"Command: `{score.get('command', '').strip()}` (started {score.get('started')}, load "
            f"average at start {load}). `run_score(..., model=<folder>, force=True)` with the "
            f"shipped params.yaml (playbook, capacity, `explain_top` 3, "
            f"`explain_max_customers` as listed per variant), DuckDB threads "
            f"{eng.get('threads')}, memory_limit {eng.get('memory_limit')}. Data: "
            f"{data.get('customers', 0):,} customers, {data.get('transactions', 0):,} "
            f"transactions (`orders_per_year` {data.get('orders_per_year')}). Model: "
            f"`train_model` on the 8 rolling snapshots of a separate {tr.get('customers', 0):,}-"
            f"customer sample ({tr.get('best_iteration')} trees, not timed). Target: under "
            f"{score.get('target_seconds')} s.",
            "",
            "| variant | total s | peak RSS GB | snapshot SQL | predict | actions | SHAP | "
            "reason texts | CRR | write files | rest | customers explained | under 2 min |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, v in score.get("variants", {}).items():
            ph = v.get("phases_seconds") or {}
            main = [
                "snapshot (feature SQL)",
                "predict",
                "actions (playbook, capacity)",
                "reasons: SHAP contributions",
                "reasons: texts",
                "CRR trend",
                "write outputs total",
            ]
            total = v.get("median_seconds")
            rest = None if total is None else total - sum(ph.get(k, 0.0) for k in main)
            explained = v.get("customers_explained")
            out.append(
                f"| {name.replace('_', ' ')} | {_cell(v)} | {_gb(v.get('peak_rss_mb'))} | "
                + " | ".join(_s(ph.get(k)) for k in main)
                + f" | {_s(rest)} | {explained if explained is None else f'{explained:,}'} "
                f"| {'yes' if v.get('under_2_minutes') else 'no'} |"
            )
        one = next(iter(score.get("variants", {}).values()), {})
        out += [
            "",
            f"{one.get('customers_scored', 0):,} customers scored, "
            f"{one.get('customers_on_lists', 0):,} on lists ({one.get('manual_actions', 0):,} "
            f"manual, {one.get('automated_actions', 0):,} automated); risk_list.csv "
            f"{(one.get('largest_files_mb') or {}).get('risk_list.csv', '–')} MB.",
            "",
        ]
    out += [
        "### Notes",
        "",
        "- The 10× target compares unlike work. The full build computes about 40 features "
        "per customer — purchase-gap statistics that need each customer's purchase days in "
        "order (a window), 30/90/180/365-day windows, distinct products, the label window, "
        "RFM quintiles (three ranks) and the latest name, region and manager — and writes "
        "them to Parquet; the pandas summary computes five aggregates in memory. Even "
        "DuckDB running only those five aggregates is about 3–4× faster than pandas here, "
        "not 10×, so no full build can reach 10× on this machine; a fair 10× test would "
        "run the same features in pandas. The feature SQL was made about 2× faster at "
        "10M and 6× at 50M this round (one pass per order and day, one gap window, the "
        "attribute strings looked up once at the end) with identical output.",
        "- *per cutoff* trades time for memory: one query per cutoff keeps the working set "
        "to one cutoff's history. DuckDB's `memory_limit` bounds its buffer pool, not the "
        "process: leave about 1 GB between `engine.memory_limit` and the RSS you can afford.",
        "- Scoring explains (SHAP + reason texts, about 0.3 ms per customer) every manual "
        "action and then the best automated ones up to `score.explain_max_customers`; the "
        "`explain all` variant shows the cost of explaining every listed customer.",
    ]
    return "\n".join(out) + "\n"


def update_docs() -> None:
    """Rewrite the section from whatever result files exist."""

    def load(name: str) -> dict[str, Any] | None:
        p = RESULTS_DIR / name
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else None

    write_docs_section(render_docs_section(load("features.json"), load("score.json")))
