"""gru: parity with torch's nn.GRU (b_hn included), a learnable task, refused configs, a scan."""

import dataclasses
from itertools import islice
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from twinbench import parity
from twinbench.backends import initial_weights, make_runner
from twinbench.errors import TwinbenchError
from twinbench.parity import check_workload
from twinbench.workloads.gru import WORKLOAD

JAX_TWIN = Path(__file__).parents[2] / "src" / "twinbench" / "workloads" / "gru" / "jax_twin.py"


def test_parity_tiny():
    report = parity([WORKLOAD], size="tiny")
    assert report.passed, report.results[0].failures()


@pytest.mark.slow
def test_parity_small():
    report = parity([WORKLOAD], size="small")
    assert report.passed, report.results[0].failures()


def test_canonical_init_has_a_nonzero_b_hn():
    size = WORKLOAD.size("tiny")
    hidden = size.config["hidden"]
    b_hn = initial_weights(WORKLOAD, size)["gru.0.dense_h.bias"][2 * hidden :]
    assert np.abs(b_hn).min() > 0


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # b_hn dropped, as nnx.GRUCell has it
        ("h @ w_h + b_h, 3", "h @ w_h + b_h.at[:, 2 * h.shape[1] :].set(0), 3"),
        # b_hn outside the reset gate's product: r ⊙ (W_hn h) + b_hn
        ("x_n + r * h_n", "x_n + r * h_n + (1 - r) * b_h[:, 2 * h.shape[1] :]"),
    ],
    ids=["b_hn dropped", "r outside the bracket"],
)
def test_parity_catches_a_misplaced_b_hn(tmp_path, old, new):
    source = JAX_TWIN.read_text()
    assert source.count(old) == 1
    planted = tmp_path / "jax_twin.py"
    planted.write_text(source.replace(old, new))
    variant = dataclasses.replace(
        WORKLOAD, twins={**WORKLOAD.twins, "jax": str(planted)}, optimizers={}
    )
    result = check_workload(variant, variant.size("tiny"), steps=1)
    assert result.error is None, result.error
    failed = {check.name for check in result.checks if not check.passed}
    assert {"outputs", "loss", "gradients"} <= failed


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_adam_learns_the_forecast(framework):
    size = WORKLOAD.size("tiny")
    batches = list(islice(WORKLOAD.batches(size, seed=1), 50))
    runner = make_runner(framework, WORKLOAD, size)
    runner.load(initial_weights(WORKLOAD, size))
    losses = runner.train_curve(batches, WORKLOAD.optimizers["adam"])
    predict_zero = np.mean([np.mean(b["y"] ** 2) for b in batches])  # the loss of knowing nothing
    assert np.mean(losses[-5:]) < 0.5 * min(losses[0], predict_zero), losses


@pytest.mark.parametrize("key", ["hidden", "layers", "seq_len"])
def test_bad_config_refused(key):
    tiny = WORKLOAD.sizes["tiny"]
    size = dataclasses.replace(tiny, config={**tiny.config, key: 0})
    with pytest.raises(TwinbenchError, match=f"^gru: {key} must be at least 1, got 0$"):
        WORKLOAD.check(size)


def test_recurrence_is_one_scan_per_layer():
    """The traced forward holds one ``scan`` per layer, and no more ops for a longer window."""
    twin = WORKLOAD.twin("jax")
    config = {**WORKLOAD.sizes["small"].config, "hidden": 8}  # two layers

    def trace(seq_len):
        model = twin.build({**config, "seq_len": seq_len})
        x = jnp.zeros((2, seq_len, config["features"]))
        return jax.make_jaxpr(lambda x: twin.forward(model, {"x": x}))(x).jaxpr

    short, long = trace(5), trace(50)
    scans = [eqn for eqn in long.eqns if eqn.primitive.name == "scan"]
    assert [eqn.params["length"] for eqn in scans] == [50, 50]
    assert len(long.eqns) == len(short.eqns)
