"""Parity: do the two twins compute the same thing? Checked before anything is timed.

Same canonical weights and same batches in both twins, then compare (a) forward outputs, (b) the
loss, (c) every parameter's gradient and (d) the loss curve over N optimizer steps for each
parity optimizer, all in train mode. Twins with running statistics (BatchNorm) are also compared on
(e) the statistics after one training step and (f) eval-mode outputs, which normalise with them.
When outputs, loss or gradients disagree, the layer-by-layer comparison names the first module
whose output diverges and tells whether the module itself computes differently or receives an input
that already differs.

Tolerances (``TOLERANCES``) are per dtype. An element passes when ``|a - b| <= atol + rtol·|b|``
(NumPy's ``allclose`` rule). The float32 values sit between the defaults of
``torch.testing.assert_close`` (rtol 1.3e-6, atol 1e-5) and the 1e-5 absolute bound of Hugging
Face's PyTorch⇄Flax tests: loose enough for two libraries that sum in different orders, tight enough
that a GELU tanh/erf swap (≈1e-4 to 5e-4) or a LayerNorm eps slip fails. Gradients sum over the
whole batch and so get a looser rtol. Loss curves drift apart by rounding even when each step
agrees, so their tolerance grows linearly with the step: step k allows ``(1 + k)`` times the base.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from itertools import islice
from typing import Any

import numpy as np

from twinbench.backends import initial_weights, make_runner
from twinbench.backends.protocols import Runner
from twinbench.errors import TwinbenchError
from twinbench.registry import resolve
from twinbench.spec import FRAMEWORKS, Batch, Size, Workload
from twinbench.validation import in_range, one_of
from twinbench.validation import seed as check_seed


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float


@dataclass(frozen=True)
class DtypeTolerances:
    outputs: Tolerance
    gradients: Tolerance
    curve: Tolerance  # at step 0; grows linearly with the step


TOLERANCES = {
    "float32": DtypeTolerances(
        outputs=Tolerance(atol=1e-5, rtol=1e-5),
        gradients=Tolerance(atol=1e-5, rtol=1e-4),
        curve=Tolerance(atol=1e-6, rtol=1e-5),
    ),
    # bfloat16 keeps 8 mantissa bits (≈4e-3 relative): JAX's own test tolerances for it.
    "bfloat16": DtypeTolerances(
        outputs=Tolerance(atol=1e-2, rtol=1e-2),
        gradients=Tolerance(atol=1e-1, rtol=1e-1),
        curve=Tolerance(atol=1e-2, rtol=1e-2),
    ),
}


@dataclass
class Check:
    """One comparison between the twins."""

    name: str
    passed: bool
    max_abs: float
    max_rel: float
    atol: float
    rtol: float
    detail: str = ""
    worst_parameter: str | None = None
    first_bad_step: int | None = None
    curves: dict[str, list[float]] | None = None


@dataclass
class Divergence:
    """Where the twins' forward passes first part ways."""

    layer: str
    previous: str | None  # the last module, in execution order, whose outputs still agreed
    layer_itself: bool | None  # same input in, different output out? None when not testable
    max_abs: float

    def describe(self) -> str:
        if self.layer_itself:
            return (
                f"first divergent layer: '{self.layer}' (given the same input it computes a "
                f"different output, max abs diff {self.max_abs:.3g})"
            )
        where = (
            f"between '{self.previous}' and '{self.layer}'"
            if self.previous
            else (f"before '{self.layer}'")
        )
        if self.layer_itself is False:
            return (
                f"first divergent layer: '{self.layer}' receives an input that already differs: "
                f"the cause is an operation {where} that is not a module"
            )
        return f"first divergent layer: '{self.layer}' (max abs diff {self.max_abs:.3g})"


@dataclass
class ParityResult:
    """All checks for one workload at one size."""

    workload: str
    size: str
    dtype: str
    steps: int
    checks: list[Check] = field(default_factory=list)
    divergence: Divergence | None = None
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.checks) and all(c.passed for c in self.checks)

    def failures(self) -> list[str]:
        """One line per failed check, with the diagnosis."""
        if self.error:
            return [self.error]
        lines = [f"{c.name}: {c.detail}" for c in self.checks if not c.passed]
        if self.divergence:
            lines.append(self.divergence.describe())
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParityResult:
        """The result `to_dict` gave (as a parity worker sends it back)."""
        divergence = data.get("divergence")
        return cls(
            workload=data["workload"],
            size=data["size"],
            dtype=data["dtype"],
            steps=data["steps"],
            checks=[Check(**check) for check in data.get("checks", [])],
            divergence=Divergence(**divergence) if divergence else None,
            error=data.get("error"),
        )


@dataclass
class ParityReport:
    """The result of `parity` over several workloads."""

    results: list[ParityResult]

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "results": [r.to_dict() for r in self.results]}


def _failed(name: str, tol: Tolerance, detail: str, *, difference: float = np.inf) -> Check:
    """A check that fails before any element is compared (``difference``: inf, or NaN when a
    value is not finite)."""
    return Check(name, False, difference, difference, tol.atol, tol.rtol, detail=detail)


def compare(name: str, reference: np.ndarray, other: np.ndarray, tol: Tolerance) -> Check:
    """Elementwise comparison; non-finite values or a shape mismatch always fail."""
    reference, other = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    if reference.shape != other.shape:
        return _failed(name, tol, f"shapes differ: torch {reference.shape}, jax {other.shape}")
    if not (np.isfinite(reference).all() and np.isfinite(other).all()):
        side = "torch" if not np.isfinite(reference).all() else "jax"
        detail = f"non-finite values (NaN or Inf) in the {side} result"
        return _failed(name, tol, detail, difference=np.nan)
    diff = np.abs(reference - other)
    max_abs = float(diff.max(initial=0.0))
    significant = np.abs(reference) > tol.atol
    max_rel = float((diff[significant] / np.abs(reference[significant])).max(initial=0.0))
    passed = bool(np.all(diff <= tol.atol + tol.rtol * np.abs(reference)))
    detail = "" if passed else f"max abs {max_abs:.3g}, max rel {max_rel:.3g}"
    return Check(name, passed, max_abs, max_rel, tol.atol, tol.rtol, detail=detail)


def _violation(reference: np.ndarray, other: np.ndarray, tol: Tolerance) -> float:
    """How far past its tolerance the worst element is (> 1 fails)."""
    allowed = tol.atol + tol.rtol * np.abs(reference)
    return float((np.abs(reference - other) / allowed).max(initial=0.0))


def compare_gradients(
    torch_grads: Mapping[str, np.ndarray],
    jax_grads: Mapping[str, np.ndarray],
    tol: Tolerance,
    name: str = "gradients",
) -> Check:
    """Every tensor of two canonical mappings (the parameters' gradients by default); names the
    tensor furthest out of tolerance."""
    missing = sorted(set(torch_grads) ^ set(jax_grads))
    if missing:
        return _failed(name, tol, f"parameters present in one twin only: {', '.join(missing)}")
    checks = {n: compare(n, torch_grads[n], jax_grads[n], tol) for n in torch_grads}
    worst = max(
        checks,
        key=lambda n: (
            not np.isfinite(checks[n].max_abs),
            _violation(torch_grads[n], jax_grads[n], tol),
        ),
    )
    passed = all(c.passed for c in checks.values())
    max_abs = max(c.max_abs for c in checks.values())
    max_rel = max(c.max_rel for c in checks.values())
    detail = "" if passed else f"worst tensor '{worst}': {checks[worst].detail}"
    return Check(
        name,
        passed,
        max_abs,
        max_rel,
        tol.atol,
        tol.rtol,
        detail=detail,
        worst_parameter=worst,
    )


def compare_curves(
    name: str,
    torch_curve: Sequence[float],
    jax_curve: Sequence[float],
    tol: Tolerance,
    *,
    labels: tuple[str, str] = ("torch", "jax"),
) -> Check:
    """Loss curves, with a tolerance that grows with the step; reports the first step outside,
    naming the two curves by ``labels`` (the first is the reference)."""
    reference, other = np.asarray(torch_curve, np.float64), np.asarray(jax_curve, np.float64)
    growth = 1.0 + np.arange(len(reference))
    with np.errstate(invalid="ignore"):
        diff = np.abs(reference - other)
        ok = (
            np.isfinite(reference)
            & np.isfinite(other)
            & (diff <= growth * (tol.atol + tol.rtol * np.abs(reference)))
        )
    bad = np.flatnonzero(~ok)
    first_bad = int(bad[0]) if bad.size else None
    finite = np.isfinite(diff)
    max_abs = float(diff[finite].max(initial=0.0)) if finite.all() else np.nan
    max_rel = float((diff[finite] / np.maximum(np.abs(reference[finite]), 1e-30)).max(initial=0.0))
    detail = ""
    if first_bad is not None:
        detail = (
            f"curves leave tolerance at step {first_bad} "
            f"({labels[0]} {reference[first_bad]:.6g}, {labels[1]} {other[first_bad]:.6g})"
        )
    return Check(
        name,
        first_bad is None,
        max_abs,
        max_rel,
        tol.atol,
        tol.rtol,
        detail=detail,
        first_bad_step=first_bad,
        curves={"torch": list(map(float, torch_curve)), "jax": list(map(float, jax_curve))},
    )


def find_divergence(
    torch_runner: Runner, jax_runner: Runner, batch: Batch, tol: Tolerance
) -> Divergence | None:
    """The first module (in PyTorch's execution order) whose output differs between the twins."""
    torch_acts = torch_runner.activations(batch)
    jax_acts = {name: act.output for name, act in jax_runner.activations(batch).items()}
    previous = None
    for name, (torch_out, torch_in) in torch_acts.items():
        if name not in jax_acts or jax_acts[name].shape != torch_out.shape:
            continue
        if compare(name, torch_out, jax_acts[name], tol).passed:
            previous = name
            continue
        itself = None
        if torch_in is not None:
            try:
                local = jax_runner.apply_layer(name, torch_in)
                itself = not compare(name, torch_out, local, tol).passed
            except Exception:  # a module that cannot run alone on one array: no local verdict
                itself = None
        max_abs = float(np.abs(torch_out - jax_acts[name]).max(initial=0.0))
        return Divergence(name, previous, itself, max_abs)
    return None


def tolerances_for(workload: Workload, size: Size, dtype: str) -> DtypeTolerances:
    """The dtype's tolerances, with the workload's own float32 ones for ``size`` where it states
    them (`WorkloadSpec.tolerances`); every check records the tolerance it was held to."""
    tol = TOLERANCES[dtype]
    own = getattr(workload, "tolerances", {}).get(size.name, {}) if dtype == "float32" else {}
    return replace(tol, **{kind: Tolerance(*bounds) for kind, bounds in own.items()})


def check_workload(
    workload: Workload,
    size: Size,
    *,
    dtype: str = "float32",
    steps: int = 20,
    seed: int = 0,
    device: str = "cpu",
    optimizers: Sequence[str] | None = None,
) -> ParityResult:
    """Run every parity check for one workload at one size; the loss curves for the named
    ``optimizers`` of the workload (default: all of them)."""
    if dtype not in TOLERANCES:
        raise TwinbenchError(f"unknown dtype '{dtype}'; valid: {', '.join(TOLERANCES)}")
    tol = tolerances_for(workload, size, dtype)
    result = ParityResult(workload.name, size.name, dtype, steps)
    try:
        _run_checks(
            result,
            workload,
            size,
            tol,
            steps=steps,
            seed=seed,
            dtype=dtype,
            device=device,
            optimizers=optimizers,
        )
    except TwinbenchError:
        raise
    except Exception as exc:  # a twin (or its data) that raises fails parity; others still run
        result.error = f"{type(exc).__name__}: {exc}"
    return result


def _run_checks(
    result: ParityResult,
    workload: Workload,
    size: Size,
    tol: DtypeTolerances,
    *,
    steps: int,
    seed: int,
    dtype: str,
    device: str,
    optimizers: Sequence[str] | None,
) -> None:
    """Every check of `check_workload`, appended to ``result`` in order."""
    weights = initial_weights(workload, size, seed)
    batches = list(islice(workload.batches(size, seed), max(steps, 1)))
    if len(batches) < max(steps, 1):
        # A curve of fewer steps than asked would pass while the report claims ``steps``.
        raise TwinbenchError(
            f"{workload.name}: its data generator gave {len(batches)} batches; parity needs "
            f"{max(steps, 1)} (one per curve step, --steps); make it yield at least that many"
        )
    runners = [
        make_runner(fw, workload, size, dtype=dtype, device=device) for fw in ("torch", "jax")
    ]
    torch_runner, jax_runner = runners

    def fresh() -> None:
        """Both twins back to the initial weights and statistics, in train mode."""
        for runner in runners:
            runner.load(weights)
            runner.set_mode(True)

    first = batches[0]
    fresh()
    result.checks.append(
        compare("outputs", torch_runner.outputs(first), jax_runner.outputs(first), tol.outputs)
    )
    fresh()
    torch_loss, torch_grads = torch_runner.loss_and_grads(first)
    jax_loss, jax_grads = jax_runner.loss_and_grads(first)
    result.checks.append(compare("loss", np.array(torch_loss), np.array(jax_loss), tol.outputs))
    result.checks.append(compare_gradients(torch_grads, jax_grads, tol.gradients))
    if torch_runner.statistics() or jax_runner.statistics():
        # Running statistics after one training forward pass (BatchNorm's momentum and
        # unbiased-variance conventions), then eval mode, which normalises with them.
        result.checks.append(
            compare_gradients(
                torch_runner.statistics(), jax_runner.statistics(), tol.outputs, "statistics"
            )
        )
        for runner in runners:
            runner.set_mode(False)
        result.checks.append(
            compare(
                "outputs[eval]",
                torch_runner.outputs(batches[-1]),
                jax_runner.outputs(batches[-1]),
                tol.outputs,
            )
        )
    if not all(c.passed for c in result.checks):
        fresh()
        result.divergence = find_divergence(torch_runner, jax_runner, first, tol.outputs)
    for opt_name, config in workload.optimizers.items():
        if optimizers is not None and opt_name not in optimizers:
            continue
        fresh()
        result.checks.append(
            compare_curves(
                f"curve[{opt_name}]",
                torch_runner.train_curve(batches[:steps], config),
                jax_runner.train_curve(batches[:steps], config),
                tol.curve,
            )
        )


def parity(
    workloads: Sequence[str | Workload] | None = None,
    *,
    size: str = "tiny",
    workload_files: Sequence[str] | None = None,
    dtype: str = "float32",
    steps: int = 20,
    seed: int = 0,
    device: str = "cpu",
    isolated: bool = False,
    timeout: float = 900.0,
    threads: int | None = None,
) -> ParityReport:
    """Check that the twins of each workload agree. No workloads named means all built-ins.

    Returns a `ParityReport`; ``report.passed`` is False if any check of any workload failed.
    With ``isolated`` each workload is checked in its own worker process (as ``twinbench run``
    does, with ``threads`` threads): a twin that exits, crashes, hangs past ``timeout`` seconds
    or raises fails that workload's check and the others are still checked; what can be refused
    without running a twin (names, sizes, twins that cannot be imported, a missing framework)
    is a `TwinbenchError` before any worker starts.
    """
    check_arguments(dtype=dtype, steps=steps, seed=seed)
    names = [w for w in workloads or [] if isinstance(w, str)]
    objects = [w for w in workloads or [] if not isinstance(w, str)]
    chosen = objects + (
        resolve(names, list(workload_files or [])) if names or workload_files or not objects else []
    )
    sizes = [w.size(size) for w in chosen]  # validate every size before the slow part
    if isolated:
        in_range("--timeout", timeout, low=0, low_open=True)
        return _parity_in_workers(
            chosen,
            list(workload_files or []),
            {"size": size, "steps": steps, "seed": seed, "dtype": dtype, "device": device},
            timeout=timeout,
            threads=threads,
        )
    return ParityReport(
        [
            check_workload(w, s, dtype=dtype, steps=steps, seed=seed, device=device)
            for w, s in zip(chosen, sizes, strict=True)
        ]
    )


def check_arguments(*, dtype: str, steps: int, seed: int) -> None:
    """Refuse a dtype, step count or seed parity cannot use (the seeds `run` accepts)."""
    one_of("dtype", (dtype,), tuple(TOLERANCES))
    in_range("--steps", steps, low=1, integer=True)
    check_seed(seed)


def _parity_in_workers(
    chosen: Sequence[Workload],
    files: Sequence[str],
    common: dict[str, Any],
    *,
    timeout: float,
    threads: int | None,
) -> ParityReport:
    """`parity` with ``isolated``: each workload's check in a worker process of its own."""
    from pathlib import Path

    from twinbench.harness.environment import usable_cores
    from twinbench.harness.process import CellFailed, one_shot
    from twinbench.registry import from_file

    file_of = {from_file(path).name: str(Path(path).resolve()) for path in files}
    for workload in chosen:
        for framework in FRAMEWORKS:
            workload.twin(framework)  # a missing framework or function: one line, now
    results = []
    for workload in chosen:
        request = {
            "kind": "parity",
            "workload": workload.name,
            "workload_file": file_of.get(workload.name),
            **common,
        }
        try:
            answer = one_shot(request, threads=threads or usable_cores(), timeout=timeout)
            results.append(ParityResult.from_dict(answer))
        except CellFailed as failure:
            error = f"parity check {failure.status}: {failure.error}"
            failed = ParityResult(
                workload.name, common["size"], common["dtype"], common["steps"], error=error
            )
            results.append(failed)
    return ParityReport(results)
