"""The second-order test problems, framework-neutral: data, start point and reference minimiser.

Everything here is NumPy (and SciPy for references), so it doubles as an independent check of
both frameworks: the final objective and gradient norm of every result are evaluated here, in
float64, not by the framework that produced the minimiser.

=============  ===========================================================  =====================
problem        objective f(w)                                               reference minimiser
=============  ===========================================================  =====================
``linreg``     ½·mean((Xw − y)²), X ~ N(0, 1) of shape (4·d + 16, d)        closed form,
                                                                            ``numpy.linalg.lstsq``
``logreg``     mean(softplus(−y·Xw)) + ½·λ‖w‖², y = ±1 from a noisy plane,  SciPy ``trust-exact``
               λ = 1e-2 so that the minimum is finite on separable data     (NumPy derivatives)
``rosenbrock`` Σ 100(x[i+1] − x[i]²)² + (1 − x[i])², start (−1.2, 1, …)     all ones (known)
=============  ===========================================================  =====================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.optimize

from twinbench.errors import TwinbenchError
from twinbench.validation import one_of, positive

PROBLEMS = ("linreg", "logreg", "rosenbrock")
DEFAULT_DIMS = {"linreg": 50, "logreg": 20, "rosenbrock": 10}
QUICK_DIMS = {"linreg": 8, "logreg": 5, "rosenbrock": 4}
MIN_DIMS = {"linreg": 1, "logreg": 1, "rosenbrock": 2}  # Rosenbrock couples neighbours
LOGREG_L2 = 1e-2


@dataclass(frozen=True)
class Problem:
    """One unconstrained minimisation problem in float64, the same for both frameworks."""

    name: str
    dim: int
    x0: np.ndarray  # (dim,)
    data: dict[str, np.ndarray] = field(default_factory=dict)
    reference: np.ndarray | None = None  # (dim,) the minimiser, computed independently
    reference_kind: str = "none"

    def value(self, w: np.ndarray) -> float:
        """The objective, in NumPy float64."""
        return float(_NUMPY[self.name][0](w, self.data))

    def grad(self, w: np.ndarray) -> np.ndarray:
        """The objective's gradient, in NumPy float64 (derived by hand, not by autodiff)."""
        return np.asarray(_NUMPY[self.name][1](w, self.data), dtype=np.float64)


def validate_problem(name: str, dim: int | None = None) -> None:
    """One-line TwinbenchError for an unknown problem or a dimension it cannot have."""
    one_of("problem", [name], PROBLEMS)
    if dim is not None:
        positive("dimension", dim, integer=True)
    if dim is not None and dim < MIN_DIMS[name]:
        raise TwinbenchError(f"problem '{name}' needs dimension >= {MIN_DIMS[name]}, got {dim}")


def make_problem(name: str, dim: int, seed: int = 0) -> Problem:
    """Build problem ``name`` in ``dim`` unknowns from ``seed`` (deterministic)."""
    validate_problem(name, dim)
    rng = np.random.default_rng(seed)
    if name == "linreg":
        n = 4 * dim + 16
        x = rng.standard_normal((n, dim))
        y = x @ rng.standard_normal(dim) + 0.1 * rng.standard_normal(n)
        solution = np.linalg.lstsq(x, y, rcond=None)[0]
        return Problem(name, dim, np.zeros(dim), {"x": x, "y": y}, solution, "numpy lstsq")
    if name == "logreg":
        n = 20 * dim + 50
        x = rng.standard_normal((n, dim))
        margin = x @ (3.0 * rng.standard_normal(dim)) + 0.5 * rng.standard_normal(n)
        y = np.where(margin > 0, 1.0, -1.0)
        data = {"x": x, "y": y, "l2": np.array(LOGREG_L2)}
        problem = Problem(name, dim, np.zeros(dim), data)
        hess = _logreg_hess
        ref = scipy.optimize.minimize(
            problem.value,
            problem.x0,
            jac=problem.grad,
            hess=lambda w: hess(w, data),
            method="trust-exact",
            options={"gtol": 1e-12, "maxiter": 1000},
        )
        return Problem(name, dim, np.zeros(dim), data, np.asarray(ref.x), "scipy trust-exact")
    x0 = np.where(np.arange(dim) % 2 == 0, -1.2, 1.0)
    return Problem(name, dim, x0, {}, np.ones(dim), "known minimum")


def _softplus(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.logaddexp(0.0, z)
    return out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.exp(-_softplus(-z))
    return out


def _linreg_value(w: np.ndarray, d: dict[str, np.ndarray]) -> float:
    r = d["x"] @ w - d["y"]
    return 0.5 * float(np.mean(r**2))


def _linreg_grad(w: np.ndarray, d: dict[str, np.ndarray]) -> np.ndarray:
    grad: np.ndarray = d["x"].T @ (d["x"] @ w - d["y"]) / len(d["y"])
    return grad


def _logreg_value(w: np.ndarray, d: dict[str, np.ndarray]) -> float:
    z = d["y"] * (d["x"] @ w)
    return float(np.mean(_softplus(-z)) + 0.5 * d["l2"] * (w @ w))


def _logreg_grad(w: np.ndarray, d: dict[str, np.ndarray]) -> np.ndarray:
    z = d["y"] * (d["x"] @ w)
    grad: np.ndarray = -(d["x"].T @ (d["y"] * _sigmoid(-z))) / len(z) + d["l2"] * w
    return grad


def _logreg_hess(w: np.ndarray, d: dict[str, np.ndarray]) -> np.ndarray:
    s = _sigmoid(d["x"] @ w)
    weights = s * (1.0 - s)
    hess: np.ndarray = (d["x"].T * weights) @ d["x"] / len(s) + d["l2"] * np.eye(len(w))
    return hess


_NUMPY: dict[str, tuple[Callable[..., float], Callable[..., np.ndarray]]] = {
    "linreg": (_linreg_value, _linreg_grad),
    "logreg": (_logreg_value, _logreg_grad),
    "rosenbrock": (
        lambda w, _d: scipy.optimize.rosen(w),
        lambda w, _d: scipy.optimize.rosen_der(w),
    ),
}
