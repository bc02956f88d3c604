"""File I/O at the edges: atomic writes, locks, JSON, safe CSV for Excel."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from churnguard.errors import LockedError, RefusedTargetError
from churnguard.timing import timed


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success fsync and rename it into place.

    A crash or exception leaves ``target`` untouched and removes the temporary file.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # short, bounded name: ".{target.name}…" would pass NAME_MAX (255 bytes) for long targets
    fd, tmp_name = tempfile.mkstemp(prefix=".cg-", suffix=".tmp", dir=target.parent)
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
    except OSError as exc:
        if exc.filename is None:  # a failed write() names no file: say which one it was
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        raise
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


# Parquet key-value metadata of transactions.parquet: where its amounts came from (ingest
# writes it; score reads it to say when value is not money)
AMOUNT_METADATA_KEY = "churnguard.amount"


def dumps_json(obj: Any) -> str:
    """Deterministic, strict JSON (sorted keys, fixed indent, trailing newline). NaN and
    infinities are refused (ValueError): strict parsers reject them, and DVC metrics and
    the scheduler's ``--json`` are read by such parsers."""
    return (
        json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, default=str, allow_nan=False)
        + "\n"
    )


def write_json_atomic(target: str | Path, obj: Any) -> None:
    write_text_atomic(target, dumps_json(obj))


def write_parquet_atomic(target: str | Path, frame: pd.DataFrame) -> None:
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)


@timed("hash inputs (md5)")
def file_md5(path: str | Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "md5").hexdigest()


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _open_lock_file(lock_path: Path) -> int:
    """Open (creating) a lock file without following a symlink; refuse anything that is not a
    plain file with a single name, so a planted link cannot aim our writes at another file."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    hint = "remove it (churnguard recreates it) and run again"
    try:
        fd = os.open(lock_path, flags, 0o666 & ~current_umask())
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RefusedTargetError(
                f"{lock_path}: the lock file is a symbolic link; {hint}"
            ) from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        kind = (
            "not a regular file" if not stat.S_ISREG(st.st_mode) else "a hard link to another file"
        )
        raise RefusedTargetError(f"{lock_path}: the lock file is {kind}; {hint}")
    return fd


def lock_path_for(folder: str | Path) -> Path:
    folder = Path(folder)
    return folder.parent / f".{folder.name}.lock"


@contextlib.contextmanager
def folder_lock(folder: str | Path, wait_seconds: float = 0.0) -> Iterator[Path]:
    """Hold an exclusive lock for writing ``folder``; raise :class:`LockedError` if it is
    still taken after ``wait_seconds`` (0: do not wait).

    The lock is ``flock`` on ``.<folder name>.lock`` beside the folder (the folder itself is
    swapped whole on success). The OS releases it when the process dies, so a killed run
    never leaves a stale lock behind. The lock file is opened with ``O_NOFOLLOW`` and must be
    a plain file with one link: a symlink or hard link planted there is refused (exit 2).
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock_path = lock_path_for(folder)
    fd = _open_lock_file(lock_path)
    try:
        deadline = time.monotonic() + wait_seconds
        while not _try_flock(fd) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _try_flock(fd):
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise LockedError(
                f"{folder} is being written by {holder}; this run stops without touching it. "
                "Retry when that run has finished (the lock is released when it exits)."
            )
        with contextlib.suppress(OSError):  # who holds it, for the message; a full disk is fine
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        yield lock_path
    finally:
        os.close(fd)


def _try_flock(fd: int) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def try_folder_lock(folder: str | Path) -> Iterator[bool]:
    """Like :func:`folder_lock` but yields ``False`` instead of raising when the lock is held
    (or cannot be opened safely): for housekeeping that must skip a folder in use."""
    try:
        fd = _open_lock_file(lock_path_for(folder))
    except (OSError, RefusedTargetError):
        yield False
        return
    try:
        yield _try_flock(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- owned folders
# A folder churnguard writes holds a manifest listing its files. Only such a folder is ever
# replaced, and only the files it lists are removed: anything else is refused, never deleted.

STAGING_MARKER = ".churnguard-staging"


def read_manifest(folder: Path, manifest_name: str) -> dict[str, Any] | None:
    """The folder's churnguard manifest, or ``None`` when it has none we wrote."""
    path = folder / manifest_name
    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list | dict):
        return None
    if data.get("written_by") == "churnguard":
        return data
    inputs = data.get("inputs")  # manifests written before the marker existed
    if isinstance(data.get("key"), str) and isinstance(inputs, dict) and "churnguard" in inputs:
        return data
    return None


def _listed_files(manifest: dict[str, Any], manifest_name: str) -> set[str]:
    return {str(f) for f in manifest["files"]} | {manifest_name}


def foreign_entries(folder: Path, manifest_name: str) -> list[str]:
    """What in ``folder`` the manifest does not account for (files, links, other folders).
    Every entry is foreign when there is no manifest."""
    manifest = read_manifest(folder, manifest_name)
    listed = _listed_files(manifest, manifest_name) if manifest else set()
    parents = {str(Path(f).parent) for f in listed} | {"."}
    parents |= {str(p) for f in listed for p in Path(f).parents}
    foreign: list[str] = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            foreign.append(rel)
        elif path.is_dir():
            if rel not in parents:
                foreign.append(rel + "/")
        elif rel not in listed:
            foreign.append(rel)
    return foreign


def check_replaceable(target: Path, manifest_name: str, flag: str) -> None:
    """Refuse (exit 2) an existing ``target`` that churnguard may not replace: a file, a
    symlink, or a folder holding anything its manifest does not list. An absent target or an
    empty folder is fine."""
    if target.is_symlink():
        raise RefusedTargetError(
            f"{target} is a symbolic link; churnguard writes only into folders it created. "
            f"Point {flag} at a new or churnguard-written folder."
        )
    if not target.exists():
        return
    if not target.is_dir():
        raise RefusedTargetError(
            f"{target} exists and is not a folder; churnguard never replaces it. Point {flag} "
            "at a new or churnguard-written folder."
        )
    foreign = foreign_entries(target, manifest_name)
    if not foreign:
        return
    shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    why = (
        "it holds files churnguard did not write"
        if read_manifest(target, manifest_name)
        else f"it is not a churnguard output folder (no {manifest_name})"
    )
    raise RefusedTargetError(
        f"{target}: refusing to replace it: {why} ({shown}). Nothing was changed. Point {flag} "
        "at a new folder, or move those files out."
    )


def remove_owned(folder: Path, manifest_name: str) -> list[str]:
    """Delete the files ``folder``'s manifest lists (and the manifest), then the folders left
    empty. Returns what had to be left behind (foreign entries); the folder goes only when
    nothing is left."""
    manifest = read_manifest(folder, manifest_name)
    if manifest is None:  # not ours: only an empty folder goes
        left = foreign_entries(folder, manifest_name)
        if not left:
            folder.rmdir()
        return left
    listed = _listed_files(manifest, manifest_name) | {STAGING_MARKER}
    for rel in sorted(listed):
        parts = Path(rel).parts
        if not parts or Path(rel).is_absolute() or ".." in parts:
            continue  # a manifest never names a path outside its folder; ignore one that does
        path = folder / rel
        inside = os.path.realpath(path).startswith(os.path.realpath(folder) + os.sep)
        if inside and path.is_file() and not path.is_symlink():
            path.unlink()
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
            path.rmdir()
    left = [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*"))]
    if not left:
        folder.rmdir()
    return left


def backup_name(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.previous"


def restore_interrupted_swap(folder: str | Path, manifest_name: str = "manifest.json") -> bool:
    """Call under the folder's lock. If a run died between the two renames of
    :func:`replace_dir`, put the old folder back; remove a finished swap's leftover backup
    (its own files only). A ``.<name>.previous`` that churnguard did not write is refused."""
    folder = Path(folder)
    backup = backup_name(folder)
    if not backup.exists() and not backup.is_symlink():
        return False
    if backup.is_symlink() or not backup.is_dir() or read_manifest(backup, manifest_name) is None:
        raise RefusedTargetError(
            f"{backup} is in the way of the folder swap and churnguard did not write it; "
            "move it elsewhere and run again. Nothing was changed."
        )
    if not folder.exists() and not folder.is_symlink():
        os.replace(backup, folder)
        return True
    left = remove_owned(backup, manifest_name)
    if left:
        raise RefusedTargetError(
            f"{backup}: files churnguard did not write appeared in the previous lists' folder "
            f"({', '.join(left[:5])}); move them elsewhere and run again."
        )
    return False


@timed("swap folder in")
def replace_dir(
    staging: str | Path, final: str | Path, manifest_name: str = "manifest.json"
) -> list[str]:
    """Swap a fully written ``staging`` folder into ``final``.

    Every file in ``staging`` is fsynced first. ``final`` (checked with
    :func:`check_replaceable` by the caller, under the lock) is moved aside, ``staging`` renamed
    into place, and only then are the old folder's own files removed; a crash between the two
    renames is undone by :func:`restore_interrupted_swap` on the next run. Returns anything
    foreign that was left in the old folder (it stays, as ``.<name>.previous``).
    """
    staging, final = Path(staging), Path(final)
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    backup = backup_name(final)
    had_old = final.exists()
    if had_old:
        os.replace(final, backup)
    with contextlib.suppress(FileNotFoundError):
        (staging / STAGING_MARKER).unlink()
    os.replace(staging, final)
    _fsync_dir(final.parent)
    return remove_owned(backup, manifest_name) if had_old and backup.exists() else []


def new_staging_dir(final: Path) -> Path:
    """A staging folder beside ``final``, marked as churnguard's from its first moment so a
    killed run's leftover can be told apart from anyone else's folder."""
    staging = make_temp_dir(f".{final.name}.staging-", final.parent)
    try:
        (staging / STAGING_MARKER).write_text(f"pid {os.getpid()}\n", encoding="utf-8")
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def remove_stale_staging(
    root: Path, current: Path, manifest_name: str = "manifest.json"
) -> list[Path]:
    """Remove staging folders that killed runs left in ``root`` (any date): only folders
    churnguard marked, and only when no live run holds that folder's lock. ``current`` is the
    folder whose lock the caller already holds."""
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for staging in sorted(root.glob(".*.staging-*")):
        if staging.is_symlink() or not staging.is_dir():
            continue
        marked = (staging / STAGING_MARKER).is_file() or read_manifest(
            staging, manifest_name
        ) is not None
        if not marked:
            continue
        target = root / staging.name[1:].rsplit(".staging-", 1)[0]
        if target == current:  # its lock is the caller's
            shutil.rmtree(staging)
        else:
            with try_folder_lock(target) as free:
                if not free:
                    continue  # a live run is writing it
                shutil.rmtree(staging)
        removed.append(staging)
    return removed
