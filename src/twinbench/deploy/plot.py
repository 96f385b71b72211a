"""The deploy suite's figures, drawn from a stored run (matplotlib only, no framework)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

_COLORS = {
    "torch-aoti": "#e8590c",
    "torch-onnx": "#ffa94d",
    "jax-stablehlo": "#1971c2",
    "jax-onnx": "#74c0fc",
}
PERCENT = list(range(101))


def _served(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [c for c in data["cells"] if c.get("latency")]


def latency_figure(data: Mapping[str, Any]) -> Figure | None:
    """Per workload and batch size, each path's latency distribution (calls pooled) as a CDF."""
    panels = [(c["workload"], b) for c in _served(data) for b in c["latency"]]
    panels = list(dict.fromkeys(panels))
    if not panels:
        return None
    figure = Figure(
        figsize=(4.0 * min(len(panels), 4), 3.2 * -(-len(panels) // 4)), layout="constrained"
    )
    axes = figure.subplots(-(-len(panels) // 4), min(len(panels), 4), squeeze=False).flatten()
    for ax, (workload, b) in zip(axes, panels, strict=False):
        for c in _served(data):
            lat = c["latency"].get(b)
            if c["workload"] != workload or lat is None:
                continue
            ax.plot(
                [q * 1e6 for q in lat["quantiles_s"]],
                PERCENT,
                color=_COLORS.get(c["path"]),
                label=c["path"],
            )
        ax.set_xscale("log")
        ax.set_title(f"{workload}, batch {b}", fontsize=9)
        ax.set_xlabel("latency per call (µs)")
        ax.set_ylabel("percentile")
        ax.legend(fontsize=7)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    return figure


def _bars(data: Mapping[str, Any], value: Any, label: str, log: bool) -> Figure | None:
    cells = [c for c in data["cells"] if value(c) is not None]
    if not cells:
        return None
    figure = Figure(figsize=(max(4.0, 0.5 * len(cells) + 2), 3.4), layout="constrained")
    ax = figure.subplots()
    names = [f"{c['workload']}\n{c['path']}" for c in cells]
    ax.bar(
        range(len(cells)), [value(c) for c in cells], color=[_COLORS.get(c["path"]) for c in cells]
    )
    ax.set_xticks(range(len(cells)), names, fontsize=7, rotation=45, ha="right")
    ax.set_ylabel(label)
    if log:
        ax.set_yscale("log")
    return figure


def cold_start_figure(data: Mapping[str, Any]) -> Figure | None:
    """Median cold start (import + load + first call) per workload and path."""

    def median(c: Mapping[str, Any]) -> float | None:
        return None if not c.get("cold_start") else float(c["cold_start"]["median_s"])

    return _bars(data, median, "cold start (s)", log=True)


def size_figure(data: Mapping[str, Any]) -> Figure | None:
    """Artefact size on disk per workload and path."""

    def kib(c: Mapping[str, Any]) -> float | None:
        size = c.get("size_bytes")
        return None if size is None else size / 1024

    return _bars(data, kib, "artefact size (KiB)", log=True)


__all__: Sequence[str] = ["cold_start_figure", "latency_figure", "size_figure"]
