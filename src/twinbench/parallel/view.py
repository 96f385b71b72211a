"""How the report shows a stored parallel run: its tables as Markdown and its scaling figure.

Both read the stored ``ParallelReport.to_dict()`` only, so a run stored by an older twinbench
(without the step-time CI) still renders. Importing this module registers the view.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from twinbench.parallel.parity import FLOOR_FACTOR
from twinbench.report.text import fmt_number, fmt_seconds, md_table
from twinbench.suite import SuiteView, register_view

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FLOOR_NOTE = (
    "Max abs: N devices vs one device, largest over all weights. Rounding floor: the same "
    "between the one-device run and itself perturbed at rounding level (initial weights one "
    "ulp off, samples reordered: the same training in exact arithmetic). A weight passes "
    f"within the float32 tolerance (atol 1e-5, rtol 1e-4) or within {FLOOR_FACTOR:g} × the floor. "
    "SGD's floor is rounding-sized; Adam's is not: it divides each gradient by its own size "
    "plus eps, so gradients within a few eps of zero move weights by up to ±lr per step in "
    "whichever direction their rounding points."
)
SCALING_NOTE = (
    "Step: the median of the timed blocks' per-step seconds, with its 95% bootstrap CI. "
    "Efficiency: throughput at N / (N × throughput at 1) of the same implementation "
    "(strong scaling: speed-up / N; weak: t(1) / t(N)). Comm share (data parallel): "
    "1 − t(step without the gradient all-reduce) / t(step). Tensor parallelism is "
    "strong scaling only (the batch is not split)."
)


def devices_line(data: Mapping[str, Any]) -> str:
    """What the devices were — simulated devices say so."""
    if data["simulated"]:
        return (
            f"Devices are **simulated**: N XLA host devices (JAX) or N gloo processes (PyTorch) "
            f"sharing the same {data['cores']} CPU core(s), so the timings show the frameworks' "
            "parallel overhead, not what N real devices would gain."
        )
    return "Devices are real: one GPU per device."


def _verdict(check: Mapping[str, Any]) -> str:
    return "pass" if check["passed"] else f"FAIL ({check['detail']})"


def _parity_lines(data: Mapping[str, Any]) -> list[str]:
    rows = [
        [f"{c['framework']}/{c['impl']}", c["strategy"], c["devices"], c["global_batch"],
         p["optimizer"], fmt_number(p["max_abs"], ".2g"), fmt_number(p["max_rel"], ".2g"),
         fmt_number(p["floor"], ".2g"), _verdict(p)]
        for c in data["cells"] for p in c["parity"]
    ]  # fmt: skip
    if not rows:
        return ["No parity checks ran."]
    header = ["implementation", "strategy", "N", "global batch", "optimizer", "max abs",
              "max rel", "rounding floor", "result"]  # fmt: skip
    return [*md_table(header, rows), "", FLOOR_NOTE]


def _cross_lines(data: Mapping[str, Any]) -> list[str]:
    if not data["cross"]:
        return []
    header = ["strategy", "N", "global batch", "optimizer", "torch", "jax", "max abs",
              "rounding floor", "result"]  # fmt: skip
    rows = [
        [r["strategy"], r["devices"], r["global_batch"], r["optimizer"], r["torch"], r["jax"],
         fmt_number(r["max_abs"], ".2g"), fmt_number(r["floor"], ".2g"), _verdict(r)]
        for r in data["cross"]
    ]  # fmt: skip
    return [
        "",
        "## The frameworks' N-device runs compared (informs; `twinbench parity` judges twins)",
        "",
        *md_table(header, rows),
    ]


def _ci(row: Mapping[str, Any]) -> str:
    low, high = row.get("step_ci_low_s"), row.get("step_ci_high_s")
    return "—" if low is None or high is None else f"{fmt_seconds(low)}–{fmt_seconds(high)}"


def _scaling_lines(data: Mapping[str, Any]) -> list[str]:
    if not data["scaling"]:
        return []
    header = ["implementation", "strategy", "scaling", "N", "global batch", "per device",
              "step (median)", "95% CI", "IQR", "samples/s", "speed-up", "efficiency",
              "comm share"]  # fmt: skip
    rows = [
        [f"{r['framework']}/{r['impl']}", r["strategy"], r["scaling"], r["devices"],
         r["global_batch"], r["per_device_batch"], fmt_seconds(r["step_s"]), _ci(r),
         fmt_seconds(r["iqr_s"]), fmt_number(r["throughput"], ",.0f"),
         fmt_number(r["speedup"], ".2f"), fmt_number(r["efficiency"], ".0%"),
         fmt_number(r["comm_share"], ".0%")]
        for r in data["scaling"]
    ]  # fmt: skip
    return ["", "## Scaling", "", *md_table(header, rows), "", SCALING_NOTE]


def _failed_lines(data: Mapping[str, Any]) -> list[str]:
    failed = [c for c in data["cells"] if c["status"] != "ok"]
    if not failed:
        return []
    return ["", "## Cells without a result here", ""] + [
        f"- {c['framework']}/{c['impl']} {c['strategy']} N={c['devices']}: "
        f"{c['status']} — {c['error']}"
        for c in failed
    ]


def render_markdown(data: Mapping[str, Any]) -> str:
    """The suite's tables as Markdown, from a stored ``ParallelReport.to_dict()``."""
    s = data["settings"]
    lines = [
        f"# twinbench parallel: {s['workload']} ({s['size']})",
        "",
        devices_line(data),
        "",
        f"## Parity across devices: N devices vs one, {s['parity_steps']} steps, same global batch",
        "",
        *_parity_lines(data),
        *_cross_lines(data),
        *_scaling_lines(data),
        *_failed_lines(data),
        "",
    ]
    return "\n".join(lines)


def figures(data: Mapping[str, Any]) -> list[tuple[str, Figure]]:
    """The scaling figure of a stored run, named ``scaling``; none without timed rows."""
    from twinbench.parallel.plot import scaling_figure

    figure = scaling_figure(data)
    return [("scaling", figure)] if figure is not None else []


VIEW = register_view(
    SuiteView(
        kind="parallel", title="The parallel suite", markdown=render_markdown, figures=figures
    )
)
