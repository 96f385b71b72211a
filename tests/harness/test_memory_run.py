"""Memory attributable to a cell, measured by a real sweep: the runtime left out, the batch
counted, each framework's own account stored, and the largest batch within a budget predicted
and measured. One sweep, about a minute on two idle cores: behind the slow marker."""

import pytest

from twinbench.harness import memory
from twinbench.harness.runner import RunSettings, run
from twinbench.registry import builtin
from twinbench.store import DB_NAME, ResultStore

SMALL_BATCH, LARGE_BATCH = 64, 1 << 20  # linreg tiny: one feature and one target a sample
MB = 2**20
BUDGET = 64 * MB


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def linreg_sweep(tmp_path_factory):
    """linreg tiny (2 parameters) at two batch sizes, eager torch and jitted JAX, then at the
    largest batch predicted to fit 64 MiB."""
    out = tmp_path_factory.mktemp("memory")
    settings = RunSettings(
        workloads=("linreg",),
        sizes=("tiny",),
        modes=("torch-eager", "jax-jit"),
        threads=1,
        budget=0.4,
        repeats=1,
        parity_steps=2,
        batch_sizes=(SMALL_BATCH, LARGE_BATCH),
        memory_budget=BUDGET,
        out=out,
    )
    run_id = run(settings)
    with ResultStore(out / DB_NAME) as store:
        cells, info = store.cells(run_id), store.run(run_id).info
    assert all(c.status == "ok" for c in cells), [c.error for c in cells]
    return {(c.mode, c.metrics["batch_size"]): c.metrics for c in cells}, info


@pytest.fixture(scope="module")
def by_mode_and_batch(linreg_sweep):
    return linreg_sweep[0]


@pytest.mark.parametrize("mode", ["torch-eager", "jax-jit"])
def test_the_runtime_is_left_out_and_the_batch_counted(by_mode_and_batch, mode):
    small, large = by_mode_and_batch[mode, SMALL_BATCH], by_mode_and_batch[mode, LARGE_BATCH]
    # the process holds a few hundred MB of runtime; a 2-parameter model needs almost none
    assert small["process_peak_rss_bytes"] > 150 * MB
    assert small["attributable_peak_bytes"] < 50 * MB
    # the full batch of inputs and targets alone, float32: 8 MB more at 2**20 samples
    batch = 2 * 4 * (LARGE_BATCH - SMALL_BATCH)
    assert large["attributable_peak_bytes"] - small["attributable_peak_bytes"] > batch
    assert small["attributable_peak_bytes_by_process"] == [small["attributable_peak_bytes"]]
    assert small["attributable_method"] == memory.RESET_METHOD


def test_the_floor_and_the_activations_are_stored(by_mode_and_batch):
    cell = by_mode_and_batch["torch-eager", SMALL_BATCH]
    # linreg: weight and bias, SGD with momentum (one slot), float32
    assert cell["params"] == 2
    assert cell["analytic_floor_bytes"] == 2 * 3 * 4
    assert cell["activation_bytes"] == cell["attributable_peak_bytes"] - 24


def test_each_framework_gives_its_own_account(by_mode_and_batch):
    jit = by_mode_and_batch["jax-jit", LARGE_BATCH]
    assert jit["xla_argument_bytes"] >= 4 * 2 * LARGE_BATCH  # one batch's inputs and targets
    assert jit["xla_peak_estimate_bytes"] >= jit["xla_argument_bytes"]
    eager = by_mode_and_batch["torch-eager", LARGE_BATCH]
    assert eager["torch_profiled_step_peak_bytes"] >= 4 * LARGE_BATCH  # the predictions at least
    assert eager["torch_saved_activation_bytes"] > 0
    assert "xla_argument_bytes" not in eager and "torch_profiled_step_peak_bytes" not in jit


@pytest.mark.parametrize("mode", ["torch-eager", "jax-jit"])
def test_the_largest_batch_within_a_budget_is_predicted_then_measured(linreg_sweep, mode):
    cells, info = linreg_sweep
    record = info["memory_budget"]
    assert record["budget_bytes"] == BUDGET
    (fit,) = [f for f in record["fits"] if f["mode"] == mode]
    small, large = cells[mode, SMALL_BATCH], cells[mode, LARGE_BATCH]
    slope = (large["attributable_peak_bytes"] - small["attributable_peak_bytes"]) / (
        LARGE_BATCH - SMALL_BATCH
    )
    assert fit["bytes_per_sample"] == pytest.approx(slope)  # two points: the line through them
    predicted = fit["predicted_batch"]
    assert predicted not in (SMALL_BATCH, LARGE_BATCH)  # a batch of its own, measured there
    measured = cells[mode, predicted]["attributable_peak_bytes"]
    assert fit["measured_bytes"] == measured
    assert 0.5 * BUDGET < measured < 1.5 * BUDGET  # a straight line predicts linreg well


@pytest.mark.parametrize("mode", ["torch-eager", "jax-jit"])
def test_the_attributable_peak_rises_strictly_with_the_batch(by_mode_and_batch, mode):
    batches = sorted(batch for m, batch in by_mode_and_batch if m == mode)
    peaks = [by_mode_and_batch[mode, batch]["attributable_peak_bytes"] for batch in batches]
    assert len(batches) == 3  # the two swept batches and the one predicted for the budget
    assert all(a < b for a, b in zip(peaks, peaks[1:], strict=False))


def test_parity_holds_with_checkpointing_on():
    from dataclasses import replace

    from twinbench.parity import check_workload

    workload = builtin("gpt")
    size = workload.size("tiny")
    size = replace(size, config={**size.config, "gradient_checkpointing": True})
    result = check_workload(workload, size, dtype="float32", steps=2, seed=0, device="cpu")
    assert result.passed, result


def _with_checkpointing(workload, size_name, on):
    from dataclasses import replace

    size = workload.size(size_name)
    return replace(size, config={**size.config, "gradient_checkpointing": on})


def test_checkpointing_gives_the_same_loss_and_gradients_in_jax():
    import jax
    import numpy as np
    from flax import nnx

    from twinbench.backends import initial_weights
    from twinbench.backends.jax_backend import load_canonical

    workload = builtin("gpt")
    results = []
    for on in (False, True):
        size = _with_checkpointing(workload, "tiny", on)
        twin = workload.twin("jax")
        model = twin.build(size.config)
        load_canonical(model, initial_weights(workload, size, 0, framework="jax"))
        batch = next(iter(workload.batches(size, 0)))
        loss, grads = nnx.value_and_grad(twin.loss_fn)(model, batch)
        results.append((float(loss), jax.tree.leaves(grads)))
    (loss, grads), (loss_ckpt, grads_ckpt) = results
    assert loss_ckpt == pytest.approx(loss, rel=1e-6)
    for grad, grad_ckpt in zip(grads, grads_ckpt, strict=True):
        np.testing.assert_allclose(grad_ckpt, grad, rtol=1e-5, atol=1e-6)
