"""The deploy suite: can I ship this model, how big is it, how fast does it start and answer,
and does the shipped model still compute what the twin computes?

For each workload (``infer`` phase, eval mode, the canonical weights in both frameworks),
`run_deploy`:

1. writes one batch per batch size under the run's artefact folder;
2. exports each path's artefact in a worker (`twinbench.deploy.worker`), which also writes its
   framework's eager outputs — an exporter that fails is a result (``error`` with its text);
3. serves each artefact in ``repeats`` fresh processes that did not export, paths interleaved
   round by round: cold start (runtime import + load + first call), then single-call latency
   at every batch size; the first process saves the artefact's outputs;
4. judges fidelity against the eager twin and the other framework's artefact, builds the
   feature table and the verdicts (parity first: a path that fails fidelity gets none).

A worker that crashes (a segfaulting runtime) or hangs is recorded ``crashed``/``timeout`` and
the suite goes on.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from twinbench.deploy import fidelity
from twinbench.deploy.inputs import read_by_batch, write_inputs
from twinbench.deploy.settings import (
    ARTEFACTS,
    GROUPS,
    PATHS,
    DeploySettings,
    framework_of,
    group_of,
)
from twinbench.deploy.worker import outputs_file, reference_file
from twinbench.harness.process import CellFailed, one_shot
from twinbench.harness.stats import (
    Ratio,
    process_spread,
    ratio_of_medians,
    ratio_of_medians_grouped,
    summarize,
    summarize_groups,
)
from twinbench.parity import tolerances_for
from twinbench.registry import builtin
from twinbench.suite import Progress, SuiteInterrupted, WorkerFailures, no_progress

WORKER = "twinbench.deploy.worker"
EXPORT_TIMEOUT_S = 1800  # AOTInductor compiles C++: minutes for a larger model on two cores
SERVE_TIMEOUT_S = 600
PERCENTILES = (50, 95, 99)
COMPILERS = ("c++", "g++", "clang++")
NO_COMPILER = (
    "no C++ compiler found (AOTInductor compiles the model into a shared library); "
    "install g++ or set CXX"
)


def cpp_compiler() -> str | None:
    """The C++ compiler AOTInductor would use: ``$CXX`` or the first of the usual names."""
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else list(COMPILERS)
    return next((found for c in candidates if (found := shutil.which(c))), None)


@dataclass
class DeployResult(WorkerFailures):
    """Everything one deploy run measured; ``to_dict()`` is what the results store keeps."""

    kind: ClassVar[str] = "deploy"

    settings: DeploySettings
    cells: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    verdicts: list[dict[str, Any]]
    features: list[dict[str, Any]]
    failures: list[str] = field(default_factory=list)


def run_deploy(settings: DeploySettings, progress: Progress = no_progress) -> DeployResult:
    """Run the deploy suite; see the module docstring for what it does, in which order.

    Raises `TwinbenchError` (one line) on a bad setting, more threads than usable cores or an
    output directory this process cannot write.
    """
    settings.validate()
    settings.check_environment()
    settings = settings.resolved()
    root = settings.out / ARTEFACTS / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    cells: list[dict[str, Any]] = []
    try:
        for name in settings.workloads:
            cells += _deploy_workload(settings, name, root, progress)
    except KeyboardInterrupt:  # the workload being exported or served is lost; the rest is kept
        raise SuiteInterrupted(_result(settings, cells, root, interrupted=True)) from None
    return _result(settings, cells, root)


def _deploy_workload(
    settings: DeploySettings, name: str, root: Path, progress: Progress
) -> list[dict[str, Any]]:
    """Every path of one workload: export, serve in fresh processes, judge fidelity."""
    workload = builtin(name)
    size = workload.size(settings.size)
    folder = root / f"{name}-{size.name}"
    folder.mkdir(parents=True)
    batch_sizes = settings.batches_for(size.batch_size)
    write_inputs(folder, workload, size, batch_sizes, settings.seed)
    mine = [_export(settings, name, path, folder, progress) for path in settings.paths]
    _serve(settings, [c for c in mine if c["status"] == "ok"], folder, progress)
    tol = tolerances_for(workload, size, "float32").outputs
    for cell in mine:
        _judge(cell, folder, tol, batch_sizes)
    return mine


def _result(
    settings: DeploySettings, cells: list[dict[str, Any]], root: Path, *, interrupted: bool = False
) -> DeployResult:
    """Comparisons, verdicts and the feature table of the workloads in ``cells``."""
    failures = [
        f"{cell['workload']} {cell['path']}: {cell['error']}"
        for cell in cells
        if cell["status"] in ("crashed", "timeout")
    ]
    comparisons = compare_artefacts(settings, cells, root)
    found = verdicts(cells)
    for cell in cells:  # every call's time: the verdicts are made; the run keeps percentiles
        cell.pop("latency_groups", None)
    result = DeployResult(
        settings=settings,
        cells=cells,
        comparisons=comparisons,
        verdicts=found,
        features=feature_table(cells, comparisons),
        failures=failures,
    )
    result.interrupted = interrupted
    return result


def _new_cell(workload: str, path: str, folder: Path) -> dict[str, Any]:
    return {
        "workload": workload,
        "path": path,
        "framework": framework_of(path),
        "runtime": PATHS[path][1],
        "group": group_of(path),
        "folder": str(folder),
        "status": "ok",
        "error": None,
        "serve": [],
    }


def _export(
    settings: DeploySettings, workload: str, path: str, folder: Path, say: Progress
) -> dict[str, Any]:
    cell = _new_cell(workload, path, folder)
    if path == "torch-aoti" and cpp_compiler() is None:
        return {**cell, "status": "unavailable", "error": NO_COMPILER}
    say(f"{workload}: exporting {path}")
    request = {
        "kind": "export",
        "workload": workload,
        "size": settings.size,
        "seed": settings.seed,
        "path": path,
        "folder": str(folder),
    }
    try:
        answer = one_shot(
            request, threads=settings.threads or 1, timeout=EXPORT_TIMEOUT_S, module=WORKER
        )
    except CellFailed as exc:
        return {**cell, "status": exc.status, "error": exc.error}
    return {**cell, **answer}


def _serve(
    settings: DeploySettings, cells: Sequence[dict[str, Any]], folder: Path, say: Progress
) -> None:
    """``repeats`` rounds; in each, every exported path is served once in a fresh process."""
    for round_ in range(settings.repeats):
        for cell in cells:
            if cell["status"] != "ok":
                continue  # a serving process of this path crashed in an earlier round
            say(f"{cell['workload']}: serving {cell['path']} ({round_ + 1}/{settings.repeats})")
            request = {
                "kind": "serve",
                "path": cell["path"],
                "folder": str(folder),
                "budget_s": settings.budget_s,
                "save_outputs": round_ == 0,
            }
            try:
                answer = one_shot(
                    request, threads=settings.threads or 1, timeout=SERVE_TIMEOUT_S, module=WORKER
                )
            except CellFailed as exc:
                cell.update(status=exc.status, error=f"serving: {exc.error}")
                continue
            cell["serve"].append(answer)


def _judge(cell: dict[str, Any], folder: Path, tol: Any, batch_sizes: Sequence[int]) -> None:
    """Fidelity against the eager twin, the dynamic-batch check and the timing summaries."""
    cell["batch_sizes"] = list(batch_sizes)
    if cell["status"] != "ok" and not cell["serve"]:
        cell["fidelity"] = {}
        return
    reference = read_by_batch(reference_file(folder, cell["framework"]))
    outputs = read_by_batch(outputs_file(folder, cell["path"]))
    cell["fidelity"] = fidelity.compare_outputs(reference, outputs, tol)
    cell["fidelity_passed"] = fidelity.all_passed(cell["fidelity"])
    answered = sorted(outputs)
    cell["dynamic_checked_at"] = answered
    cell["dynamic_batch"] = _dynamic_verdict(cell, answered)
    serves = cell.pop("serve")
    cell["serve_pids"] = [s["pid"] for s in serves]
    cell["device"] = serves[0]["device"] if serves else None
    cell["cold_start"] = _cold_start(serves)
    cell["latency"], cell["latency_groups"] = _latency(serves, batch_sizes)


def _dynamic_verdict(cell: Mapping[str, Any], answered: Sequence[int]) -> str:
    """``yes`` only when a symbolic-batch artefact answered at two or more batch sizes, each
    within tolerance; ``no`` with the reason otherwise."""
    if not cell.get("dynamic"):
        return f"no: {cell.get('dynamic_error') or 'exported at one batch size'}"
    if len(answered) < 2:
        return "not checked: give two batch sizes"
    if not all(c["passed"] for c in cell["fidelity"].values()):
        return "no: outputs wrong at some batch size"
    return "yes"


def _cold_start(serves: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    if not serves:
        return None
    samples = [s["cold_start_s"] for s in serves]
    summary = summarize(samples)
    parts = {
        k: float(np.median([s[k] for s in serves])) for k in ("import_s", "load_s", "first_call_s")
    }
    return {
        "samples": samples,
        "median_s": summary.median,
        "ci_low_s": summary.ci_low,
        "ci_high_s": summary.ci_high,
        **{f"median_{k}": v for k, v in parts.items()},
    }


def _latency(
    serves: Sequence[Mapping[str, Any]], batch_sizes: Sequence[int]
) -> tuple[dict[str, Any], dict[str, list[list[float]]]]:
    """Per batch size: median with its hierarchical-bootstrap CI over processes, p50/p95/p99 of
    all calls pooled, throughput; and the per-process samples the verdicts are computed from."""
    summaries: dict[str, Any] = {}
    groups: dict[str, list[list[float]]] = {}
    for b in batch_sizes:
        mine = [s["latency"][str(b)] for s in serves if s["latency"].get(str(b))]
        if not mine:
            continue
        summary = summarize_groups(mine)
        pooled = np.concatenate(mine)
        low, high = process_spread(mine)
        summaries[str(b)] = {
            "median_s": summary.median,
            "ci_low_s": summary.ci_low,
            "ci_high_s": summary.ci_high,
            **{f"p{q}_s": float(np.percentile(pooled, q)) for q in PERCENTILES},
            "n": summary.n,
            "processes": len(mine),
            "process_medians_s": [low, high],
            "throughput_per_s": b / summary.median,
            "quantiles_s": [float(v) for v in np.percentile(pooled, np.arange(101))],
        }
        groups[str(b)] = mine
    return summaries, groups


# ---- comparisons between the frameworks -------------------------------------------------------


def _pairs(
    cells: Sequence[dict[str, Any]],
) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(workload, group, torch cell, jax cell) for every group both frameworks ran."""
    by = {(c["workload"], c["path"]): c for c in cells}
    pairs = []
    for workload in dict.fromkeys(c["workload"] for c in cells):
        for group in ("native", "onnx"):
            torch_path, jax_path = GROUPS[group]
            if (workload, torch_path) in by and (workload, jax_path) in by:
                pairs.append(
                    (workload, group, by[(workload, torch_path)], by[(workload, jax_path)])
                )
    return pairs


def compare_artefacts(
    settings: DeploySettings, cells: Sequence[dict[str, Any]], root: Path
) -> list[dict[str, Any]]:
    """The torch artefact's outputs against the JAX artefact's, per group and batch size."""
    rows = []
    for workload, group, torch_cell, jax_cell in _pairs(cells):
        w = builtin(workload)
        tol = tolerances_for(w, w.size(settings.size), "float32").outputs
        folder = Path(torch_cell["folder"])
        torch_out = read_by_batch(outputs_file(folder, torch_cell["path"]))
        jax_out = read_by_batch(outputs_file(folder, jax_cell["path"]))
        checks = fidelity.compare_outputs(torch_out, jax_out, tol) if torch_out and jax_out else {}
        rows.append(
            {
                "workload": workload,
                "group": group,
                "checks": checks,
                "passed": fidelity.all_passed(checks),
            }
        )
    return rows


def _ratio_text(ratio: Ratio, faster_torch: str, faster_jax: str, what: str) -> str:
    """torch / jax time ratio as a sentence: > 1 means JAX's artefact takes less time."""
    if not ratio.significant:
        return f"no significant difference in {what}"
    if ratio.ratio > 1:
        return f"{faster_jax} {ratio.ratio:.2f}x faster ({what})"
    return f"{faster_torch} {1 / ratio.ratio:.2f}x faster ({what})"


def _usable(cell: Mapping[str, Any]) -> str | None:
    """Why a cell gets no verdict, or None when it may have one."""
    if not cell.get("latency"):
        return f"{cell['path']} did not run ({cell['status']})"
    if not cell.get("fidelity_passed"):
        return f"{cell['path']} fails fidelity"
    return None


def verdicts(cells: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per workload and group: which artefact answers faster at each batch size and which
    starts faster cold, as torch / jax ratios of medians with bootstrap CIs."""
    rows: list[dict[str, Any]] = []
    for workload, group, t, j in _pairs(cells):
        why = _usable(t) or _usable(j)
        if why is not None:
            rows.append(
                {
                    "workload": workload,
                    "group": group,
                    "what": "all",
                    "verdict": f"no verdict: {why}",
                }
            )
            continue
        measures: list[tuple[str, Ratio]] = [
            ("cold start", ratio_of_medians(t["cold_start"]["samples"], j["cold_start"]["samples"]))
        ]
        for b in t["batch_sizes"]:
            key = str(b)
            if key in t["latency_groups"] and key in j["latency_groups"]:
                ratio = ratio_of_medians_grouped(t["latency_groups"][key], j["latency_groups"][key])
                measures.append((f"latency at batch {b}", ratio))
        for what, ratio in measures:
            rows.append(
                {
                    "workload": workload,
                    "group": group,
                    "what": what,
                    "ratio_torch_over_jax": ratio.ratio,
                    "ci_low": ratio.ci_low,
                    "ci_high": ratio.ci_high,
                    "verdict": _ratio_text(ratio, t["path"], j["path"], what),
                }
            )
    return rows


def feature_table(
    cells: Sequence[dict[str, Any]], comparisons: Sequence[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """Per workload and path, from what ran: exported (or the error), dynamic batch, fidelity."""
    other = {(c["workload"], c["group"]): c["passed"] for c in comparisons}
    rows = []
    for c in cells:
        exported = "yes" if c.get("size_bytes") is not None else f"failed: {c['error']}"
        if c["status"] == "unavailable":
            exported = f"not available: {c['error']}"
        checks = c.get("fidelity") or {}
        passed = c.get("fidelity_passed")
        rows.append(
            {
                "workload": c["workload"],
                "path": c["path"],
                "exported": exported,
                "dynamic_batch": c.get("dynamic_batch", "—"),
                "fidelity": "—" if not checks else ("pass" if passed else "fail"),
                "matches_other_framework": other.get((c["workload"], c["group"])),
                "served": c["status"] if c.get("size_bytes") is not None else "—",
            }
        )
    return rows
