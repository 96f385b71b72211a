"""Correctness: every transformation against finite differences and against the other framework.

All checks run in float64. Two independent references back each result:

1. **Central finite differences** of the framework's own *forward* function (no derivative of it
   is taken), with step ``h = ε^(1/3) · max(1, |x|∞) ≈ 6e-6``. For first-order results
   (grad, jvp, vjp, jacobians, per-example gradients, checkpointed gradients) the reference is
   the difference quotient of the function; its error is ``O(h²) + O(ε/h) ≈ 1e-10`` relative,
   so ``TOL_FD_FIRST = 1e-6`` leaves four orders of margin for curvature while any real
   mistake (a wrong sign, factor or missing term) is ≥ 1e-3. Second-order results (hessian,
   hvp) are checked against central differences of the gradient (as ``torch.autograd.
   gradgradcheck`` does), whose error is one order worse once the gradient's own rounding is
   divided by ``h``: ``TOL_FD_SECOND = 1e-5``.
2. **The other framework's result**, computed from the same float64 data. Both are exact up to
   rounding (≈1e-16) plus a different order of summation, so ``TOL_CROSS = 1e-9``; the
   difference is only required where the other framework itself agrees with its finite
   differences (otherwise one wrong twin would fail both).

Errors are *relative*: ``max|a - b| / max|b|`` over all entries (the ∞-norm of the difference
relative to the reference's ∞-norm), which does not blow up on entries that happen to be zero.
A result with a NaN or infinity is ``nan`` (diverged), never a pass; a transformation the
framework refuses to compute is ``error`` with the framework's message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from types import ModuleType
from typing import Any

import numpy as np

from twinbench.autodiff.functions import SECOND_ORDER, Problem

TOL_FD_FIRST = 1e-6
TOL_FD_SECOND = 1e-5
TOL_CROSS = 1e-9
STATUSES = ("pass", "fail", "nan", "error")
_EPS_CBRT: float = float(np.finfo(np.float64).eps) ** (1.0 / 3.0)


@dataclass(frozen=True)
class Evaluation:
    """One framework's float64 result for one (function, transformation), with its reference."""

    framework: str
    function: str
    transform: str
    value: np.ndarray | None  # None when the framework raised
    reference: np.ndarray | None  # finite differences of the same framework's forward pass
    error: str | None = None
    kind: str = ""  # "native" or "composed": how the framework's idiom obtains it (side.HOW)
    api: str = ""

    def to_dict(self) -> dict[str, Any]:
        def listed(a: np.ndarray | None) -> Any:
            return None if a is None else a.tolist()

        return {**asdict(self), "value": listed(self.value), "reference": listed(self.reference)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evaluation:
        def array(a: Any) -> np.ndarray | None:
            return None if a is None else np.asarray(a, dtype=np.float64)

        return cls(
            data["framework"],
            data["function"],
            data["transform"],
            array(data["value"]),
            array(data["reference"]),
            data["error"],
            data.get("kind", ""),
            data.get("api", ""),
        )


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one framework's (function, transformation)."""

    function: str
    transform: str
    framework: str
    status: str  # one of STATUSES
    rel_err_fd: float | None
    rel_err_other: float | None  # None when the other framework has no trustworthy result
    tol_fd: float
    tol_cross: float
    detail: str = ""
    kind: str = ""  # "native" or "composed" (from the framework side's HOW table)
    api: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def relative_error(value: np.ndarray, reference: np.ndarray) -> float:
    """``max|value - reference| / max|reference|`` (inf on a shape mismatch)."""
    if value.shape != reference.shape:
        return float("inf")
    scale = float(np.max(np.abs(reference), initial=0.0))
    diff = float(np.max(np.abs(value - reference), initial=0.0))
    if scale == 0.0:
        return 0.0 if diff == 0.0 else float("inf")
    return diff / scale


# ---- finite differences -------------------------------------------------------------------------


def _step(x: np.ndarray) -> float:
    return _EPS_CBRT * max(1.0, float(np.max(np.abs(x))))


def fd_directional(f: Callable[[np.ndarray], Any], x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(f(x + h v) - f(x - h v)) / 2h with h scaled to x and v."""
    h = _step(x) / max(1.0, float(np.max(np.abs(v))))
    forward = np.asarray(f(x + h * v), dtype=np.float64)
    backward = np.asarray(f(x - h * v), dtype=np.float64)
    return (forward - backward) / (2.0 * h)


def fd_jacobian(f: Callable[[np.ndarray], Any], x: np.ndarray) -> np.ndarray:
    """Central-difference Jacobian, shape ``f(x).shape + x.shape`` (a gradient for scalar f)."""
    columns = [fd_directional(f, x, e) for e in np.eye(x.size)]
    return np.moveaxis(np.asarray(columns, dtype=np.float64), 0, -1)


def _of_example(example: Callable[[np.ndarray, int], float], x: np.ndarray, *, i: int) -> float:
    return example(x, i)


class References:
    """Finite-difference references of one framework's forward functions, computed lazily once."""

    def __init__(self, problem: Problem, evaluators: dict[str, Callable[..., Any]]) -> None:
        self.problem = problem
        self.f = evaluators
        self._cache: dict[str, np.ndarray] = {}

    def _get(self, key: str, make: Callable[[], np.ndarray]) -> np.ndarray:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def jacobian(self) -> np.ndarray:
        return self._get("jacobian", lambda: fd_jacobian(self.f["vector"], self.problem.x))

    def gradient(self) -> np.ndarray:
        return self._get("gradient", lambda: fd_jacobian(self.f["scalar"], self.problem.x))

    def per_example(self) -> np.ndarray:
        def make() -> np.ndarray:
            example = self.f["example"]
            rows = [
                fd_jacobian(partial(_of_example, example, i=i), self.problem.x)
                for i in range(self.problem.batch)
            ]
            return np.asarray(rows, dtype=np.float64)

        return self._get("per_example", make)

    def for_transform(self, transform: str) -> np.ndarray:
        p = self.problem
        if transform == "grad":
            return np.concatenate([[self.f["scalar"](p.x)], self.gradient()])
        if transform == "jvp":
            return fd_directional(self.f["vector"], p.x, p.tangent)
        if transform == "vjp":
            return np.asarray(p.cotangent @ self.jacobian(), dtype=np.float64)
        if transform in ("jacfwd", "jacrev"):
            return self.jacobian()
        if transform == "hessian":
            return self._get("hessian", lambda: fd_jacobian(self.f["grad"], p.x))
        if transform == "hvp":
            return fd_directional(self.f["grad"], p.x, p.tangent)
        if transform in ("per_example_grad", "per_example_checkpoint"):
            return self.per_example()
        if transform == "checkpoint":
            return self.gradient()
        raise KeyError(transform)


# ---- running and judging ------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def evaluate(
    side: ModuleType, problems: Iterable[Problem], transforms: Sequence[str]
) -> list[Evaluation]:
    """Every (problem, transform) with one framework's ``side`` module, in float64."""
    results: list[Evaluation] = []
    with side.float64():
        for problem in problems:
            model = side.build(problem, "float64")
            refs = References(problem, side.evaluators(model))
            for transform in transforms:
                try:
                    fn, args = side.transform(model, transform)
                    value: np.ndarray | None = side.to_numpy(fn(*args))
                    error = None
                except Exception as exc:  # a refused transformation is a finding, not a crash
                    value, error = None, _one_line(exc)
                reference = refs.for_transform(transform)
                kind, api = side.HOW[transform]
                results.append(
                    Evaluation(
                        side.NAME, problem.name, transform, value, reference, error, kind, api
                    )
                )
    return results


def tol_fd(transform: str) -> float:
    return TOL_FD_SECOND if transform in SECOND_ORDER else TOL_FD_FIRST


def _fd_status(ev: Evaluation) -> tuple[str, float | None, str]:
    if ev.value is None:
        return "error", None, ev.error or "no result"
    if ev.reference is None or not np.all(np.isfinite(ev.reference)):
        return "nan", None, "finite-difference reference is not finite"
    if not np.all(np.isfinite(ev.value)):
        return "nan", None, "result contains NaN or infinity (diverged)"
    err = relative_error(ev.value, ev.reference)
    tol = tol_fd(ev.transform)
    if err > tol:
        return "fail", err, f"differs from finite differences: {err:.2e} > {tol:.0e}"
    return "pass", err, ""


def judge(evaluations: Iterable[Evaluation]) -> list[CheckResult]:
    """Check results from both frameworks' evaluations (one framework alone: FD only)."""
    evaluations = list(evaluations)
    by_key = {(e.function, e.transform, e.framework): e for e in evaluations}
    fd = {key: _fd_status(e) for key, e in by_key.items()}
    results: list[CheckResult] = []
    for (function, transform, framework), ev in by_key.items():
        status, err_fd, detail = fd[(function, transform, framework)]
        others = [k for k in by_key if k[:2] == (function, transform) and k[2] != framework]
        err_other = None
        for other in others:
            if fd[other][0] != "pass" or ev.value is None:
                continue  # no trustworthy second opinion; FD alone decides
            other_value = by_key[other].value
            assert other_value is not None
            err_other = relative_error(ev.value, other_value)
            if status == "pass" and not err_other <= TOL_CROSS:
                status = "fail"
                detail = f"differs from {other[2]}: {err_other:.2e} > {TOL_CROSS:.0e}"
        results.append(
            CheckResult(
                function,
                transform,
                framework,
                status,
                err_fd,
                err_other,
                tol_fd(transform),
                TOL_CROSS,
                detail,
                ev.kind,
                ev.api,
            )
        )
    return results
