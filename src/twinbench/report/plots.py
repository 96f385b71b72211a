"""The report's figures, drawn with matplotlib's Figure API (no pyplot, no GUI backend).

Every function takes plain numbers or stored cells and returns a ``Figure``; ``svg`` turns a
figure into inline SVG text for the HTML page, ``save`` writes it to a file for Markdown.
Text stays text in the SVG (``svg.fonttype: none``), so the page's own fonts render it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

from twinbench.modes import FRAMEWORK_OF, MODES
from twinbench.report.summary import SweepSeries
from twinbench.store import CellRecord

# One colour per mode, the same in every figure: PyTorch in warm hues, JAX in cool ones.
MODE_COLORS = {
    "torch-eager": "#e8590c",
    "torch-compile": "#a61e4d",
    "jax-jit": "#1971c2",
    "jax-eager": "#0ca678",
}
FRAMEWORK_COLORS = {"torch": "#e8590c", "jax": "#1971c2"}
_RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#e9ecef",
    "grid.linewidth": 0.8,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "svg.hashsalt": None,
}


@contextmanager
def _style() -> Iterator[None]:
    with matplotlib.rc_context(_RC):
        yield


def color(mode: str) -> str:
    return MODE_COLORS.get(mode, "#868e96")


def svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element to inline in HTML (no XML prolog, no DOCTYPE)."""
    buffer = io.StringIO()
    with _style():
        fig.savefig(buffer, format="svg")  # constrained layout already fits the figure
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def save(fig: Figure, path: Path) -> Path:
    """Write the figure to ``path``; the suffix (.svg or .png) picks the format."""
    with _style():
        fig.savefig(path, bbox_inches="tight", dpi=110)
    return path


def _new(
    width: float, height: float, ncols: int = 1, *, legend_below: bool = False
) -> tuple[Figure, Any]:
    """A row of ``ncols`` panels with fixed margins (constrained layout costs twice the time)."""
    with _style():
        fig = Figure(figsize=(width, height))
        axes = fig.subplots(1, ncols, squeeze=False)[0]
        bottom = 0.3 if legend_below else 0.22
        fig.subplots_adjust(
            left=0.75 / width, right=1 - 0.75 / width, top=0.9, bottom=bottom, wspace=0.55
        )
    return fig, axes


def _mode_order(cells: Sequence[CellRecord]) -> list[CellRecord]:
    rank = {mode: i for i, mode in enumerate(MODES)}
    return sorted(cells, key=lambda c: rank.get(c.mode, 99))


def _time_unit(seconds: float) -> tuple[float, str]:
    if seconds >= 1:
        return 1.0, "s"
    if seconds >= 1e-3:
        return 1e3, "ms"
    return 1e6, "µs"


def _bars(ax: Any, labels: list[str], values: list[float], colors: list[str]) -> None:
    positions = np.arange(len(labels))
    ax.bar(positions, values, color=colors, width=0.6)
    ax.set_xticks(positions, labels)
    ax.grid(axis="x", visible=False)


def workload_figure(cells: Sequence[CellRecord], peak_flops: float | None) -> Figure:
    """Four panels for one (workload, size, phase): step time, total time, memory, % of peak.

    ``cells`` are the measured ("ok") cells of the group.
    """
    cells = _mode_order(cells)
    with _style():
        fig, axes = _new(11.5, 2.9, ncols=4)
        step_ax, total_ax, mem_ax, flops_ax = axes
        labels = [c.mode for c in cells]
        colors = [color(c.mode) for c in cells]

        medians = [c.metrics["median_s"] for c in cells]
        scale, unit = _time_unit(max(medians))
        values = [m * scale for m in medians]
        low = [
            (m - c.metrics.get("ci_low_s", m)) * scale for m, c in zip(medians, cells, strict=True)
        ]
        high = [
            (c.metrics.get("ci_high_s", m) - m) * scale for m, c in zip(medians, cells, strict=True)
        ]
        _bars(step_ax, labels, values, colors)
        step_ax.errorbar(
            np.arange(len(cells)),
            values,
            yerr=[low, high],
            fmt="none",
            ecolor="#212529",
            elinewidth=1.2,
            capsize=5,
        )
        step_ax.set_title("Steady-state step time")
        step_ax.set_ylabel(f"median step time ({unit}), 95% CI")

        # Total time to run n steps: one-time compile plus n steady steps; crossings = break-even.
        costs = [
            (c.metrics.get("compile_s") or 0.0) if c.mode in ("jax-jit", "torch-compile") else 0.0
            for c in cells
        ]
        top = max(
            [10.0]
            + [
                10 * abs(cost_a - cost_b) / abs(ma - mb)
                for cost_a, ma in zip(costs, medians, strict=True)
                for cost_b, mb in zip(costs, medians, strict=True)
                if ma != mb and cost_a != cost_b
            ]
        )
        top = min(top, 1e9)
        steps = np.logspace(0, math.log10(top), 80)
        for cell, cost, median in zip(cells, costs, medians, strict=True):
            total_ax.plot(steps, cost + steps * median, color=color(cell.mode), label=cell.mode)
        total_ax.set_xscale("log")
        total_ax.set_yscale("log")
        total_ax.set_title("Compile + n steps")
        total_ax.set_xlabel("steps n")
        total_ax.set_ylabel("total time (s)")
        total_ax.legend(loc="upper left", fontsize=7)

        # older runs have only the whole process's peak, runtime included
        attributable = any(c.metrics.get("attributable_peak_bytes") is not None for c in cells)
        key = "attributable_peak_bytes" if attributable else "process_peak_memory_bytes"
        mem = [(c.metrics.get(key) or 0) / 2**20 for c in cells]
        _bars(mem_ax, labels, mem, colors)
        mem_ax.set_title("Memory of one step" if attributable else "Process peak memory")
        mem_ax.set_ylabel("state + step, no runtime (MiB)" if attributable else "peak memory (MiB)")

        shares = [
            100 * c.metrics["achieved_flops_per_s"] / peak_flops
            if peak_flops and c.metrics.get("achieved_flops_per_s")
            else 0.0
            for c in cells
        ]
        _bars(flops_ax, labels, shares, colors)
        flops_ax.set_title("Share of peak FLOP/s")
        flops_ax.set_ylabel("achieved / measured peak (%)")
        if not peak_flops:
            flops_ax.text(
                0.5,
                0.5,
                "no peak measured",
                transform=flops_ax.transAxes,
                ha="center",
                color="#868e96",
            )
        for ax in (step_ax, mem_ax, flops_ax):
            ax.tick_params(axis="x", labelrotation=20)
    return fig


def parity_figure(checks: Sequence[dict[str, Any]]) -> Figure | None:
    """Each curve check's two loss curves overlaid, with |torch − jax| on a second axis."""
    curves = [c for c in checks if c.get("curves") and c["curves"].get("torch")]
    if not curves:
        return None
    with _style():
        fig, axes = _new(min(11.5, 4.6 * len(curves)), 3.2, ncols=len(curves), legend_below=True)
        for ax, check in zip(axes, curves, strict=True):
            t = np.asarray(check["curves"]["torch"], dtype=float)
            j = np.asarray(check["curves"].get("jax") or [], dtype=float)
            steps = np.arange(len(t))
            ax.plot(steps, t, color=FRAMEWORK_COLORS["torch"], lw=2.2, label="PyTorch")
            if j.size:
                ax.plot(
                    np.arange(len(j)),
                    j,
                    color=FRAMEWORK_COLORS["jax"],
                    lw=1.2,
                    ls="--",
                    label="JAX",
                )
            ax.set_title(f"Loss curve: {_plain(str(check.get('name', '')))}")
            ax.set_xlabel("optimizer step")
            ax.set_ylabel("loss")
            if j.size:
                n = min(t.size, j.size)
                diff = np.abs(t[:n] - j[:n])
                twin = ax.twinx()
                twin.plot(
                    np.arange(n),
                    diff,
                    color="#495057",
                    ls="none",
                    marker="o",
                    ms=3,
                    label="|PyTorch − JAX| (right axis)",
                )
                twin.set_ylabel("|PyTorch − JAX|", color="#495057")
                twin.grid(False)
                twin.spines["right"].set_visible(True)
                twin.spines["top"].set_visible(False)
                twin.set_ylim(bottom=0)
                twin.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
                legend = twin
        handles, labels = axes[0].get_legend_handles_labels()
        if j.size:
            more = legend.get_legend_handles_labels()
            handles, labels = handles + more[0], labels + more[1]
        fig.legend(handles, labels, loc="lower center", ncols=3)
    return fig


def sweep_figure(series: Sequence[SweepSeries]) -> Figure:
    """Step time, throughput and peak memory against batch size on log-log axes, per mode."""
    with _style():
        fig, (time_ax, tp_ax, mem_ax) = _new(11.5, 3.4, ncols=3, legend_below=True)
        attributable = any(m is not None for s in series for m in s.attributable_peak_bytes)
        for s in series:
            c = color(s.mode)
            exponent = f" (slope {s.exponent:.2f})" if s.exponent is not None else ""
            bs = np.asarray(s.batch_sizes, dtype=float)
            med = np.asarray(s.median_s) * 1e3
            time_ax.errorbar(
                bs,
                med,
                yerr=[med - np.asarray(s.ci_low_s) * 1e3, np.asarray(s.ci_high_s) * 1e3 - med],
                color=c,
                marker="o",
                ms=4,
                capsize=3,
                label=f"{s.mode}{exponent}",
            )
            tp_ax.plot(bs, s.samples_per_s, color=c, marker="o", ms=4, label=s.mode)
            # older runs have only the whole process's peak, runtime included
            figures = s.attributable_peak_bytes if attributable else s.process_peak_memory_bytes
            mem = [(m or math.nan) / 2**20 for m in figures]
            mem_ax.plot(bs, mem, color=c, marker="o", ms=4, label=s.mode)
            fit = s.memory_fit if attributable else None
            if fit is not None:
                line = fit.intercept_bytes + fit.bytes_per_sample * bs
                mem_ax.plot(bs, np.maximum(line, 1.0) / 2**20, color=c, ls="--", lw=1)
        measured_memory = any(m for s in series for m in s.process_peak_memory_bytes)
        memory_title = "Memory of one step (dashed: fit)" if attributable else "Peak memory"
        memory_label = "state + step, no runtime (MiB)" if attributable else "peak memory (MiB)"
        for ax, title, ylabel in (
            (time_ax, "Step time", "median step time (ms)"),
            (tp_ax, "Throughput", "samples / s"),
            (mem_ax, memory_title, memory_label),
        ):
            ax.set_xscale("log", base=2)
            ax.set_title(title)
            ax.set_xlabel("batch size")
            ax.set_ylabel(ylabel)
            if ax is mem_ax and not measured_memory:
                ax.text(
                    0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", color="#868e96"
                )
            else:
                ax.set_yscale("log")
            _readable_log(ax)
        fig.legend(*time_ax.get_legend_handles_labels(), loc="lower center", ncols=4)
    return fig


def framework_of(mode: str) -> str:
    return FRAMEWORK_OF.get(mode, mode)


def _plain(text: str) -> str:
    """Text matplotlib must not read as mathtext."""
    return text.replace("$", r"\$")


def _readable_log(ax: Any) -> None:
    """Plain numbers on log axes (4, 16, 64 rather than 2², 2⁴, 2⁶); minor labels on short spans."""
    major = FuncFormatter(_label)
    for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if axis.get_scale() != "log":
            continue
        axis.set_major_formatter(major)
        if lo > 0 and hi / lo < 3:  # too short a span for any power of ten: evenly spaced ticks
            axis.set_major_locator(MaxNLocator(4))
            axis.set_minor_formatter(NullFormatter())
        elif lo > 0 and hi / lo < 100:
            axis.set_minor_formatter(FuncFormatter(_minor_label))
        else:
            axis.set_minor_formatter(NullFormatter())


def _minor_label(value: float, _pos: int) -> str:
    if value <= 0:
        return ""
    lead = round(value / 10 ** math.floor(math.log10(value)))
    return _label(value, _pos) if lead in (2, 5) else ""


def _label(value: float, _pos: int) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:.3g}"
