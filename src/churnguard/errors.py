"""Exceptions that map to documented CLI exit codes."""

from __future__ import annotations

# Exit codes (documented in the README; keep in sync).
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_CONFIG = 2
EXIT_DATA = 3
EXIT_MODEL = 4
EXIT_LOCKED = 5
EXIT_OUTPUT = 6


class ChurnguardError(Exception):
    """Base class: carries the exit code the CLI returns."""

    exit_code = EXIT_INTERNAL


class ConfigError(ChurnguardError):
    """params.yaml or a flag is wrong (exit 2)."""

    exit_code = EXIT_CONFIG


class DataError(ChurnguardError):
    """Input data rejected: missing columns, too much quarantined, empty population (exit 3)."""

    exit_code = EXIT_DATA


class ModelError(ChurnguardError):
    """Model missing, unusable, or its feature list does not match the data (exit 4)."""

    exit_code = EXIT_MODEL


class LockedError(ChurnguardError):
    """Another run holds the lock on the output folder (exit 5)."""

    exit_code = EXIT_LOCKED


class OutputError(ChurnguardError):
    """An output cannot be written: disk full, read-only folder, no permission (exit 6).

    Nothing already in place is damaged: writes go to temporary files first."""

    exit_code = EXIT_OUTPUT


class RefusedTargetError(ConfigError):
    """An output target exists and churnguard did not create it (exit 2): it is never
    replaced or removed."""


_NO_SPACE = {"ENOSPC", "EDQUOT", "EFBIG"}
_NO_ACCESS = {"EACCES", "EPERM", "EROFS"}


def output_error(exc: OSError, what: str = "output", where: object = None) -> OutputError | None:
    """Turn a disk-full or permission ``OSError`` into an :class:`OutputError` that names the
    path (the error's own, else ``where``) and what to do; ``None`` for any other error (a
    bug, which should stay loud)."""
    import contextlib
    import errno
    import shutil
    from pathlib import Path

    name = errno.errorcode.get(exc.errno or 0, "")
    path = exc.filename or where or "(a file it was writing)"
    if name in _NO_SPACE:
        free = ""
        probe = Path(str(path))
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        with contextlib.suppress(OSError):
            free = f" ({shutil.disk_usage(probe).free / 1e6:,.0f} MB free there)"
        return OutputError(
            f"{path}: no space left to write the {what}{free}. Free space on that file system "
            "(old lists under score.output_root, DuckDB spill files under engine.temp_directory) "
            "or point the output elsewhere, then run again; what was already in place is intact."
        )
    if name in _NO_ACCESS:
        return OutputError(
            f"{path}: cannot write the {what} ({exc.strerror}). Make the folder writable for this "
            "user, or point the output elsewhere (--output-dir / score.output_root); what was "
            "already in place is intact."
        )
    return None
