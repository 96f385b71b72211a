"""Parity: the built-in twins agree, and the checker catches real porting slips and says where."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import optax
import pytest

from twinbench import OptimizerConfig, builtin, from_file
from twinbench.backends import initial_weights, jax_backend, make_runner
from twinbench.backends.jax_backend import JaxRunner
from twinbench.backends.torch_backend import TorchRunner
from twinbench.parity import (
    TOLERANCES,
    Check,
    ParityResult,
    Tolerance,
    check_workload,
    compare,
    compare_curves,
    compare_gradients,
)
from twinbench.registry import EXAMPLES

CHECKS = ["outputs", "loss", "gradients", "curve[sgd]", "curve[adam]"]
STEPS = 5  # enough optimizer steps for the planted faults; the built-ins run the default 20


def checks_of(result: ParityResult) -> dict[str, Check]:
    return {check.name: check for check in result.checks}


def run(workload_file: Path, *, curves: bool = False) -> ParityResult:
    """Parity at size tiny; without loss curves (the slow part) unless asked for."""
    workload = from_file(workload_file)
    if not curves:
        workload = dataclasses.replace(workload, optimizers={})
    return check_workload(workload, workload.size("tiny"), steps=STEPS)


def without_curves(name: str) -> Any:
    return dataclasses.replace(builtin(name), optimizers={})


@pytest.fixture(scope="module", params=EXAMPLES)  # the zoo: tests/workloads
def builtin_result(request: pytest.FixtureRequest) -> ParityResult:
    workload = builtin(request.param)
    return check_workload(workload, workload.size("tiny"))


@pytest.fixture(scope="module")
def ln_gelu_result() -> ParityResult:
    workload = from_file(Path(__file__).parent / "fixtures" / "ln_gelu" / "workload.py")
    return check_workload(workload, workload.size("tiny"), steps=STEPS)


# --- the twins agree ---------------------------------------------------------------------------


def test_builtin_workload_passes_every_check(builtin_result: ParityResult) -> None:
    assert builtin_result.error is None
    assert [c.name for c in builtin_result.checks] == CHECKS
    assert builtin_result.passed, builtin_result.failures()
    assert builtin_result.divergence is None


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_builtin_curves_are_real_training_runs(builtin_result: ParityResult,
                                               optimizer: str) -> None:
    """The curves agree because both twins train, not because neither moves: without updates,
    the loss on the same batches would be different by the last step."""
    check = checks_of(builtin_result)[f"curve[{optimizer}]"]
    assert check.curves is not None
    workload = builtin(builtin_result.workload)
    size = workload.size(builtin_result.size)
    batches = list(islice(workload.batches(size, 0), builtin_result.steps))
    frozen = make_runner("torch", workload, size)
    frozen.load(initial_weights(workload, size))
    untrained = [frozen.loss_and_grads(batch)[0] for batch in batches]
    for framework in ("torch", "jax"):
        curve = check.curves[framework]
        assert len(curve) == builtin_result.steps == 20
        assert curve[0] == pytest.approx(untrained[0], rel=1e-5)  # the same start...
        assert abs(curve[-1] - untrained[-1]) > 1e-4  # ...and then the optimizer moved it


def test_ln_gelu_fixture_passes(ln_gelu_result: ParityResult) -> None:
    assert [c.name for c in ln_gelu_result.checks] == CHECKS
    assert ln_gelu_result.passed, ln_gelu_result.failures()


def test_a_jax_twin_with_state_besides_its_weights_is_built_eagerly(
    ln_gelu_variant: Callable[..., Path],
) -> None:
    """An RNG stream kept by the model has no canonical values to load, so the JAX runner falls
    back to the twin's own (eager) init instead of an abstract build."""
    fc2 = "self.fc2 = nnx.Linear(d, 1, rngs=rngs)"
    path = ln_gelu_variant("jax", fc2, f"{fc2}\n        self.rngs = rngs")
    result = run(path)
    assert result.passed, result.failures()


# --- planted faults: the checker fails, and names the place ------------------------------------


def test_transposed_kernel_fails_at_that_layer(monkeypatch: pytest.MonkeyPatch,
                                               ln_gelu_file: Path) -> None:
    original = jax_backend.load_canonical

    def load_transposed(model: Any, weights: dict[str, np.ndarray]) -> None:
        weights = dict(weights)
        # fc1 is square (d -> d), so the transposed kernel still fits: only the numbers are wrong
        weights["fc1.kernel"] = np.ascontiguousarray(weights["fc1.kernel"].T)
        original(model, weights)

    monkeypatch.setattr(jax_backend, "load_canonical", load_transposed)
    result = run(ln_gelu_file)
    checks = checks_of(result)
    assert not result.passed
    assert not checks["outputs"].passed
    assert result.divergence is not None
    assert result.divergence.layer == "fc1"
    assert result.divergence.layer_itself is True
    assert result.divergence.previous == "ln"
    assert "'fc1'" in result.divergence.describe()

    gradients = checks["gradients"]
    assert not gradients.passed
    names = set(initial_weights(from_file(ln_gelu_file), from_file(ln_gelu_file).size("tiny")))
    assert gradients.worst_parameter in names
    assert f"'{gradients.worst_parameter}'" in gradients.detail

    monkeypatch.undo()
    assert run(ln_gelu_file).passed


def test_gelu_tanh_instead_of_erf_is_placed_between_modules(
        ln_gelu_variant: Callable[..., Path], ln_gelu_result: ParityResult) -> None:
    result = run(ln_gelu_variant("jax", "approximate=False", "approximate=True"))
    assert not result.passed
    assert not checks_of(result)["outputs"].passed
    divergence = result.divergence
    assert divergence is not None
    # fc1 still agrees; fc2 gets a different input because GELU, not a module, sits in between
    assert divergence.layer == "fc2"
    assert divergence.layer_itself is False
    assert divergence.previous == "fc1"
    assert "not a module" in divergence.describe()
    assert ln_gelu_result.passed  # the erf twins, unchanged, agree


def test_layernorm_eps_slip_fails_at_the_layernorm(
        ln_gelu_variant: Callable[..., Path], ln_gelu_result: ParityResult) -> None:
    result = run(ln_gelu_variant("jax", "epsilon=1e-5", "epsilon=1e-6"))
    assert not result.passed
    assert not checks_of(result)["outputs"].passed
    assert result.divergence is not None
    assert result.divergence.layer == "ln"
    assert result.divergence.layer_itself is True
    assert result.divergence.previous is None
    assert ln_gelu_result.passed


def _with_adam_weight_decay(workload_file: Path) -> Any:
    workload = from_file(workload_file)
    adam = OptimizerConfig("adam", lr=0.01, weight_decay=0.1)
    return dataclasses.replace(workload, optimizers={"adam": adam})


def test_adam_weight_decay_is_l2_like_torch(ln_gelu_file: Path) -> None:
    workload = _with_adam_weight_decay(ln_gelu_file)
    result = check_workload(workload, workload.size("tiny"), steps=STEPS)
    assert [c.name for c in result.checks] == ["outputs", "loss", "gradients", "curve[adam]"]
    assert result.passed, result.failures()


def test_decoupled_weight_decay_fails_the_adam_curve(monkeypatch: pytest.MonkeyPatch,
                                                     ln_gelu_file: Path) -> None:
    original = jax_backend.make_tx

    def decoupled(config: OptimizerConfig) -> optax.GradientTransformation:
        if config.name != "adam":
            return original(config)
        return optax.adamw(config.lr, b1=config.betas[0], b2=config.betas[1], eps=config.eps,
                           eps_root=0.0, weight_decay=config.weight_decay)

    monkeypatch.setattr(jax_backend, "make_tx", decoupled)
    workload = _with_adam_weight_decay(ln_gelu_file)
    result = check_workload(workload, workload.size("tiny"), steps=STEPS)
    checks = checks_of(result)
    assert checks["outputs"].passed and checks["loss"].passed and checks["gradients"].passed
    curve = checks["curve[adam]"]
    assert not curve.passed
    assert curve.first_bad_step is not None
    assert curve.first_bad_step >= 1  # step 0's loss comes before any update
    assert f"step {curve.first_bad_step}" in curve.detail
    assert not result.passed


def test_nan_in_one_twin_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    original = JaxRunner.outputs

    def with_nan(self: JaxRunner, batch: dict[str, np.ndarray]) -> np.ndarray:
        out = original(self, batch).copy()
        out.flat[1] = np.nan
        return out

    monkeypatch.setattr(JaxRunner, "outputs", with_nan)
    workload = without_curves("xor")
    result = check_workload(workload, workload.size("tiny"), steps=STEPS)
    outputs = checks_of(result)["outputs"]
    assert not outputs.passed
    assert "non-finite" in outputs.detail and "jax" in outputs.detail
    assert not result.passed


def test_nan_in_both_twins_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def all_nan(self: Any, batch: dict[str, np.ndarray]) -> np.ndarray:
        return np.full((len(batch["x"]), 1), np.nan, dtype=np.float32)

    monkeypatch.setattr(TorchRunner, "outputs", all_nan)
    monkeypatch.setattr(JaxRunner, "outputs", all_nan)
    workload = without_curves("xor")
    result = check_workload(workload, workload.size("tiny"), steps=STEPS)
    assert not checks_of(result)["outputs"].passed  # equal NaNs are no agreement
    assert not result.passed


def test_nan_in_a_loss_curve_fails_at_that_step(monkeypatch: pytest.MonkeyPatch) -> None:
    original = JaxRunner.train_curve

    def nan_at_step_3(self: JaxRunner, batches: list[Any], config: OptimizerConfig) -> list[float]:
        curve = original(self, batches, config)
        curve[3] = float("nan")
        return curve

    monkeypatch.setattr(JaxRunner, "train_curve", nan_at_step_3)
    workload = builtin("xor")
    result = check_workload(workload, workload.size("tiny"), steps=STEPS)
    for optimizer in ("sgd", "adam"):
        curve = checks_of(result)[f"curve[{optimizer}]"]
        assert not curve.passed
        assert curve.first_bad_step == 3
    assert not result.passed


def test_a_twin_that_raises_fails_with_its_error(ln_gelu_variant: Callable[..., Path]) -> None:
    broken = ln_gelu_variant("jax", "def forward(model: LnGelu, batch: dict[str, jax.Array]) "
                             "-> jax.Array:\n    return model(batch[\"x\"])",
                             "def forward(model: LnGelu, batch: dict[str, jax.Array]) "
                             "-> jax.Array:\n    raise RuntimeError(\"planted\")")
    result = run(broken)
    assert not result.passed
    assert result.error is not None and "planted" in result.error
    assert result.failures() == [result.error]


# --- the comparison functions on constructed arrays --------------------------------------------

TOL = Tolerance(atol=1e-5, rtol=1e-5)


def test_compare_uses_atol_plus_rtol_times_reference() -> None:
    reference = np.array([0.0, 1.0, 100.0])
    allowed = TOL.atol + TOL.rtol * np.abs(reference)  # 1e-5, 2e-5, 1.01e-3
    inside = compare("x", reference, reference + 0.9 * allowed, TOL)
    outside = compare("x", reference, reference + np.array([0.0, 0.0, 1.1]) * allowed, TOL)
    assert inside.passed
    assert not outside.passed
    assert outside.max_abs == pytest.approx(1.1 * allowed[2])
    assert outside.max_rel == pytest.approx(1.1 * allowed[2] / 100.0)
    assert compare("x", reference, reference, TOL).max_abs == 0.0


def test_compare_fails_on_shape_mismatch() -> None:
    check = compare("outputs", np.zeros((4, 1)), np.zeros((4,)), TOL)
    assert not check.passed
    assert "(4, 1)" in check.detail and "(4,)" in check.detail


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", ["torch", "jax", "both"])
def test_compare_fails_on_non_finite(bad: float, where: str) -> None:
    reference, other = np.ones(3), np.ones(3)
    if where in ("torch", "both"):
        reference[1] = bad
    if where in ("jax", "both"):
        other[1] = bad
    check = compare("outputs", reference, other, TOL)
    assert not check.passed
    assert "non-finite" in check.detail


def test_compare_curves_reports_the_first_step_outside() -> None:
    base = TOL.atol + TOL.rtol * 1.0  # tolerance at step 0 for a loss of 1
    torch_curve = np.ones(10)
    jax_curve = torch_curve.copy()
    jax_curve[4] += 10 * base  # step 4 allows 5 × base: outside
    jax_curve[7] += 10 * base  # outside too, but later
    check = compare_curves("curve[adam]", torch_curve, jax_curve, TOL)
    assert not check.passed
    assert check.first_bad_step == 4
    assert "step 4" in check.detail
    assert check.curves == {"torch": list(torch_curve), "jax": list(jax_curve)}


def test_compare_curves_tolerance_grows_with_the_step() -> None:
    base = TOL.atol + TOL.rtol * 1.0
    torch_curve = np.ones(10)
    late, early = torch_curve.copy(), torch_curve.copy()
    late[5] += 3 * base  # step 5 allows 6 × base
    early[0] += 3 * base  # step 0 allows 1 × base
    assert compare_curves("c", torch_curve, late, TOL).passed
    assert compare_curves("c", torch_curve, early, TOL).first_bad_step == 0
    assert compare_curves("c", torch_curve, torch_curve, TOL).first_bad_step is None


def test_compare_curves_fails_at_a_nan_step() -> None:
    torch_curve = np.linspace(1.0, 0.5, 8)
    jax_curve = torch_curve.copy()
    jax_curve[6] = np.nan
    check = compare_curves("c", torch_curve, jax_curve, TOL)
    assert not check.passed
    assert check.first_bad_step == 6


def test_compare_gradients_names_the_parameter_furthest_out_of_tolerance() -> None:
    tol = TOLERANCES["float32"].gradients
    torch_grads = {"big.kernel": np.full((3, 3), 1000.0), "small.bias": np.ones(3),
                   "same.kernel": np.arange(6.0).reshape(2, 3)}
    jax_grads = {name: value.copy() for name, value in torch_grads.items()}
    jax_grads["big.kernel"][0, 0] += 0.05  # the largest absolute error, but within 0.1 allowed
    jax_grads["small.bias"][2] += 1e-3  # small in absolute terms, 9 × its allowance
    check = compare_gradients(torch_grads, jax_grads, tol)
    assert not check.passed
    assert check.worst_parameter == "small.bias"
    assert "'small.bias'" in check.detail
    assert check.max_abs == pytest.approx(0.05)

    del jax_grads["small.bias"]
    missing = compare_gradients(torch_grads, jax_grads, tol)
    assert not missing.passed
    assert "small.bias" in missing.detail


def test_compare_gradients_passes_on_agreement() -> None:
    tol = TOLERANCES["float32"].gradients
    grads = {"a.kernel": np.linspace(-1.0, 1.0, 12).reshape(3, 4), "a.bias": np.zeros(4)}
    check = compare_gradients(grads, {k: v + 1e-7 for k, v in grads.items()}, tol)
    assert check.passed
    assert check.max_abs == pytest.approx(1e-7)


def test_runners_disagree_on_the_transposed_kernel_only(monkeypatch: pytest.MonkeyPatch,
                                                         ln_gelu_file: Path) -> None:
    """The planted transpose really changes fc1 alone: ln's outputs still agree."""
    workload = from_file(ln_gelu_file)
    size = workload.size("tiny")
    weights = initial_weights(workload, size)
    swapped = {**weights, "fc1.kernel": np.ascontiguousarray(weights["fc1.kernel"].T)}
    batch = next(workload.batches(size, 0))
    torch_runner, jax_runner = (make_runner(fw, workload, size) for fw in ("torch", "jax"))
    torch_runner.load(weights)
    jax_runner.load(swapped)
    torch_acts, jax_acts = torch_runner.activations(batch), jax_runner.activations(batch)
    np.testing.assert_allclose(
        jax_acts["ln"].output, torch_acts["ln"].output, atol=1e-5, rtol=1e-5
    )
    assert not np.allclose(jax_acts["fc1"].output, torch_acts["fc1"].output, atol=1e-3)


def test_only_the_named_optimizers_get_a_loss_curve() -> None:
    workload = builtin("xor")
    size = workload.size("tiny")
    every = {c.name for c in check_workload(workload, size, steps=3).checks}
    adam = check_workload(workload, size, steps=3, optimizers=["adam"])
    adam_only = {c.name for c in adam.checks}
    assert {"curve[adam]", "curve[sgd]"} <= every
    assert adam_only == every - {"curve[sgd]"}


def test_the_jax_loss_curve_compiles_its_step_once(caplog: pytest.LogCaptureFixture) -> None:
    """The second step sees the first one's (device-committed) outputs as arguments: arguments
    committed from the start keep XLA from compiling the step a second time."""
    import jax

    workload = builtin("xor")
    size = workload.size("tiny")
    runner = JaxRunner(workload, size)
    batches = list(islice(workload.batches(size, 0), 3))
    with jax.log_compiles(True), caplog.at_level("WARNING"):
        runner.train_curve(batches, workload.optimizers["adam"])
    compiles = [r for r in caplog.records if "Finished XLA compilation of jit(step)" in r.message]
    assert len(compiles) == 1
