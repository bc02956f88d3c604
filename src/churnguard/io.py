"""File I/O at the edges: atomic writes, locks, JSON, safe CSV for Excel."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from churnguard.errors import LockedError

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success fsync and rename it into place.

    A crash or exception leaves ``target`` untouched and removes the temporary file.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        # mkstemp makes 0600 files; give the usual mode so colleagues and DVC can read them
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once at import: setting it later would race other threads


def current_umask() -> int:
    return _UMASK


def make_temp_dir(prefix: str, parent: Path) -> Path:
    """``mkdtemp`` beside its final place, with the mode a plain ``mkdir`` would give (not
    0700), so a folder swapped into place is readable as usual."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(folder, 0o777 & ~current_umask())
    return folder


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def write_bytes_atomic(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | Path, text: str, encoding: str = "utf-8") -> None:
    write_bytes_atomic(target, text.encode(encoding))


def dumps_json(obj: Any) -> str:
    """Deterministic JSON (sorted keys, fixed indent, trailing newline)."""
    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


def write_json_atomic(target: str | Path, obj: Any) -> None:
    write_text_atomic(target, dumps_json(obj))


def write_parquet_atomic(target: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)


def file_md5(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[Path]:
    """Hold an exclusive, non-blocking lock for writing ``folder``; raise :class:`LockedError` if taken.

    The lock is ``flock`` on ``.<folder name>.lock`` beside the folder (the folder itself is
    swapped whole on success). The OS releases it when the process dies, so a killed run
    never leaves a stale lock behind.
    """
    import fcntl

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock_path = folder.parent / f".{folder.name}.lock"
    fh = open(lock_path, "a+")  # noqa: SIM115 - held for the duration of the context
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise LockedError(
                f"{folder} is being written by {holder}; this run stops without touching it. "
                "Retry when that run has finished (the lock is released when it exits)."
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        yield lock_path
    finally:
        fh.close()


def backup_name(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.previous"


def restore_interrupted_swap(folder: str | Path) -> bool:
    """If a run died between the two renames of :func:`replace_dir`, put the old folder back."""
    folder = Path(folder)
    backup = backup_name(folder)
    if backup.exists() and not folder.exists():
        os.replace(backup, folder)
        return True
    if backup.exists():
        shutil.rmtree(backup)
    return False


def replace_dir(staging: str | Path, final: str | Path) -> None:
    """Swap a fully written ``staging`` folder into ``final``.

    Every file in ``staging`` is fsynced first. ``final`` is moved aside, ``staging`` renamed
    into place, and the old folder removed; a crash between the two renames is undone by
    :func:`restore_interrupted_swap` on the next run (under the same lock).
    """
    staging, final = Path(staging), Path(final)
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    backup = backup_name(final)
    if final.exists():
        os.replace(final, backup)
    os.replace(staging, final)
    _fsync_dir(final.parent)
    if backup.exists():
        shutil.rmtree(backup)


def neutralise_cell(value: str) -> str:
    """Stop Excel from reading a text cell as a formula (OWASP CSV injection advice)."""
    if value and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def excel_safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``frame`` with every text cell neutralised; numeric columns untouched."""
    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            continue
        if pd.api.types.is_datetime64_any_dtype(series):
            continue
        if series.dtype != object and not pd.api.types.is_string_dtype(series):
            # categoricals, intervals, periods, …: cell by cell, as text cells would be
            out[col] = series.astype(object).map(lambda v: neutralise_cell(v) if isinstance(v, str) else v)
            continue
        text = series.map(lambda v: v if isinstance(v, str) else None) if series.dtype == object else series
        hit = text.str.startswith(FORMULA_PREFIXES, na=False).to_numpy(dtype=bool)
        if hit.any():  # only the few risky cells go through neutralise_cell
            series = series.astype(object).copy()
            series[hit] = [neutralise_cell(v) for v in series[hit]]
        out[col] = series
    return out


def write_excel_csv_atomic(target: str | Path, frame: pd.DataFrame) -> None:
    """CSV that opens cleanly in Excel: UTF-8 with BOM, CRLF-free, formulas neutralised."""
    safe = excel_safe_frame(frame)
    text = safe.to_csv(index=False, lineterminator="\n")
    write_bytes_atomic(target, b"\xef\xbb\xbf" + text.encode("utf-8"))


_UNSAFE = re.compile(r"[^\w\-. ]+", flags=re.UNICODE)


def safe_file_stem(name: str, taken: set[str] | None = None, max_len: int = 80) -> str:
    """Turn a manager name into a safe, unique file stem (no path traversal, no collisions).

    Letters of any script are kept (Arabic and Persian names stay readable); separators,
    control characters and leading dots are replaced. ``taken`` (case-insensitive) is
    updated so two names that clean to the same stem get distinct suffixes.
    """
    text = unicodedata.normalize("NFC", str(name))
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = _UNSAFE.sub("_", text).strip(" ._")
    text = re.sub(r"_+", "_", text)[:max_len].strip(" ._") or "unnamed"
    if text.upper() in {"CON", "PRN", "AUX", "NUL"} or re.fullmatch(r"(?i)(COM|LPT)\d", text):
        text = f"_{text}"
    if taken is None:
        return text
    stem, i = text, 2
    while stem.casefold() in taken:
        stem = f"{text}_{i}"
        i += 1
    taken.add(stem.casefold())
    return stem
