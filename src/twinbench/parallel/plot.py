"""The scaling plot of a stored parallel run: efficiency against N, weak and strong side by side.

Reads the stored ``to_dict`` of a `ParallelReport` only (matplotlib, no framework), so the report
can draw it from the database long after the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matplotlib.figure import Figure

_COLORS = {"torch": "#e8590c", "jax": "#1971c2"}
_STYLES = {"ddp": "-", "dtensor": "-", "mesh": "-", "processes": "--"}
_MARKERS = {"dp": "o", "tp": "s"}


def scaling_figure(data: Mapping[str, Any]) -> Figure | None:
    """Scaling efficiency (1 = ideal) against the device count; None without timed rows."""
    rows = data.get("scaling") or []
    panels = [s for s in ("strong", "weak") if any(r["scaling"] == s for r in rows)]
    if not panels:
        return None
    figure = Figure(figsize=(4.2 * len(panels), 3.4), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, scaling in zip(axes, panels, strict=True):
        series: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for row in rows:
            if row["scaling"] == scaling and row["efficiency"] is not None:
                key = (row["framework"], row["impl"], row["strategy"])
                series.setdefault(key, []).append(row)
        devices = sorted({r["devices"] for r in rows})
        ax.axhline(1.0, color="#adb5bd", linewidth=1, linestyle=":", label="ideal")
        for (framework, impl, strategy), points in sorted(series.items()):
            points.sort(key=lambda r: r["devices"])
            ax.plot(
                [p["devices"] for p in points],
                [p["efficiency"] for p in points],
                color=_COLORS.get(framework, "#868e96"),
                linestyle=_STYLES.get(impl, "-"),
                marker=_MARKERS.get(strategy, "o"),
                label=f"{framework}/{impl} {strategy}",
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(devices, [str(d) for d in devices])
        ax.set_xlabel("devices (simulated)" if data.get("simulated") else "devices")
        ax.set_ylabel("scaling efficiency")
        ax.set_ylim(bottom=0)
        what = "fixed global batch" if scaling == "strong" else "fixed per-device batch"
        ax.set_title(f"{scaling} scaling ({what})")
        ax.legend(loc="best")
    return figure
