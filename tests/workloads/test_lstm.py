"""lstm: parity with torch's nn.LSTM, a learnable task, refused configs, a scanned recurrence."""

import dataclasses
from itertools import islice

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from twinbench import parity
from twinbench.backends import initial_weights, make_runner
from twinbench.errors import TwinbenchError
from twinbench.workloads.lstm import WORKLOAD


def test_parity_tiny():
    report = parity([WORKLOAD], size="tiny")
    assert report.passed, report.results[0].failures()


@pytest.mark.slow
def test_parity_small():
    report = parity([WORKLOAD], size="small")
    assert report.passed, report.results[0].failures()


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
    with pytest.raises(TwinbenchError, match=f"^lstm: {key} must be at least 1, got 0$"):
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
