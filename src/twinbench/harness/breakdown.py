"""Where a run's wall time went: parity, set-up, compile, steady-state timing, everything else.

Only steady-state timing is measurement; the rest is what a run pays to be fair (parity first,
a fresh process per cell, compilation kept out of the step time). A run stores and prints the
breakdown so that a slow run says why.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

CATEGORIES = (
    "parity",
    "peak probe",
    "set-up",  # worker start, imports, model build, warm-up, block calibration
    "compile and first step",
    "steady-state timing",
)
OTHER = "everything else"  # store writes, run info, process shutdowns


@dataclass
class TimeBreakdown:
    """Seconds per category, added up as the run goes."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0.0))
    started: float = field(default_factory=time.monotonic)

    def add(self, category: str, seconds: float) -> None:
        self.seconds[category] += max(seconds, 0.0)

    @contextmanager
    def timed(self, category: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.add(category, time.monotonic() - start)

    def to_dict(self) -> dict[str, float]:
        """Every category, the rest of the wall time as ``everything else``, and ``wall_s``."""
        wall = time.monotonic() - self.started
        measured = sum(self.seconds.values())
        return {**self.seconds, OTHER: max(wall - measured, 0.0), "wall_s": wall}
