"""Was the machine quiet while a run measured? The load average, and the CPU time that processes
other than the run's own took. Imports no framework.

Timing on a shared machine measures the neighbours as much as the model: a run records how busy
the machine was so that a report can say so out loud instead of presenting disturbed figures as
clean. "Other processes" is every CPU second the machine spent outside this process and the
worker processes it waited for (their CPU time is accounted to it on exit).
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import asdict, dataclass

import psutil

QUIET_SHARE = 0.10  # other processes may take this share of the cores before a run is "busy"


@dataclass(frozen=True)
class MachineLoad:
    """How busy the machine was over one run."""

    wall_s: float
    cores: int
    other_cpu_s: float  # CPU seconds of processes that are not this run's
    load_average_start: float  # 1-minute load average when the run began
    load_average_end: float

    @property
    def other_share(self) -> float:
        """Other processes' CPU time as a share of all the cores' time during the run."""
        capacity = self.wall_s * self.cores
        return self.other_cpu_s / capacity if capacity > 0 else 0.0

    @property
    def quiet(self) -> bool:
        return self.other_share <= QUIET_SHARE

    def to_dict(self) -> dict[str, float | int | bool]:
        return {**asdict(self), "other_share": self.other_share, "quiet": self.quiet}


def _busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent not idle since boot."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _own_cpu_s() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


class LoadMeter:
    """Start it when a run begins; `stop` says how busy the machine was since."""

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._busy = _busy_cpu_s()
        self._own = _own_cpu_s()
        self._load = _load_average()

    def stop(self) -> MachineLoad:
        busy = _busy_cpu_s() - self._busy
        own = _own_cpu_s() - self._own
        return MachineLoad(
            wall_s=time.monotonic() - self._started,
            cores=psutil.cpu_count() or 1,
            other_cpu_s=max(busy - own, 0.0),
            load_average_start=self._load,
            load_average_end=_load_average(),
        )
