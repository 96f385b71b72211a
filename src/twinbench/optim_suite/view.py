"""How a stored optimizer suite run reads: its settings, the first-order table and the
second-order table, rendered from the stored dict only (runs stored by older versions too)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twinbench.optim_suite.methods import IMPLEMENTATIONS
from twinbench.report.text import fmt_number, md_table
from twinbench.suite import SuiteView, register_view

FIRST_ORDER_HEADER = [
    "workload",
    "optimizer",
    "steps",
    "status",
    "max abs",
    "max rel",
    "first bad step",
    "final loss torch",
    "final loss jax",
]
SECOND_ORDER_HEADER = [
    "problem",
    "method",
    "framework",
    "status",
    "iters",
    "f evals",
    "wall ms (median [95 % CI])",
    "first call ms",
    "final objective",
    "‖g‖∞",
    "Δ other fw",
    "Δ reference",
]


def first_order_rows(data: Mapping[str, Any]) -> list[list[str]]:
    """One row of the first-order table per (workload, optimizer)."""
    return [
        [
            f"{r['workload']} ({r['size']})",
            r["optimizer"],
            str(r["steps"]),
            r["status"] if r["error"] is None else f"error: {r['error']}",
            fmt_number(r["max_abs"]),
            fmt_number(r["max_rel"]),
            fmt_number(r["first_bad_step"]),
            fmt_number(r["torch_final"], ".6g"),
            fmt_number(r["jax_final"], ".6g"),
        ]  # fmt: skip
        for r in data["first_order"]
    ]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else 1e3 * seconds


def _wall(r: Mapping[str, Any]) -> str:
    median = fmt_number(_ms(r["wall_s"]))
    low, high = r.get("wall_ci_low_s"), r.get("wall_ci_high_s")  # absent before CIs were stored
    if r["wall_s"] is None or low is None or high is None:
        return median
    return f"{median} [{fmt_number(_ms(low))}, {fmt_number(_ms(high))}]"


def second_order_rows(data: Mapping[str, Any]) -> list[list[str]]:
    """One row of the second-order table per (problem, method, framework)."""
    rows = []
    for r in data["second_order"]:
        status = r["status"] if not r["note"] else f"{r['status']} ({r['note']})"
        reference = r["distance_reference"]
        rows.append([
            f"{r['problem']} (d={r['dim']})", r["method"], r["framework"], status,
            fmt_number(r["iterations"]), fmt_number(r["function_evals"]), _wall(r),
            fmt_number(_ms(r["first_call_s"])),
            fmt_number(r["final_objective"], ".10g"), fmt_number(r["grad_norm"], ".2g"),
            fmt_number(r["distance_other"], ".2g"),
            "—" if reference is None else f"{reference:.2g} ({r['reference_kind']})",
        ])  # fmt: skip
    return rows


def render_markdown(data: Mapping[str, Any]) -> str:
    """The stored run as Markdown: the first-order table, then the second-order table."""
    s = data["settings"]
    parts = ["# twinbench optim", ""]
    if data["first_order"]:
        parts += [
            f"## First order: loss trajectories, float32, {s['steps']} steps, size {s['size']}",
            "",
            "Tolerance at step k: (1 + k) × (atol 1e-6 + rtol 1e-5 · |torch loss|).",
            "",
            *md_table(FIRST_ORDER_HEADER, first_order_rows(data)),
            "",
        ]
    if data["second_order"]:
        parts += [
            f"## Second order: float64, ‖∇f‖∞ ≤ {s['gtol']:g}, at most {s['max_iter']} iterations",
            "",
            f"Wall time: {s['timing']} (repeats = {s['repeats']}); first call includes JIT.",
            "",
            *md_table(SECOND_ORDER_HEADER, second_order_rows(data)),
            "",
            "Implementations: "
            + "; ".join(f"{m}/{fw}: {label}" for (m, fw), label in IMPLEMENTATIONS.items()),
            "",
        ]
    return "\n".join(parts)


VIEW = register_view(SuiteView(kind="optim", title="The optim suite", markdown=render_markdown))
