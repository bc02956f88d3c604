"""Phase timings: the code names its phases, a benchmark collects them.

Functions worth timing carry ``@timed("phase name")``. Outside :func:`collect` the
decorator only calls the function (one global read); inside it, every call adds its wall
time and a count to the collector, so ``benchmarks/score.py`` reads the phases of a real
run without patching any module. Nested phases (``score_frame`` around ``predict``) each
count their own total. Standard library only: pure modules may use it.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Timings:
    """Seconds and calls per phase name, for one :func:`collect` block."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))


_active: Timings | None = None


def timed(name: str) -> Callable[[F], F]:
    """Count the decorated function's wall time under ``name`` while collecting."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            into = _active
            if into is None:
                return fn(*args, **kwargs)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                into.seconds[name] += time.perf_counter() - t0
                into.calls[name] += 1

        return wrapper  # type: ignore[return-value]

    return decorate


@contextmanager
def collect() -> Iterator[Timings]:
    """Collect the timed phases of everything run inside the block (one block at a time)."""
    global _active
    if _active is not None:
        raise RuntimeError("timing.collect() blocks do not nest")
    _active = Timings()
    try:
        yield _active
    finally:
        _active = None
