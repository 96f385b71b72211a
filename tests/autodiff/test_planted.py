"""Planted faults: a wrong hand-written gradient fails, NaN is recorded as diverged."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from twinbench.autodiff import checks, jax_side, torch_side
from twinbench.autodiff.functions import QUICK_CHECK_SIZES, make_problem

FIRST_ORDER = ["grad", "vjp", "jacrev", "per_example_grad"]


class _OffResiduals(torch.autograd.Function):
    """Rosenbrock residuals with a hand-written backward that is 0.1 % off."""

    generate_vmap_rule = True  # so torch.func.vmap (jacrev, per-example grads) can batch it

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([10.0 * (x[1:] - x[:-1] ** 2), 1.0 - x[:-1]])

    @staticmethod
    def setup_context(ctx: object, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        ctx.save_for_backward(inputs[0])  # type: ignore[attr-defined]

    @staticmethod
    def backward(ctx: object, upstream: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors  # type: ignore[attr-defined]
        k = x.numel() - 1
        u, v = upstream[:k], upstream[k:]
        zero = torch.zeros_like(x[:1])  # out of place, so vmap can batch it
        grad = torch.cat([zero, 10.0 * u]) + torch.cat([-20.0 * x[:-1] * u - v, zero])
        return grad * 1.001


@jax.custom_vjp
def _off_residuals(x: jax.Array) -> jax.Array:
    return jnp.concatenate([10.0 * (x[1:] - x[:-1] ** 2), 1.0 - x[:-1]])


def _fwd(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return _off_residuals(x), x


def _bwd(x: jax.Array, upstream: jax.Array) -> tuple[jax.Array]:
    k = x.size - 1
    u, v = upstream[:k], upstream[k:]
    grad = jnp.zeros_like(x).at[1:].add(10.0 * u).at[:-1].add(-20.0 * x[:-1] * u - v)
    return (grad * 1.001,)


_off_residuals.defvjp(_fwd, _bwd)


def _judge(monkeypatch: pytest.MonkeyPatch, side: object, fn: object) -> dict[tuple, object]:
    problem = make_problem("rosenbrock", QUICK_CHECK_SIZES)
    evs = checks.evaluate(torch_side, [problem], FIRST_ORDER) + checks.evaluate(
        jax_side, [problem], FIRST_ORDER
    )
    monkeypatch.setattr(side, "rosenbrock_residuals", fn)
    planted = checks.evaluate(side, [problem], FIRST_ORDER)  # type: ignore[arg-type]
    framework = planted[0].framework
    evs = [e for e in evs if e.framework != framework] + planted
    return {(r.transform, r.framework): r for r in checks.judge(evs)}


@pytest.mark.parametrize(
    ("side", "fn"),
    [(torch_side, _OffResiduals.apply), (jax_side, _off_residuals)],
    ids=["torch", "jax"],
)
def test_wrong_hand_written_gradient_fails(
    monkeypatch: pytest.MonkeyPatch, side: object, fn: object
) -> None:
    results = _judge(monkeypatch, side, fn)
    planted, other = side.NAME, "jax" if side.NAME == "torch" else "torch"  # type: ignore[attr-defined]
    for transform in FIRST_ORDER:
        bad = results[(transform, planted)]
        assert bad.status == "fail", transform
        assert bad.rel_err_fd is not None and bad.rel_err_fd > checks.TOL_FD_FIRST
        assert "finite differences" in bad.detail
        good = results[(transform, other)]  # the healthy twin keeps its pass on FD alone
        assert good.status == "pass" and good.rel_err_other is None


def test_frameworks_that_disagree_both_fail() -> None:
    ref = np.array([1.0, 2.0])
    evs = [
        checks.Evaluation("torch", "f", "grad", ref * (1 + 1e-8), ref),
        checks.Evaluation("jax", "f", "grad", ref * (1 - 1e-8), ref),
    ]
    results = checks.judge(evs)
    assert {r.status for r in results} == {"fail"}
    assert all("differs from" in r.detail for r in results)


def test_nan_result_is_diverged_not_pass() -> None:
    ref = np.array([1.0, 2.0])
    ev = checks.Evaluation("torch", "f", "grad", np.array([np.nan, 2.0]), ref)
    (result,) = checks.judge([ev])
    assert result.status == "nan" and not result.passed


def test_nan_from_a_framework_is_recorded_as_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jax_side, "rosenbrock_residuals", lambda x: jnp.sqrt(x - 10.0))
    problem = make_problem("rosenbrock", QUICK_CHECK_SIZES)
    (result,) = checks.judge(checks.evaluate(jax_side, [problem], ["grad"]))
    assert result.status == "nan"
    assert not result.passed
