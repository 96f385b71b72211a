"""The feature table: each cell is a check that ran, "works" only when its assertions passed.

A check is a function that runs one piece of user code (``planted``) one way (eager, compiled)
and asserts what it must produce; it returns a short account of what it saw and any figures
(graph breaks, seconds to the error). One that raises makes its cell "fails", keeping the error
text. ``sabotage`` names checks whose expectations are deliberately made wrong, so a test can
prove that a cell reads "works" only because its check passed. Imports no framework.
"""

from __future__ import annotations

import contextlib
import io
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from time import perf_counter
from typing import Any

ERROR_CHARS = 300
# What both sides call the planted code with: a branch input of each sign, values to print.
POSITIVE, NEGATIVE = [1.0, 2.0], [-3.0, 1.0]
PRINTED = [1.5, 2.5]


@dataclass(frozen=True)
class Outcome:
    """What a check that passed saw."""

    detail: str
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FeatureCheck:
    """One cell's check: ``run(sabotaged)`` asserts and returns its `Outcome`."""

    feature: str
    framework: str
    mode: str
    run: Callable[[bool], Outcome]

    @property
    def key(self) -> str:
        return f"{self.framework}:{self.feature}:{self.mode}"


# The features both sides check, under the names the report pairs their cells by.
FEATURES = {
    "branch": "python if on a tensor value",
    "print": "print a value inside the step",
    "shape_error": "shape error names the user's line",
}


def feature_checks(
    framework: str, **ways: Sequence[tuple[str, Callable[[bool], Outcome]]]
) -> list[FeatureCheck]:
    """One `FeatureCheck` for each ``(mode, run)`` way of each feature (a `FEATURES` key)."""
    return [
        FeatureCheck(FEATURES[feature], framework, mode, run)
        for feature, pairs in ways.items()
        for mode, run in pairs
    ]


@dataclass(frozen=True)
class FeatureCell:
    """A check's result: ``works`` or ``fails`` (with the error text)."""

    feature: str
    framework: str
    mode: str
    status: str
    detail: str
    facts: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_checks(checks: Sequence[FeatureCheck], sabotage: Iterable[str] = ()) -> list[FeatureCell]:
    """Run every check; one that raises is a "fails" cell with its error, never a crash."""
    sabotaged = set(sabotage)
    cells = []
    for check in checks:
        start = perf_counter()
        try:
            outcome = check.run(check.key in sabotaged)
            status, detail, facts = "works", outcome.detail, outcome.facts
        except Exception as exc:  # the cell records the error the user would see
            status, detail, facts = "fails", one_line(exc), {}
        cells.append(
            FeatureCell(
                check.feature,
                check.framework,
                check.mode,
                status,
                detail,
                facts,
                perf_counter() - start,
            )
        )
    return cells


def one_line(exc: BaseException) -> str:
    """``Type: first line`` of an exception, short enough for a table cell."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:ERROR_CHARS]


def printed(call: Callable[[], Any]) -> tuple[Any, str]:
    """``call()``'s result and what it printed to stdout."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        result = call()
    return result, buffer.getvalue()


def names_line(exc: BaseException, filename: str, line: int) -> bool:
    """True when the error's traceback or its message points at ``filename``:``line``."""
    frames = traceback.extract_tb(exc.__traceback__)
    if any(f.filename == filename and f.lineno == line for f in frames):
        return True
    text = str(exc)
    return f'{filename}", line {line}' in text or f"{filename}:{line}" in text


def surfaces_at_planted_line(call: Callable[[], Any], sabotaged: bool) -> Outcome:
    """Run ``call`` (the planted shape error with a framework's arrays): it must raise an error
    naming ``planted.py`` and the planted line (``sabotaged``: the line after it)."""
    import inspect

    from twinbench.dynamic import planted

    lines, first = inspect.getsourcelines(planted.planted_shape_error)
    line = first + len(lines) - 1 + (1 if sabotaged else 0)  # the body's one line
    start = perf_counter()
    try:
        call()
    except Exception as exc:
        seconds = perf_counter() - start
        where = f"planted.py:{line}"
        expect(names_line(exc, planted.__file__, line), f"not naming {where}: {one_line(exc)}")
        return Outcome(f"names {where} after {seconds:.2f} s", {"seconds_to_error": seconds})
    raise AssertionError("the planted shape error raised nothing")


def expect_printed(text: str, sabotaged: bool) -> str:
    """The print check: ``text`` shows every value of `PRINTED` (``sabotaged``: a value that
    was never printed, so the check must fail); returns it stripped."""
    wanted = ["9.5"] if sabotaged else [str(v) for v in PRINTED]
    expect(all(w in text for w in wanted), f"printed {text.strip()[:80]!r}, not the values")
    return text.strip()


def expect(condition: bool, message: str) -> None:
    """Fail the check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise AssertionError(message)
