"""The autodiff suite: checks first, then speed, vectorisation scaling, memory and features.

``run_suite`` runs each framework in its own subprocess (``twinbench.autodiff.worker``) with the
run's thread budget in its environment, in this order:

1. float64 correctness checks (``checks``) for every (function, transformation, framework);
2. timing, float32, eager and compiled, of every cell whose check passed (parity first: a
   cell that fails its check gets no speed number);
3. per-example gradients of the MLP at batch sizes 1, 2, 4, …, 256;
4. peak memory of one gradient step of a deep MLP with and without checkpointing, one fresh
   subprocess per (framework, checkpointing);
5. the feature table, built from the check results (and the compiled cells' outcomes).

Memory is reported two ways, because neither alone is enough on a CPU: the process's RSS
high-water increase over its RSS after setup (the same yardstick for both frameworks, but it
includes allocator slack), and each framework's own accounting (bytes PyTorch's autograd saves
for backward, via ``saved_tensors_hooks``; XLA's ``memory_analysis()`` temporary bytes), which is
exact about activations but not comparable across frameworks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from twinbench.autodiff.checks import CheckResult, Evaluation, judge
from twinbench.autodiff.functions import (
    CHECK_SIZES,
    FUNCTIONS,
    QUICK_CHECK_SIZES,
    QUICK_TIMING_SIZES,
    TIMING_SIZES,
    TRANSFORMS,
    Sizes,
    validate_names,
    validate_positive,
)
from twinbench.errors import TwinbenchError
from twinbench.harness.environment import fingerprint, thread_environment, usable_cores
from twinbench.harness.stats import ratio_of_medians

FRAMEWORKS = ("torch", "jax")
MODES = ("eager", "compiled")
MODE_LABELS = {
    ("torch", "eager"): "torch-eager",
    ("torch", "compiled"): "torch-compile",
    ("jax", "eager"): "jax-eager",
    ("jax", "compiled"): "jax-jit",
}
SCALING_BATCHES = tuple(2**k for k in range(9))  # 1 … 256
QUICK_SCALING_BATCHES = (1, 4, 16)
SCALING_TRANSFORM = "per_example_grad"
BUDGET_S = 0.25
QUICK_BUDGET_S = 0.05
MEMORY = {"depth": 16, "width": 256, "batch": 4096}
QUICK_MEMORY = {"depth": 4, "width": 32, "batch": 64}
WORKER_TIMEOUT_S = 600


@dataclass(frozen=True)
class FeatureCell:
    """Whether one framework does one transformation, and on what evidence.

    ``support`` is ``native`` or ``composed`` only when every check behind it passed; otherwise
    ``cannot`` (the framework raised), ``wrong`` (the numbers failed), ``diverged`` (NaN) or
    ``not run``. ``compiled`` says how the compiled (torch.compile / jax.jit) cells went.
    """

    transform: str
    framework: str
    support: str
    api: str
    evidence: dict[str, str]  # function -> check status
    compiled: str | None = None
    detail: str = ""


@dataclass
class AutodiffReport:
    """Everything one suite run measured; ``to_dict()`` is what the results store keeps."""

    settings: dict[str, Any]
    checks: list[CheckResult]
    timings: list[dict[str, Any]]
    scaling: list[dict[str, Any]]
    memory: list[dict[str, Any]]
    features: list[FeatureCell]
    comparisons: list[dict[str, Any]]
    failures: list[str] = field(default_factory=list)

    @property
    def all_checks_passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "checks": [c.to_dict() for c in self.checks],
            "timings": self.timings,
            "scaling": self.scaling,
            "memory": self.memory,
            "features": [asdict(f) for f in self.features],
            "comparisons": self.comparisons,
            "failures": self.failures,
        }


# ---- subprocesses -------------------------------------------------------------------------------


class WorkerFailed(Exception):
    pass


def call_worker(request: dict[str, Any], *, threads: int, timeout: float) -> Any:
    """Run one request in a fresh ``twinbench.autodiff.worker`` process and return its result."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "twinbench.autodiff.worker"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **thread_environment(threads)},
        )
    except subprocess.TimeoutExpired:
        raise WorkerFailed(f"no answer within {timeout:.0f} s") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip()[-1000:]
        raise WorkerFailed(f"worker exited with status {done.returncode}: {tail}")
    answer = json.loads(lines[-1])
    if "error" in answer:
        raise WorkerFailed(answer["error"])
    return answer["result"]


# ---- the feature table and comparisons ----------------------------------------------------------

_FAILURE_SUPPORT = (("error", "cannot"), ("fail", "wrong"), ("nan", "diverged"))


def feature_table(
    checks: Sequence[CheckResult], timings: Sequence[dict[str, Any]] = ()
) -> list[FeatureCell]:
    """One cell per (transformation, framework), derived from the check results only.

    A cell reads ``native``/``composed`` only if every check behind it passed.
    """
    cells = []
    for transform in TRANSFORMS:
        for framework in FRAMEWORKS:
            mine = [c for c in checks if (c.transform, c.framework) == (transform, framework)]
            if not mine:
                continue
            statuses = {c.status for c in mine}
            support = next((s for st, s in _FAILURE_SUPPORT if st in statuses), mine[0].kind)
            detail = next((c.detail for c in mine if not c.passed), "")
            compiled = [
                t
                for t in timings
                if (t["transform"], t["framework"], t["mode"]) == (transform, framework, "compiled")
            ]
            compiled_text = None
            if compiled:
                errors = [t["error"] for t in compiled if t["status"] != "ok"]
                compiled_text = f"error: {errors[0]}" if errors else "ok"
            cells.append(
                FeatureCell(
                    transform,
                    framework,
                    support,
                    mine[0].api,
                    {c.function: c.status for c in mine},
                    compiled_text,
                    detail,
                )
            )
    return cells


def _ratio_text(ratio: Any) -> str:
    if not ratio.significant:
        return "no significant difference"
    if ratio.ratio > 1:
        return f"jax {ratio.ratio:.2f}x faster"
    return f"torch {1 / ratio.ratio:.2f}x faster"


def compare(timings: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """torch / jax time ratio with a bootstrap CI for each cell both frameworks timed."""
    ok = {
        (t["function"], t["transform"], t.get("batch"), t["mode"], t["framework"]): t
        for t in timings
        if t["status"] == "ok"
    }
    rows = []
    for (function, transform, batch, mode, framework), cell in ok.items():
        other = ok.get((function, transform, batch, mode, "jax"))
        if framework != "torch" or other is None:
            continue
        ratio = ratio_of_medians(cell["samples"], other["samples"])
        rows.append(
            {
                "function": function,
                "transform": transform,
                "batch": batch,
                "mode": mode,
                "ratio_torch_over_jax": ratio.ratio,
                "ci_low": ratio.ci_low,
                "ci_high": ratio.ci_high,
                "verdict": _ratio_text(ratio),
            }
        )
    return rows


# ---- the suite ----------------------------------------------------------------------------------


def _sizes(base: Sizes, dim: int | None, hidden: int | None, batch: int | None) -> Sizes:
    given = (("dim", dim), ("hidden", hidden), ("batch", batch))
    changes = {k: v for k, v in given if v is not None}
    for name, value in changes.items():
        validate_positive(name, value)
    return replace(base, **changes)


def run_suite(
    *,
    functions: Sequence[str] = FUNCTIONS,
    transforms: Sequence[str] = TRANSFORMS,
    quick: bool = False,
    dim: int | None = None,
    hidden: int | None = None,
    batch: int | None = None,
    batch_sizes: Sequence[int] | None = None,
    modes: Sequence[str] = MODES,
    threads: int | None = None,
    budget_s: float | None = None,
    memory: bool = True,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> AutodiffReport:
    """Run the autodiff suite; see the module docstring for what it does, in which order.

    ``dim``/``hidden``/``batch`` size the timed problems (Rosenbrock dimension, MLP hidden width,
    MLP batch); checks always run at small sizes because finite differences cost O(n) calls.
    ``batch_sizes`` are the per-example-gradient batches (empty: skip scaling); ``budget_s`` is
    the timing budget per measurement. Raises TwinbenchError on a bad name or size.
    """
    functions, transforms, modes = list(functions), list(transforms), list(modes)
    validate_names("function", functions, FUNCTIONS)
    validate_names("transformation", transforms, TRANSFORMS)
    validate_names("mode", modes, MODES)
    if not functions or not transforms:
        raise TwinbenchError("nothing to run: give at least one function and one transformation")
    threads = validate_positive("threads", threads if threads is not None else usable_cores())
    timing_sizes = _sizes(QUICK_TIMING_SIZES if quick else TIMING_SIZES, dim, hidden, batch)
    check_sizes = QUICK_CHECK_SIZES if quick else CHECK_SIZES
    if batch_sizes is None:
        batch_sizes = QUICK_SCALING_BATCHES if quick else SCALING_BATCHES
    batch_sizes = [validate_positive("batch size", b) for b in batch_sizes]
    budget = budget_s if budget_s is not None else (QUICK_BUDGET_S if quick else BUDGET_S)
    if not budget > 0:
        raise TwinbenchError(f"budget_s must be positive, got {budget!r}")
    memory_sizes = QUICK_MEMORY if quick else MEMORY
    say = progress or (lambda _message: None)
    failures: list[str] = []
    settings = {
        "functions": functions,
        "transforms": transforms,
        "modes": modes,
        "quick": quick,
        "threads": threads,
        "budget_s": budget,
        "seed": seed,
        "batch_sizes": batch_sizes,
        "check_sizes": asdict(check_sizes),
        "timing_sizes": asdict(timing_sizes),
        "memory": memory_sizes if memory else None,
        "timing_dtype": "float32",
        "check_dtype": "float64",
        "device": "cpu",
    }

    def worker(request: dict[str, Any]) -> Any:
        try:
            return call_worker(request, threads=threads, timeout=WORKER_TIMEOUT_S)
        except WorkerFailed as exc:
            failures.append(f"{request['framework']} {request['kind']}: {exc}")
            return None

    evaluations: list[Evaluation] = []
    for framework in FRAMEWORKS:
        say(f"checking {framework} (float64, finite differences)")
        answer = worker(
            {
                "kind": "check",
                "framework": framework,
                "functions": functions,
                "transforms": transforms,
                "sizes": asdict(check_sizes),
                "seed": seed,
            }
        )
        evaluations += [Evaluation.from_dict(e) for e in answer or []]
    checks = judge(evaluations)
    passed = {(c.function, c.transform, c.framework) for c in checks if c.passed}

    timings: list[dict[str, Any]] = []
    scaling: list[dict[str, Any]] = []
    for framework in FRAMEWORKS:
        cells = [
            {"function": f, "transform": t, "mode": m, "batch": None}
            for f in functions
            for t in transforms
            for m in modes
            if (f, t, framework) in passed
        ]
        scale_cells = [
            {"function": "mlp", "transform": SCALING_TRANSFORM, "mode": m, "batch": b}
            for m in modes
            for b in batch_sizes
            if ("mlp", SCALING_TRANSFORM, framework) in passed
        ]
        for kind, todo, sink in (("timing", cells, timings), ("scaling", scale_cells, scaling)):
            if not todo:
                continue
            say(f"timing {framework}: {len(todo)} {kind} cells")
            answer = worker(
                {
                    "kind": "time",
                    "framework": framework,
                    "cells": todo,
                    "sizes": asdict(timing_sizes),
                    "seed": seed,
                    "budget_s": budget,
                }
            )
            for cell in answer or []:
                cell["mode_label"] = MODE_LABELS[(framework, cell["mode"])]
                sink.append(cell)

    memory_rows: list[dict[str, Any]] = []
    if memory:
        for framework in FRAMEWORKS:
            for remat in (False, True):
                say(f"memory {framework}, checkpointing {'on' if remat else 'off'}")
                answer = worker(
                    {"kind": "memory", "framework": framework, "remat": remat, **memory_sizes}
                )
                if answer is not None:
                    memory_rows.append(answer)

    return AutodiffReport(
        settings=settings,
        checks=checks,
        timings=timings,
        scaling=scaling,
        memory=memory_rows,
        features=feature_table(checks, timings),
        comparisons=compare(timings) + compare(scaling),
        failures=failures,
    )


def save(report: AutodiffReport, out_dir: Path) -> int:
    """Store the report as run info ``autodiff`` of a new run in ``out_dir``; returns its id."""
    from twinbench.store import DB_NAME, ResultStore

    with ResultStore(Path(out_dir) / DB_NAME) as store:
        run_id = store.start_run(
            environment=fingerprint(), settings={"kind": "autodiff", **report.settings}
        )
        store.set_run_info(run_id, "autodiff", report.to_dict())
        store.finish_run(run_id, status="finished" if not report.failures else "failed")
    return run_id


# ---- text summary -------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3g} ms"


def _cell_text(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return "-"
    if cell["status"] != "ok":
        return "error"
    flag = "" if cell["converged"] else " ~"
    return f"{_ms(cell['median_s'])}{flag}"


def format_summary(report: AutodiffReport) -> str:
    """A plain-text summary: checks, features, speed, scaling, memory, failures."""
    s = report.settings
    out = [
        f"autodiff suite: {s['threads']} threads, checks {s['check_dtype']}, "
        f"timing {s['timing_dtype']} on {s['device']}, budget {s['budget_s']} s per cell",
        "",
        "Correctness (max relative error vs finite differences | vs the other framework)",
    ]
    by = {(c.function, c.transform, c.framework): c for c in report.checks}
    for function in s["functions"]:
        for transform in s["transforms"]:
            parts = []
            for fw in FRAMEWORKS:
                c = by.get((function, transform, fw))
                if c is None:
                    parts.append(f"{fw}: -")
                    continue
                errs = " | ".join(
                    "-" if e is None else f"{e:.1e}" for e in (c.rel_err_fd, c.rel_err_other)
                )
                text = f"{fw}: {c.status} {errs}"
                if not c.passed:
                    text += f" ({c.detail[:90]})"
                parts.append(text)
            out.append(f"  {function:<10} {transform:<22} " + "   ".join(parts))
    out += ["", "Feature table (support; compiled)"]
    for cell in report.features:
        compiled = "" if cell.compiled is None else f"; compiled: {cell.compiled[:90]}"
        out.append(
            f"  {cell.transform:<22} {cell.framework:<5} {cell.support:<8} {cell.api}{compiled}"
        )
    out += ["", "Speed (median per call; ~ = CI not within ±2 % in budget; ratio = torch / jax)"]
    index = {
        (t["function"], t["transform"], t.get("batch"), t["mode"], t["framework"]): t
        for t in report.timings + report.scaling
    }
    ratios = {(r["function"], r["transform"], r["batch"], r["mode"]): r for r in report.comparisons}
    for t in report.timings:
        if t["framework"] != "torch":
            continue
        key = (t["function"], t["transform"], None, t["mode"])
        jax_cell = index.get((*key, "jax"))
        r = ratios.get(key)
        verdict = ""
        if r is not None:
            ratio = f"{r['ratio_torch_over_jax']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
            verdict = f"{ratio} {r['verdict']}"
        out.append(
            f"  {t['function']:<10} {t['transform']:<22} {t['mode']:<8} "
            f"torch {_cell_text(t):<12} jax {_cell_text(jax_cell):<12} {verdict}"
        )
    errors = [t for t in report.timings + report.scaling if t["status"] != "ok"]
    for t in errors:
        out.append(f"  ! {t['mode_label']} {t['function']} {t['transform']}: {t['error'][:160]}")
    if report.scaling:
        out += ["", "Per-example gradients (mlp, vmap(grad)) by batch size"]
        for mode in s["modes"]:
            for b in s["batch_sizes"]:
                cells = [index.get(("mlp", SCALING_TRANSFORM, b, mode, fw)) for fw in FRAMEWORKS]
                per = "  ".join(
                    f"{fw} {_cell_text(c):<12}"
                    + (
                        ""
                        if c is None or c["status"] != "ok"
                        else f"({c['median_s'] / b * 1e6:.3g} us/example)"
                    )
                    for fw, c in zip(FRAMEWORKS, cells, strict=True)
                )
                out.append(f"  {mode:<8} batch {b:>4}  {per}")
    if report.memory:
        m = s["memory"]
        out += [
            "",
            f"Memory: one gradient step, MLP {m['depth']} x {m['width']}, batch {m['batch']}, "
            "float32 (RSS high-water increase; framework's own accounting)",
        ]
        for row in report.memory:
            rss = row["rss_increase_bytes"]
            acc = row["accounting"]
            acc_text = "-" if acc["bytes"] is None else f"{acc['bytes'] / 2**20:.1f} MiB"
            out.append(
                f"  {row['framework']:<5} checkpointing {'on ' if row['remat'] else 'off'}  "
                f"RSS {'-' if rss is None else f'{rss / 2**20:+.1f} MiB':<11} "
                f"{acc['method']}: "
                f"{acc_text}"
            )
    if report.failures:
        out += ["", "Failures"] + [f"  {f}" for f in report.failures]
    return "\n".join(out)
