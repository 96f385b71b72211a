"""Every transformation in both frameworks, against finite differences and against each other."""

from __future__ import annotations

import numpy as np
import pytest

from twinbench.autodiff import checks, jax_side, torch_side
from twinbench.autodiff.functions import FUNCTIONS, QUICK_CHECK_SIZES, TRANSFORMS, make_problem

# torch.func refuses torch.utils.checkpoint's saved-tensor hooks: a finding, not a bug.
REFUSED = {("per_example_checkpoint", "torch")}


@pytest.fixture(scope="module")
def evaluations() -> list[checks.Evaluation]:
    problems = [make_problem(name, QUICK_CHECK_SIZES) for name in FUNCTIONS]
    return checks.evaluate(torch_side, problems, TRANSFORMS) + checks.evaluate(
        jax_side, problems, TRANSFORMS
    )


@pytest.fixture(scope="module")
def results(evaluations: list[checks.Evaluation]) -> dict[tuple[str, str, str], checks.CheckResult]:
    return {(r.function, r.transform, r.framework): r for r in checks.judge(evaluations)}


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_transform_matches_fd_and_other_framework(
    results: dict[tuple[str, str, str], checks.CheckResult],
    function: str,
    transform: str,
    framework: str,
) -> None:
    result = results[(function, transform, framework)]
    if (transform, framework) in REFUSED:
        assert result.status == "error"
        assert "saved tensor hooks" in result.detail
        return
    assert result.status == "pass", result.detail
    assert result.rel_err_fd is not None and result.rel_err_fd <= result.tol_fd
    other = "jax" if framework == "torch" else "torch"
    if (transform, other) not in REFUSED:  # two independent computations agree
        assert result.rel_err_other is not None and result.rel_err_other <= checks.TOL_CROSS


def test_shapes_follow_the_problem(evaluations: list[checks.Evaluation]) -> None:
    p = make_problem("mlp", QUICK_CHECK_SIZES)
    shapes = {
        "grad": (p.n + 1,),
        "jvp": (p.m,),
        "vjp": (p.n,),
        "jacfwd": (p.m, p.n),
        "hessian": (p.n, p.n),
        "per_example_grad": (p.batch, p.n),
    }
    for ev in evaluations:
        if ev.function == "mlp" and ev.transform in shapes:
            assert ev.value is not None and ev.value.shape == shapes[ev.transform]


def test_relative_error_is_normwise() -> None:
    ref = np.array([1.0, 0.0, -2.0])
    assert checks.relative_error(ref + np.array([0.0, 1e-3, 0.0]), ref) == pytest.approx(5e-4)
    assert checks.relative_error(np.zeros(2), np.zeros(3)) == float("inf")
    assert checks.relative_error(np.zeros(3), np.zeros(3)) == 0.0


def test_fd_jacobian_of_a_known_function() -> None:
    x = np.array([0.3, -1.2])
    jac = checks.fd_jacobian(lambda v: np.array([v[0] * v[1], np.sin(v[0])]), x)
    expected = np.array([[x[1], x[0]], [np.cos(x[0]), 0.0]])
    assert checks.relative_error(jac, expected) < 1e-9
