"""Text building blocks every report format and every suite's view share: Markdown tables and
numbers formatted for a person. Imports nothing from twinbench."""

from __future__ import annotations

from collections.abc import Sequence


def md_cell(text: object) -> str:
    """One Markdown table cell: pipes escaped, newlines folded, HTML's ``<`` and ``>`` escaped."""
    return (
        str(text)
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("|", "\\|")
        .replace("\r", " ")
        .replace("\n", " ")
    )


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table as lines: the header, the rule, one line per row."""
    lines = ["| " + " | ".join(md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(v) for v in row) + " |" for row in rows]
    return lines


def fmt_number(value: float | int | None, spec: str = ".3g") -> str:
    """A float in ``spec``, an int as is, None as an em dash."""
    if value is None:
        return "—"
    return format(value, spec) if isinstance(value, float) else str(value)


def fmt_seconds(seconds: float | None) -> str:
    """A duration with a unit a person reads at a glance: 412 µs, 3.21 ms, 1.5 s."""
    if seconds is None:
        return "—"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def fmt_steps(steps: float | None) -> str:
    """A step count: whole above 10, two digits below, "never" for None."""
    if steps is None:
        return "never (not faster per step)"
    return f"{steps:,.0f}" if steps >= 10 else f"{steps:.2g}"
