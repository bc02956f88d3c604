"""DuckDB connections configured from the ``engine`` params section."""

from __future__ import annotations

from pathlib import Path

import duckdb

from churnguard.config import EngineParams


def connect(engine: EngineParams) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the memory limit, threads and spill folder from params.

    DuckDB spills to ``temp_directory`` instead of failing when a query needs more
    than ``memory_limit``.
    """
    temp = Path(engine.temp_directory)
    temp.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    con.execute("SET memory_limit = ?", [engine.memory_limit])
    con.execute("SET threads = ?", [engine.threads])
    con.execute("SET temp_directory = ?", [str(temp)])
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET TimeZone = 'UTC'")
    return con


def sql_string(value: str) -> str:
    """Quote a value as a SQL string literal (for DDL positions that refuse bound parameters)."""
    return "'" + value.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """Quote an identifier (column name from a user's file)."""
    return '"' + name.replace('"', '""') + '"'
