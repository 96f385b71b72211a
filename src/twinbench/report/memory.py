"""Memory verdicts: which framework's model needs less memory, by what ratio, how sure we are.

The figure compared is each cell's attributable peak (memory of one step above what the runtime
holds on its own). A ratio is PyTorch bytes / JAX bytes: above 1 JAX uses less. Its 95 % CI
comes from bootstrapping the cells' per-process figures, so it is as wide as the processes
disagree; when it holds 1 the verdict is "no significant difference", and so it is when the
two figures are closer than `RESOLUTION_BYTES`, whatever the processes say. Cells stored before
the attributable peak existed have no verdict; cells stored while it was still one step's
resident peak above the runtime's start-up memory (no ``model_state_bytes``) get a caveat in
its place (`OLD_FIGURE_CAVEAT`), not a ratio. Imports no framework.
"""

from __future__ import annotations

import statistics
from typing import Any

from twinbench.harness.memory import DEVICE_METHOD
from twinbench.harness.stats import Ratio, ratio_of_medians
from twinbench.report.verdict import Verdict, best_pairs, cell_groups, parity_of
from twinbench.store import CellRecord

PREFIX = "memory, "  # a memory verdict's comparison: "memory, best vs best"
# The least difference a memory verdict tells apart. The resident figure counts whole pages and
# misses what a step takes from allocator pads already resident; processes of one cell agree to
# a page or two, and on gpt tiny the figure sat within 0.1-0.3 MB of XLA's and the torch
# profiler's own accounts. At `tiny` every model needs a few KB: pages apart are not a verdict.
RESOLUTION_BYTES = 2**20
OLD_FIGURE_CAVEAT = (
    "no memory verdict: measured before the attributable peak counted the model's own state "
    "(no model_state_bytes): these cells' figure is one step's resident peak above the "
    "runtime's start-up memory, so it holds the compiled code, caches and allocator pools the "
    "compiler kept, often more than the model; measure again to compare the models"
)


def is_memory(verdict: Verdict) -> bool:
    return verdict.comparison.startswith(PREFIX)


def attributable_by_process(cell: CellRecord) -> list[float]:
    """The cell's attributable peak in each of its processes (empty for older cells)."""
    values = cell.metrics.get("attributable_peak_bytes_by_process")
    if values:
        return [float(v) for v in values]
    single = cell.metrics.get("attributable_peak_bytes")
    return [] if single is None else [float(single)]


def measured_as_the_model(cell: CellRecord) -> bool:
    """Whether the cell's attributable peak is the model's: its state's bytes plus one step's
    transient, or a device allocator's peak (which never held the compiler's host memory)."""
    metrics = cell.metrics
    return "model_state_bytes" in metrics or metrics.get("attributable_method") == DEVICE_METHOD


def _mb(value: float) -> str:
    return f"{value / 2**20:.3g} MB"


def _resolved(t_values: list[float], j_values: list[float]) -> bool:
    """Whether the two sides' medians are at least `RESOLUTION_BYTES` apart."""
    return abs(statistics.median(t_values) - statistics.median(j_values)) >= RESOLUTION_BYTES


def _describe(
    torch_cell: CellRecord, jax_cell: CellRecord, ratio: Ratio, n: int, *, resolved: bool
) -> str:
    t, j = torch_cell.mode, jax_cell.mode
    figures = (
        f"{_mb(float(torch_cell.metrics['attributable_peak_bytes']))} vs "
        f"{_mb(float(jax_cell.metrics['attributable_peak_bytes']))}"
    )
    spread = (
        f"95% CI over processes {ratio.ci_low:.2f}–{ratio.ci_high:.2f}"
        if n > 1
        else "one process each, no spread"
    )
    if not resolved:
        return (
            f"no significant difference ({t} / {j} = {ratio.ratio:.2f}, {figures}: closer than "
            f"the {_mb(RESOLUTION_BYTES)} the measurement resolves)"
        )
    if not ratio.significant:
        return f"no significant difference ({t} / {j} = {ratio.ratio:.2f}, {figures}, {spread})"
    if ratio.ratio > 1:
        factor, low, high = ratio.ratio, ratio.ci_low, ratio.ci_high
        lean, heavy = j, t
    else:
        factor, low, high = 1 / ratio.ratio, 1 / ratio.ci_high, 1 / ratio.ci_low
        lean, heavy = t, j
    claim = f"{lean} needs {factor:.2f}× less memory than {heavy} ({figures}"
    return claim + (f", 95% CI {low:.2f}–{high:.2f}×)" if n > 1 else f", {spread})")


def memory_verdicts(cells: list[CellRecord], *, parity_passed: bool | None) -> list[Verdict]:
    """Memory verdicts for the cells of one (workload, size, phase): best mode against best
    mode (the least memory on each side) and like against like."""
    first = cells[0]
    key = (first.workload, first.size, first.phase)
    measured = {c.mode: c for c in cells if c.status == "ok" and attributable_by_process(c)}
    if parity_passed is False or not measured:
        return []  # the speed verdict already says why parity failed
    if not all(measured_as_the_model(c) for c in measured.values()):
        return [Verdict(*key, PREFIX + "best vs best", None, None, None, OLD_FIGURE_CAVEAT)]
    verdicts = []
    pairs = best_pairs(measured, lambda c: c.metrics["attributable_peak_bytes"])
    for label, leanest_torch, leanest_jax in pairs:
        t_values = attributable_by_process(leanest_torch)
        j_values = attributable_by_process(leanest_jax)
        if min(t_values) <= 0 or min(j_values) <= 0:
            continue  # a ratio against nothing measured says nothing
        ratio = ratio_of_medians(t_values, j_values)
        resolved = _resolved(t_values, j_values)
        if not resolved:  # a difference the measurement does not resolve is none: CI holds 1
            ratio = Ratio(ratio.ratio, min(ratio.ci_low, 1.0), max(ratio.ci_high, 1.0))
        n = min(len(t_values), len(j_values))
        text = _describe(leanest_torch, leanest_jax, ratio, n, resolved=resolved)
        verdict = Verdict(*key, PREFIX + label, leanest_torch.mode, leanest_jax.mode, ratio, text)
        verdicts.append(verdict)
    return verdicts


def memory_verdicts_for_run(cells: list[CellRecord], parity: list[dict[str, Any]]) -> list[Verdict]:
    """Every memory verdict of a run, grouped by workload, size and phase in the order measured;
    none for a group whose twins failed parity (its speed verdict says so)."""
    verdicts = []
    for (workload, size, _phase, _dtype), group in cell_groups(cells).items():
        record = parity_of(parity, workload, size)
        passed = None if record is None else bool(record["passed"])
        verdicts += memory_verdicts(group, parity_passed=passed)
    return verdicts


# run info key → what its budget predicted
BUDGET_RECORDS = {"memory_budget": "largest batch", "memory_sequence_budget": "longest sequence"}


def budget_confirmations(info: dict[str, Any]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """Each cell a ``--memory-budget`` sweep measured to confirm a prediction, by (workload,
    size as stored, phase, mode): the budget, the prediction (``predicted_batch`` or
    ``predicted_seq_len``, with ``clipped`` and ``position_limit`` for a sequence), and the
    outcome. The same cell can confirm both a batch and a sequence prediction; the sequence's
    fields then join the batch's."""
    out: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for key in BUDGET_RECORDS:
        record = info.get(key) or {}
        for fit in record.get("fits") or []:
            if "cell_size" not in fit:
                continue  # not measured: nothing to label
            fields = {"budget_bytes": record["budget_bytes"]}
            names = ("predicted_batch",) if key == "memory_budget" else SEQUENCE_BUDGET_FIELDS
            fields |= {name: fit.get(name) for name in names}
            fields["outcome"] = fit["outcome"]
            cell = (fit["workload"], fit["cell_size"], fit["phase"], fit["mode"])
            out.setdefault(cell, {}).update(fields)
    return out


SEQUENCE_BUDGET_FIELDS = ("predicted_seq_len", "measured_seq_len", "clipped", "position_limit")


def sequence_budget_findings(info: dict[str, Any]) -> list[tuple[str, str]]:
    """(subject, finding) per mode of a ``--memory-budget`` sweep over sequence lengths: the
    longest sequence its fit predicts within the budget, where that was clipped to the position
    table, and what measuring there showed."""
    record = info.get("memory_sequence_budget")
    if not record:
        return []
    budget = _mb(float(record["budget_bytes"]))
    findings = []
    for fit in record["fits"]:
        ckpt = " ckpt" if fit["checkpointing"] else ""
        subject = f"{fit['workload']}/{fit['size']} bs={fit['batch_size']}{ckpt} {fit['phase']}"
        line = f"{fit['mode']} within {budget}: "
        predicted = fit["predicted_seq_len"]
        if predicted is None:
            findings.append((subject, line + fit["outcome"]))
            continue
        line += (
            f"longest sequence predicted {predicted:,} ({_mb(fit['bytes_per_position'])} a "
            f"position + {_mb(fit['intercept_bytes'])} fixed)"
        )
        if fit["clipped"]:
            line += f", clipped to the position table's {fit['position_limit']:,}"
        measured = fit.get("measured_bytes")
        if measured is not None:
            line += f"; measured at {fit['measured_seq_len']:,}: {_mb(float(measured))}"
        findings.append((subject, f"{line} — {fit['outcome']}"))
    return findings


def sequence_budget_notes(info: dict[str, Any]) -> list[str]:
    """`sequence_budget_findings` as the report's note lines."""
    return [f"memory budget, {subject}, {text}" for subject, text in sequence_budget_findings(info)]
