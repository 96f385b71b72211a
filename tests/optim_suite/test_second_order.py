"""Newton, BFGS and L-BFGS in both frameworks against independent references (NumPy, SciPy)."""

from __future__ import annotations

import numpy as np
import pytest

from twinbench.optim_suite import (
    OptimSettings,
    make_problem,
    run_optim,
    solve_second_order,
    torch_methods,
)

pytest.importorskip("torch")
pytest.importorskip("jax")

FRAMEWORKS = ("torch", "jax")


def solve(problem, method, framework, **kwargs):
    return solve_second_order(problem, method, framework, repeats=1, **kwargs)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_newton_solves_least_squares_in_one_step(framework):
    problem = make_problem("linreg", 12, seed=3)
    x, y = problem.data["x"], problem.data["y"]
    lstsq = np.linalg.lstsq(x, y, rcond=None)[0]  # independent of the suite's own reference
    result = solve(problem, "newton", framework, gtol=1e-9)
    assert result.status == "converged"
    assert result.iterations == 1
    np.testing.assert_allclose(result.x, lstsq, rtol=0, atol=1e-10)


@pytest.mark.parametrize("method", ["newton", "bfgs", "lbfgs"])
def test_rosenbrock_minimum_reached_and_frameworks_agree(method):
    problem = make_problem("rosenbrock", 4)
    # jax's BFGS here: test_jax_scipy_bfgs_rosenbrock_line_search below
    frameworks = ("torch",) if method == "bfgs" else FRAMEWORKS
    results = {fw: solve(problem, method, fw, gtol=1e-7) for fw in frameworks}
    for result in results.values():
        assert result.status == "converged", result.note
        np.testing.assert_allclose(result.x, np.ones(4), atol=1e-5)
    if len(results) == 2:
        np.testing.assert_allclose(results["torch"].x, results["jax"].x, atol=1e-5)


@pytest.mark.xfail(
    strict=True,
    reason="jax.scipy.optimize BFGS's zoom line search reports failure (status 3) on Rosenbrock "
    "from the standard start; known upstream (jax-ml/jax PR #40228, signed bracket width)",
)
def test_jax_scipy_bfgs_rosenbrock_line_search():
    result = solve(make_problem("rosenbrock", 4), "bfgs", "jax", gtol=1e-7)
    assert result.status == "converged", result.note


def test_newton_iterates_identically_in_both_frameworks():
    problem = make_problem("rosenbrock", 6)
    torch_result, jax_result = (solve(problem, "newton", fw) for fw in FRAMEWORKS)
    assert torch_result.iterations == jax_result.iterations
    assert torch_result.function_evals == jax_result.function_evals


@pytest.mark.parametrize("method", ["newton", "bfgs", "lbfgs"])
def test_logistic_regression_minimisers_agree(method):
    problem = make_problem("logreg", 5, seed=1)
    gtol = 1e-9
    torch_result, jax_result = (solve(problem, method, fw, gtol=gtol) for fw in FRAMEWORKS)
    for result in (torch_result, jax_result):
        assert result.status == "converged", result.note
        assert result.grad_norm < 1e-8  # evaluated in NumPy, not by the framework
        # SciPy trust-exact reference, an independent solver
        np.testing.assert_allclose(result.x, problem.reference, atol=1e-6)
    np.testing.assert_allclose(torch_result.x, jax_result.x, atol=1e-6)


def test_suite_reports_pair_distances_and_implementations():
    report = run_optim(
        OptimSettings(
            first_order=False, quick=True, problems=("linreg",), methods=("newton", "bfgs")
        )
    )
    newton = report.result("linreg", "newton", "torch")
    assert newton.distance_other is not None and newton.distance_other < 1e-10
    assert newton.distance_reference is not None and newton.distance_reference < 1e-10
    assert newton.wall_ci_low_s <= newton.wall_s <= newton.wall_ci_high_s  # type: ignore[operator]
    assert newton.wall_block is not None and len(newton.wall_samples) == 1  # quick: one sample
    assert "PyTorch ships no BFGS" in report.result("linreg", "bfgs", "torch").implementation
    assert report.to_dict()["second_order"][0]["problem"] == "linreg"


@pytest.mark.parametrize("method", ["newton", "bfgs", "lbfgs"])
def test_nan_objective_is_recorded_as_diverged(monkeypatch, method):
    monkeypatch.setitem(
        torch_methods.OBJECTIVES, "rosenbrock", lambda w, _d: (w * w).sum() * float("nan")
    )
    result = solve(make_problem("rosenbrock", 3), method, "torch", max_iter=20)
    assert result.status == "diverged"
    assert result.final_objective is None and result.x is None
