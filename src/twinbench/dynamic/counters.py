"""Compilations counted as they happen, by each framework's own instruments (never assumed).

JAX: a `jax.monitoring` listener on the backend-compile event, which XLA records once per
executable it compiles (a jitted function per new input shape; under op-by-op execution each
primitive per new shape). PyTorch: Dynamo's counters — ``unique_graphs``, the graphs it captured
and handed to the backend (a recompile captures a new one) — and its compile timers. Each
strategy runs in a fresh worker, so the counters start at zero for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Snapshot:
    """Compilations so far and the seconds they took."""

    compiles: int
    seconds: float


class CompileCounter(Protocol):
    """What a framework's counter answers."""

    def snapshot(self) -> Snapshot: ...


class JaxCompileCounter:
    """Counts XLA backend compilations through a `jax.monitoring` duration listener."""

    def __init__(self) -> None:
        import jax.monitoring
        from jax._src.dispatch import BACKEND_COMPILE_EVENT  # the event's one definition

        self._event = BACKEND_COMPILE_EVENT
        self._compiles = 0
        self._seconds = 0.0
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event: str, duration_secs: float, **_: str | int) -> None:
        if event == self._event:
            self._compiles += 1
            self._seconds += duration_secs

    def snapshot(self) -> Snapshot:
        return Snapshot(self._compiles, self._seconds)


# Dynamo's timer of a frame's whole compilation: tracing, guards and the backend, which for a
# training graph compiles the backward with the forward (AOTAutograd partitions the joint
# graph). Its "bw_compiler" timer runs inside this one, so adding it would count twice.
_TORCH_TIMERS = ("_compile.compile_inner",)


class TorchCompileCounter:
    """Reads Dynamo's graph counter and compile timers."""

    def snapshot(self) -> Snapshot:
        from torch._dynamo.utils import compilation_time_metrics, counters

        seconds = sum(sum(compilation_time_metrics.get(name, ())) for name in _TORCH_TIMERS)
        return Snapshot(int(counters["stats"]["unique_graphs"]), float(seconds))

    @staticmethod
    def graph_breaks() -> dict[str, int]:
        """Dynamo's graph breaks so far, by reason."""
        from torch._dynamo.utils import counters

        return {str(reason): int(n) for reason, n in counters["graph_break"].items()}
