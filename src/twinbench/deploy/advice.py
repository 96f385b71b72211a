"""Advice from a stored deploy run — every sentence quotes the numbers it follows from.

A pure function of the stored dict, so different measurements give different advice: which
artefact to ship for latency at each batch size and for cold starts, which to avoid (refused,
wrong outputs, a fixed batch), and the smallest one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from twinbench.report.text import fmt_seconds

Row = Mapping[str, Any]
KIB = 1024


def _usable(cells: Sequence[Row]) -> list[Row]:
    return [c for c in cells if c.get("latency") and c.get("fidelity_passed")]


def _avoid(cell: Row) -> str | None:
    if cell["status"] == "unavailable":
        return f"{cell['path']} is not available here: {cell['error']}."
    if cell.get("size_bytes") is None:
        return f"{cell['path']} cannot ship this model: the exporter said {cell['error']!r}."
    if cell["status"] != "ok":
        return f"{cell['path']} exported but its runtime {cell['status']}: {cell['error']}."
    if cell.get("fidelity_passed") is False:
        worst = max(
            (c.get("max_abs") or 0.0 for c in cell["fidelity"].values()), default=float("nan")
        )
        return (
            f"do not ship {cell['path']}: its outputs differ from the eager twin's "
            f"(max abs {worst:.2g}, beyond tolerance)."
        )
    if str(cell.get("dynamic_batch", "")).startswith("no"):
        return f"{cell['path']} serves one batch size only ({cell['dynamic_batch']})."
    return None


def _fastest(timed: Sequence[Row], b: str) -> str:
    """The path with the lowest p50 at batch ``b``, and those whose CI overlaps its CI."""
    best = min(timed, key=lambda c: c["latency"][b]["p50_s"])
    top = best["latency"][b]
    tied = [
        c["path"]
        for c in timed
        if c is not best and c["latency"][b]["ci_low_s"] <= top["ci_high_s"]
    ]
    others = ", ".join(
        f"{c['path']} {fmt_seconds(c['latency'][b]['p50_s'])}" for c in timed if c is not best
    )
    text = f"lowest latency at batch {b}: {best['path']} (p50 {fmt_seconds(top['p50_s'])}"
    text += f"; {others})" if others else ")"
    if tied:
        text += f", within noise of {', '.join(tied)} (the 95 % intervals overlap)"
    return text + "."


def advice(data: Mapping[str, Any]) -> list[str]:
    """One line per finding, workload by workload."""
    lines = []
    cells: Sequence[Row] = data["cells"]
    for workload in dict.fromkeys(c["workload"] for c in cells):
        mine = [c for c in cells if c["workload"] == workload]
        lines += [f"{workload}: {text}" for c in mine if (text := _avoid(c))]
        good = _usable(mine)
        if not good:
            continue
        for b in mine[0].get("batch_sizes") or []:
            timed = [c for c in good if str(b) in c["latency"]]
            if timed:
                lines.append(f"{workload}: {_fastest(timed, str(b))}")
        coldest = min(good, key=lambda c: c["cold_start"]["median_s"])
        slowest = max(good, key=lambda c: c["cold_start"]["median_s"])
        if coldest is not slowest:
            lines.append(
                f"{workload}: quickest cold start: {coldest['path']} "
                f"({fmt_seconds(coldest['cold_start']['median_s'])}; slowest {slowest['path']} "
                f"{fmt_seconds(slowest['cold_start']['median_s'])}) — for short-lived "
                "processes (serverless, command-line tools) this matters more than latency."
            )
        smallest = min(good, key=lambda c: c["size_bytes"])
        lines.append(
            f"{workload}: smallest artefact: {smallest['path']} "
            f"({smallest['size_bytes'] / KIB:,.1f} KiB)."
        )
    return lines
