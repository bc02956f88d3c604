"""The code's own phase timings (churnguard.timing), which benchmarks read instead of
patching modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from churnguard import timing

ROOT = Path(__file__).resolve().parents[2]


@timing.timed("outer")
def outer(n: int) -> int:
    return sum(inner(i) for i in range(n))


@timing.timed("inner")
def inner(i: int) -> int:
    return i * 2


@timing.timed("fails")
def fails() -> None:
    raise ValueError("boom")


def test_outside_a_collect_block_the_function_just_runs():
    assert outer(3) == 6
    assert timing._active is None


def test_nested_phases_each_count_their_calls_and_time():
    with timing.collect() as t:
        assert outer(4) == 12
        outer(2)
    assert t.calls == {"outer": 2, "inner": 6}
    assert t.seconds["outer"] >= t.seconds["inner"] > 0
    # collected once, then off again
    outer(1)
    assert t.calls["outer"] == 2


def test_a_failing_phase_is_still_counted_and_raises():
    with timing.collect() as t, pytest.raises(ValueError, match="boom"):
        fails()
    assert t.calls["fails"] == 1


def test_blocks_do_not_nest():
    with timing.collect(), pytest.raises(RuntimeError, match="do not nest"), timing.collect():
        pass
    assert timing._active is None


def test_the_wrapper_keeps_the_function_name_and_doc():
    assert outer.__name__ == "outer" and inner.__wrapped__(2) == 4


def test_every_phase_the_score_benchmark_reports_is_timed_in_the_package():
    tree = ast.parse((ROOT / "benchmarks" / "score.py").read_text(encoding="utf-8"))
    phases = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "PHASES"
    )
    code = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "src").rglob("*.py"))
    timed = set(re.findall(r'@timed\("([^"]+)"\)', code))
    assert phases and {p.strip() for p in phases} <= timed, {p.strip() for p in phases} - timed
