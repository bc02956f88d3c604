"""DuckDB connections configured from the ``engine`` params section."""

from __future__ import annotations

from pathlib import Path

import duckdb

from churnguard.config import EngineParams
from churnguard.errors import ConfigError


def connect(engine: EngineParams) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the memory limit, threads and spill folder from params.

    DuckDB spills to ``temp_directory`` instead of failing when a query needs more
    than ``memory_limit``. Bad settings raise :class:`ConfigError` naming the keys.
    """
    temp = Path(engine.temp_directory)
    temp.mkdir(parents=True, exist_ok=True)
    config = {
        "memory_limit": engine.memory_limit,
        "threads": engine.threads,
        "temp_directory": str(temp),
        "preserve_insertion_order": True,  # row order follows the input (source_row)
    }
    try:
        con = duckdb.connect(":memory:", config=config)
    except duckdb.Error as exc:
        raise ConfigError(
            f"DuckDB rejected the engine settings (engine.memory_limit={engine.memory_limit!r}, "
            f"engine.threads={engine.threads}, engine.temp_directory={str(temp)!r}): {exc}"
        ) from None
    con.execute("SET TimeZone = 'UTC'")
    # off for pipelines; inside a Jupyter kernel it is already off and DuckDB refuses to set it
    if con.execute("SELECT current_setting('enable_progress_bar')").fetchall()[0][0]:
        con.execute("SET enable_progress_bar = false")
    return con


def sql_string(value: str) -> str:
    """Quote a value as a SQL string literal (for DDL positions that refuse bound parameters)."""
    return "'" + value.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """Quote an identifier (column name from a user's file)."""
    return '"' + name.replace('"', '""') + '"'
