"""Compilations counted as they happen, by each framework's own instruments (never assumed).

JAX: a `jax.monitoring` listener on the backend-compile event, which XLA records once per
executable it compiles (a jitted function per new input shape; under op-by-op execution each
primitive per new shape). PyTorch: Dynamo's counters — ``unique_graphs``, the graphs it captured
and handed to the backend (a recompile captures a new one) — and its compile timers. Each
strategy runs in a fresh worker, so the counters start at zero for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

MAX_REASONS = 20  # recompile explanations kept per strategy (op by op can explain every primitive)


@dataclass(frozen=True)
class Snapshot:
    """Compilations so far and the seconds they took."""

    compiles: int
    seconds: float


class CompileCounter(Protocol):
    """What a framework's counter answers."""

    def snapshot(self) -> Snapshot: ...

    def recompile_reasons(self) -> list[str]: ...


class _Explanations(logging.Handler):
    """Keeps what a framework's logger says about a compile it did again: its own account of
    why (the guard or the input type that changed), at most `MAX_REASONS` of them."""

    def __init__(self, logger: str, keep: str, after: str) -> None:
        super().__init__(logging.DEBUG)
        self.keep = keep  # only messages that explain a *re*-compile
        self.after = after  # the explanation proper follows this
        self.reasons: list[str] = []
        log = logging.getLogger(logger)
        log.addHandler(self)
        log.setLevel(logging.DEBUG)
        log.propagate = False  # the worker's stderr stays readable

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if self.keep in message and len(self.reasons) < MAX_REASONS:
            explanation = message.split(self.after, 1)[-1]
            self.reasons.append(" ".join(explanation.split()))


class JaxCompileCounter:
    """Counts XLA backend compilations through a `jax.monitoring` duration listener."""

    def __init__(self) -> None:
        import jax.monitoring
        from jax._src.dispatch import BACKEND_COMPILE_EVENT  # the event's one definition

        self._event = BACKEND_COMPILE_EVENT
        self._compiles = 0
        self._seconds = 0.0
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        # jit's tracing-cache misses, explained: for a function seen before, the closest earlier
        # key and what differs (e.g. "now i32[8,37] and before i32[8,20]")
        jax.config.update("jax_explain_cache_misses", True)  # type: ignore[no-untyped-call]
        self._explained = _Explanations(
            "jax._src.interpreters.partial_eval", "differ", after="closest previous key:"
        )

    def _listen(self, event: str, duration_secs: float, **_: str | int) -> None:
        if event == self._event:
            self._compiles += 1
            self._seconds += duration_secs

    def snapshot(self) -> Snapshot:
        return Snapshot(self._compiles, self._seconds)

    def recompile_reasons(self) -> list[str]:
        """Why jit traced again, in JAX's own words (first `MAX_REASONS`)."""
        return list(self._explained.reasons)


# Dynamo's timer of a frame's whole compilation: tracing, guards and the backend, which for a
# training graph compiles the backward with the forward (AOTAutograd partitions the joint
# graph). Its "bw_compiler" timer runs inside this one, so adding it would count twice.
_TORCH_TIMERS = ("_compile.compile_inner",)


class TorchCompileCounter:
    """Reads Dynamo's graph counter and compile timers, and keeps Dynamo's account of each
    recompile (the guard that failed)."""

    def __init__(self) -> None:
        from torch._logging import _internal

        _internal.set_logs(recompiles=True)
        self._explained = _Explanations(
            "torch._dynamo.guards.__recompiles", "Recompiling", after="guard failure(s):"
        )

    def recompile_reasons(self) -> list[str]:
        """Dynamo's guard failures that made it compile again (first `MAX_REASONS`)."""
        return list(self._explained.reasons)

    def snapshot(self) -> Snapshot:
        from torch._dynamo.utils import compilation_time_metrics, counters

        seconds = sum(sum(compilation_time_metrics.get(name, ())) for name in _TORCH_TIMERS)
        return Snapshot(int(counters["stats"]["unique_graphs"]), float(seconds))

    @staticmethod
    def graph_breaks() -> dict[str, int]:
        """Dynamo's graph breaks so far, by reason."""
        from torch._dynamo.utils import counters

        return {str(reason): int(n) for reason, n in counters["graph_break"].items()}
