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
