"""Exceptions that map to documented CLI exit codes."""

from __future__ import annotations

# Exit codes (documented in the README; keep in sync).
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_CONFIG = 2
EXIT_DATA = 3
EXIT_MODEL = 4
EXIT_LOCKED = 5


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
