"""The execution modes: how a twin is run. The bottom of the import graph — it imports nothing.

Harness, backends, report and every suite take their mode names from here, so "torch-compile"
means the same thing everywhere and a new mode is added in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Framework = Literal["torch", "jax"]
FRAMEWORKS: tuple[Framework, ...] = ("torch", "jax")


@dataclass(frozen=True)
class Mode:
    """One way of executing a twin: ``name`` as the CLI and the store spell it."""

    name: str
    framework: Framework
    compiled: bool


ALL = (
    Mode("torch-eager", "torch", compiled=False),
    Mode("torch-compile", "torch", compiled=True),
    Mode("jax-jit", "jax", compiled=True),
    Mode("jax-eager", "jax", compiled=False),
)
BY_NAME = {mode.name: mode for mode in ALL}
MODES = tuple(mode.name for mode in ALL)  # the canonical display order
FRAMEWORK_OF: dict[str, Framework] = {mode.name: mode.framework for mode in ALL}
COMPILED_MODES = tuple(mode.name for mode in ALL if mode.compiled)
EAGER_MODES = tuple(mode.name for mode in ALL if not mode.compiled)
BASELINE = "torch-eager"  # the mode every "vs" column divides by


def mode_of(framework: str, *, compiled: bool) -> str:
    """The mode name of ``framework`` run compiled or eagerly: ``("jax", True)`` → ``jax-jit``."""
    for mode in ALL:
        if mode.framework == framework and mode.compiled == compiled:
            return mode.name
    raise KeyError(f"no mode for framework {framework!r}")


def rank(name: str) -> int:
    """Position in the canonical order; unknown names sort last."""
    return MODES.index(name) if name in BY_NAME else len(MODES)
