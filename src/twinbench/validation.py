"""Checks of user-given values that every suite's ``validate()`` shares.

Each raises `TwinbenchError` with one line naming the bad value and what would be valid, and
returns the value when it is good, so a settings class can check and keep in one expression.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from twinbench.errors import TwinbenchError


def one_of(what: str, given: Iterable[str], valid: Sequence[str]) -> list[str]:
    """Every name in ``given`` is one of ``valid``: ``unknown mode 'x'; valid: a, b``."""
    names = list(given)
    for name in names:
        if name not in valid:
            raise TwinbenchError(f"unknown {what} '{name}'; valid: {', '.join(valid)}")
    return names


def not_empty(what: str, given: Sequence[str], valid: Sequence[str]) -> None:
    """At least one name was given: ``no mode given; valid: a, b``."""
    if not given:
        raise TwinbenchError(f"no {what} given; valid: {', '.join(valid)}")


MAX_SEED = 2**32 - 1  # NumPy's seeds, which every workload's data and init come from


def seed(value: int) -> int:
    """A seed every command accepts: an integer from 0 to 2**32-1."""
    return int(in_range("--seed", value, low=0, high=MAX_SEED, integer=True))


def positive(name: str, value: float, *, integer: bool = False) -> float:
    """A finite number > 0 (an integer when ``integer``)."""
    return in_range(name, value, low=0, integer=integer, low_open=True)


def in_range(
    name: str,
    value: float,
    *,
    low: float | None = None,
    high: float | None = None,
    integer: bool = False,
    low_open: bool = False,
) -> float:
    """A finite number in [low, high] (or (low, high] when ``low_open``)."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    ok = is_number and math.isfinite(value) and (not integer or float(value).is_integer())
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        raise TwinbenchError(
            f"{name} {value!r} is invalid; valid: {_describe(low, high, integer, low_open)}"
        )
    return value


def _describe(low: float | None, high: float | None, integer: bool, low_open: bool) -> str:
    kind = "an integer" if integer else "a finite number"
    spec = ".0f" if integer else "g"  # 4294967295, not 4.29497e+09
    if low is not None and high is not None:
        return f"{kind} from {low:{spec}}{' (exclusive)' if low_open else ''} to {high:{spec}}"
    if low is not None:
        return f"{kind} {'>' if low_open else '≥'} {low:{spec}}"
    if high is not None:
        return f"{kind} ≤ {high:{spec}}"
    return kind
