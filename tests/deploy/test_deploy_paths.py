"""What every exporter is given, checked eagerly (no export): the model's inputs are found, and
the torch module takes images channels-last as every caller sends them; how a call is timed."""

from __future__ import annotations

import numpy as np
import torch

from twinbench.backends import initial_weights
from twinbench.deploy import jax_paths, torch_paths
from twinbench.deploy.inputs import batch_of, used_keys
from twinbench.deploy.worker import MAX_CALLS, MIN_CALLS, eval_runner, latency_samples
from twinbench.registry import builtin
from twinbench.spec import image_keys_of


def test_inputs_are_what_forward_reads_not_the_targets() -> None:
    workload, inputs = builtin("resnet"), ["x"]
    size = workload.size("tiny")
    batch = batch_of(workload, size, 2, seed=0)
    assert len(batch) > len(inputs)  # the batch holds targets too
    for side in (torch_paths, jax_paths):
        framework = side.NAME
        weights = initial_weights(workload, size, 0, framework)
        runner = eval_runner(framework, workload, size, weights)
        example = side.device_batch(batch, image_keys_of(workload))
        assert used_keys(side.forward_of(workload.twin(framework), runner.model), example) == inputs


def test_torch_module_takes_channels_last_images() -> None:
    workload = builtin("resnet")
    size = workload.size("tiny")
    batch = batch_of(workload, size, 3, seed=0)
    runner = eval_runner("torch", workload, size, initial_weights(workload, size, 0, "torch"))
    module = torch_paths.inference(workload.twin("torch"), runner.model, ["x"], ["x"])
    (x,) = torch_paths.arguments(batch, ["x"])
    assert x.shape[-1] == batch["x"].shape[-1]  # NHWC in
    with torch.no_grad():
        out = module(x).numpy()
    np.testing.assert_allclose(out, runner.outputs(batch), rtol=1e-6, atol=1e-6)


def test_a_fast_call_is_timed_at_most_max_calls_times() -> None:
    samples = latency_samples(lambda: None, budget_s=30.0)  # ~µs a call: millions in the budget
    assert MIN_CALLS <= len(samples) <= MAX_CALLS
