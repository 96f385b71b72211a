"""Memory attributable to a cell: the runtime left out, the batch counted, the floor exact."""

import pytest

from twinbench.harness import memory
from twinbench.harness.runner import RunSettings, run
from twinbench.registry import builtin
from twinbench.store import DB_NAME, ResultStore

SMALL_BATCH, LARGE_BATCH = 64, 1 << 20  # linreg tiny: one feature and one target a sample
MB = 2**20


@pytest.fixture(scope="module")
def linreg_sweep(tmp_path_factory):
    """linreg tiny (2 parameters) at two batch sizes, eager torch and jitted JAX."""
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
        out=out,
    )
    run_id = run(settings)
    with ResultStore(out / DB_NAME) as store:
        cells = store.cells(run_id)
    assert all(c.status == "ok" for c in cells), [c.error for c in cells]
    return {(c.mode, c.metrics["batch_size"]): c.metrics for c in cells}


@pytest.mark.parametrize("mode", ["torch-eager", "jax-jit"])
def test_the_runtime_is_left_out_and_the_batch_counted(linreg_sweep, mode):
    small, large = linreg_sweep[mode, SMALL_BATCH], linreg_sweep[mode, LARGE_BATCH]
    # the process holds a few hundred MB of runtime; a 2-parameter model needs almost none
    assert small["process_peak_rss_bytes"] > 150 * MB
    assert small["attributable_peak_bytes"] < 50 * MB
    # the full batch of inputs and targets alone, float32: 8 MB more at 2**20 samples
    batch = 2 * 4 * (LARGE_BATCH - SMALL_BATCH)
    assert large["attributable_peak_bytes"] - small["attributable_peak_bytes"] > batch
    assert small["attributable_peak_bytes_by_process"] == [small["attributable_peak_bytes"]]
    assert small["attributable_method"] == memory.RESET_METHOD


def test_the_floor_and_the_activations_are_stored(linreg_sweep):
    cell = linreg_sweep["torch-eager", SMALL_BATCH]
    # linreg: weight and bias, SGD with momentum (one slot), float32
    assert cell["params"] == 2
    assert cell["analytic_floor_bytes"] == 2 * 3 * 4
    assert cell["activation_bytes"] == cell["attributable_peak_bytes"] - 24


def test_each_framework_gives_its_own_account(linreg_sweep):
    jit = linreg_sweep["jax-jit", LARGE_BATCH]
    assert jit["xla_argument_bytes"] >= 4 * 2 * LARGE_BATCH  # one batch's inputs and targets
    assert jit["xla_peak_estimate_bytes"] >= jit["xla_argument_bytes"]
    eager = linreg_sweep["torch-eager", LARGE_BATCH]
    assert eager["torch_profiled_step_peak_bytes"] >= 4 * LARGE_BATCH  # the predictions at least
    assert eager["torch_saved_activation_bytes"] > 0
    assert "xla_argument_bytes" not in eager and "torch_profiled_step_peak_bytes" not in jit


def _torch_state_bytes(workload_name):
    """Parameters, gradients and optimizer state of the torch twin after one real step."""
    import torch

    from twinbench.backends.torch_backend import make_optimizer, to_device

    workload = builtin(workload_name)
    size = workload.size("tiny")
    model = workload.twin("torch").build(size.config)
    optimizer = make_optimizer(model.parameters(), workload.optimizers[workload.train_optimizer])
    batch = to_device(next(iter(workload.batches(size, 0))), "cpu", torch.float32, ())
    workload.twin("torch").loss_fn(model, batch).backward()
    optimizer.step()
    tensors = [p for p in model.parameters()] + [p.grad for p in model.parameters()]
    tensors += [t for s in optimizer.state.values() for t in s.values() if t.dim() > 0]
    n_params = sum(p.numel() for p in model.parameters())
    return n_params, sum(t.numel() * t.element_size() for t in tensors)


@pytest.mark.parametrize("workload_name", ["linreg", "xor"])  # SGD with momentum, Adam
def test_the_floor_counts_what_the_optimizer_really_keeps(workload_name):
    params, held = _torch_state_bytes(workload_name)
    workload = builtin(workload_name)
    slots = memory.optimizer_slots(workload.optimizers[workload.train_optimizer])
    assert memory.analytic_floor_bytes(params, dtype="float32", phase="train", slots=slots) == held
    assert memory.analytic_floor_bytes(params, dtype="float32", phase="infer", slots=slots) == (
        params * 4
    )
