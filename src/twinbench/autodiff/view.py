"""How a stored autodiff suite run reads: Markdown tables of checks, features, speed, scaling and
memory, rendered from the stored dict only (so runs stored by older versions render too)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from twinbench.modes import FRAMEWORKS
from twinbench.report.text import fmt_number, fmt_seconds, md_table
from twinbench.suite import SuiteView, register_view

SCALING_TRANSFORM = "per_example_grad"
DETAIL_CHARS = 90  # of a failure's message, so one row stays one line
MIB = 2**20

Row = Mapping[str, Any]
CellKey = tuple[str, str, int | None, str, str]  # function, transform, batch, mode, framework


def render_markdown(data: Mapping[str, Any]) -> str:
    """The stored run as Markdown: a settings line, then one section per step that ran."""
    s = data["settings"]
    lines = [
        "# twinbench autodiff",
        "",
        f"{s['threads']} threads; checks in {s['check_dtype']}, timing in {s['timing_dtype']} "
        f"on {s['device']}, budget {s['budget_s']} s per cell.",
        "",
    ]
    lines += _checks(s, data["checks"])
    lines += _features(data["features"])
    lines += _speed(data)
    lines += _scaling(s, data["scaling"])
    lines += _memory(s["memory"], data["memory"])
    if data["failures"]:
        lines += ["## Failures", "", *(f"- {f}" for f in data["failures"]), ""]
    return "\n".join(lines)


def _checks(s: Mapping[str, Any], checks: Sequence[Row]) -> list[str]:
    by = {(c["function"], c["transform"], c["framework"]): c for c in checks}
    rows = []
    for function in s["functions"]:
        for transform in s["transforms"]:
            cells = [_check_text(by.get((function, transform, fw))) for fw in FRAMEWORKS]
            rows.append([f"{function} {transform}", *cells])
    return [
        "## Correctness",
        "",
        "Status, then the maximum relative error against finite differences / against the "
        "other framework.",
        "",
        *md_table(["check", *FRAMEWORKS], rows),
        "",
    ]


def _check_text(check: Row | None) -> str:
    if check is None:
        return "—"
    errors = " / ".join(fmt_number(e, ".1e") for e in (check["rel_err_fd"], check["rel_err_other"]))
    text = f"{check['status']} {errors}"
    if check["status"] != "pass":
        text += f" ({check['detail'][:DETAIL_CHARS]})"
    return text


def _features(features: Sequence[Row]) -> list[str]:
    rows = [
        [f["transform"], f["framework"], f["support"], f["api"],
         "—" if f["compiled"] is None else f["compiled"][:DETAIL_CHARS]]
        for f in features
    ]  # fmt: skip
    header = ["transformation", "framework", "support", "API", "compiled"]
    return ["## Features", "", *md_table(header, rows), ""]


def _index(cells: Sequence[Row]) -> dict[CellKey, Row]:
    return {
        (t["function"], t["transform"], t.get("batch"), t["mode"], t["framework"]): t for t in cells
    }


def _speed(data: Mapping[str, Any]) -> list[str]:
    timings: Sequence[Row] = data["timings"]
    index = _index([*timings, *data["scaling"]])
    ratios = {
        (r["function"], r["transform"], r["batch"], r["mode"]): r for r in data["comparisons"]
    }
    rows = []
    for t in timings:
        if t["framework"] != "torch":
            continue
        key = (t["function"], t["transform"], None, t["mode"])
        rows.append([
            f"{t['function']} {t['transform']}", t["mode"], _cell_text(t),
            _cell_text(index.get((*key, "jax"))), *_ratio_cells(ratios.get(key)),
        ])  # fmt: skip
    errors = [t for t in [*timings, *data["scaling"]] if t["status"] != "ok"]
    if not rows and not errors:
        return []
    header = ["cell", "mode", "torch", "jax", "torch / jax [95 % CI]", "verdict"]
    return [
        "## Speed",
        "",
        "Median per call [95 % CI]; ~ marks a CI not within ±2 % in the budget.",
        "",
        *md_table(header, rows),
        "",
        *(f"- {t['mode_label']} {t['function']} {t['transform']}: {t['error'][:160]}"
          for t in errors),
        *([""] if errors else []),
    ]  # fmt: skip


def _ratio_cells(ratio: Row | None) -> tuple[str, str]:
    """The torch / jax ratio with its CI, and the verdict."""
    if ratio is None:
        return "—", "—"
    r = ratio
    return f"{r['ratio_torch_over_jax']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]", r["verdict"]


def _cell_text(cell: Row | None) -> str:
    if cell is None:
        return "—"
    if cell["status"] != "ok":
        return "error"
    flag = "" if cell["converged"] else " ~"
    ci = f" [{fmt_seconds(cell['ci_low_s'])}, {fmt_seconds(cell['ci_high_s'])}]"
    return f"{fmt_seconds(cell['median_s'])}{ci}{flag}"


def _scaling(s: Mapping[str, Any], scaling: Sequence[Row]) -> list[str]:
    if not scaling:
        return []
    index = _index(scaling)
    rows = []
    for mode in s["modes"]:
        for b in s["batch_sizes"]:
            row: list[object] = [mode, b]
            for fw in FRAMEWORKS:
                cell = index.get(("mlp", SCALING_TRANSFORM, b, mode, fw))
                ok = cell is not None and cell["status"] == "ok"
                per_example = fmt_seconds(cell["median_s"] / b) if cell and ok else "—"
                row += [_cell_text(cell), per_example]
            rows.append(row)
    header = ["mode", "batch", *(f"{fw}{per}" for fw in FRAMEWORKS for per in ("", " per example"))]
    return [
        "## Per-example gradients (mlp, vmap(grad)) by batch size",
        "",
        *md_table(header, rows),
        "",
    ]


def _memory(sizes: Mapping[str, int] | None, memory: Sequence[Row]) -> list[str]:
    if not memory or sizes is None:
        return []
    rows = []
    for row in memory:
        rss, acc = row["rss_increase_bytes"], row["accounting"]
        rows.append([
            row["framework"], "on" if row["remat"] else "off",
            "—" if rss is None else f"{rss / MIB:+.1f} MiB",
            acc["method"], "—" if acc["bytes"] is None else f"{acc['bytes'] / MIB:.1f} MiB",
        ])  # fmt: skip
    header = ["framework", "checkpointing", "RSS high-water increase", "accounting", "bytes"]
    return [
        f"## Memory: one gradient step, MLP {sizes['depth']} × {sizes['width']}, "
        f"batch {sizes['batch']}, float32",
        "",
        "The RSS increase is the same yardstick for both frameworks but includes allocator slack; "
        "each framework's own accounting is exact about activations but not comparable across "
        "frameworks.",
        "",
        *md_table(header, rows),
        "",
    ]


VIEW = register_view(
    SuiteView(kind="autodiff", title="The autodiff suite", markdown=render_markdown)
)
