"""Model-level converters of the backends against the layer converters and the frameworks.

`twinbench.converters` is a separate, layer-by-layer implementation of the same layouts, so
agreement between the two is a real check, not a restatement.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import twinbench
from twinbench import converters as cv
from twinbench.backends import initial_weights, torch_backend
from twinbench.canonical import init_canonical
from twinbench.errors import TwinbenchError
from twinbench.registry import from_file

BN_STOCK = Path(__file__).parent / "fixtures" / "bn_stock" / "workload.py"


def _state_dict(module: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in module.state_dict().items()}


class Recurrent(nn.Module):
    def __init__(self, cell: type[nn.Module], **kwargs: object) -> None:
        super().__init__()
        self.rnn = cell(3, 5, num_layers=2, batch_first=True, **kwargs)


@pytest.mark.parametrize(
    ("cell", "from_torch"), [(nn.LSTM, cv.lstm_from_torch), (nn.GRU, cv.gru_from_torch)]
)
def test_recurrent_layers_match_the_layer_converters(cell, from_torch):
    model = Recurrent(cell)
    canonical = torch_backend.to_canonical(model)
    expected = from_torch(_state_dict(model), prefix="rnn")
    assert canonical.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(canonical[name], value, err_msg=name)


def test_recurrent_round_trip_through_canonical_is_exact():
    source, target = Recurrent(nn.GRU), Recurrent(nn.GRU)
    torch_backend.load_canonical(target, torch_backend.to_canonical(source))
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_bidirectional_recurrent_layers_are_refused_by_name():
    with pytest.raises(TwinbenchError, match="bidirectional"):
        torch_backend.to_canonical(Recurrent(nn.LSTM, bidirectional=True))


def test_batchnorm_statistics_are_canonical_weights_without_gradients():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4))
    model(torch.randn(3, 2, 6, 6))  # train mode: moves the running statistics off their init
    canonical = torch_backend.to_canonical(model)
    expected = cv.batchnorm2d_from_torch(_state_dict(model), prefix="1")
    for name, value in expected.items():
        np.testing.assert_array_equal(canonical[name], value, err_msg=name)
    assert "1.num_batches_tracked" not in canonical
    assert set(torch_backend.statistics_to_canonical(model)) == {"1.mean", "1.var"}
    model(torch.randn(3, 2, 6, 6)).sum().backward()
    assert "1.var" not in torch_backend.grads_to_canonical(model)


def test_loading_canonical_weights_restores_the_running_statistics():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    weights = init_canonical(torch_backend.canonical_shapes(model), seed=1)
    np.testing.assert_array_equal(weights["1.mean"], np.zeros(4, np.float32))
    np.testing.assert_array_equal(weights["1.var"], np.ones(4, np.float32))
    weights["1.var"] = np.full(4, 2.5, np.float32)
    torch_backend.load_canonical(model, weights)
    np.testing.assert_array_equal(model[1].running_var.numpy(), weights["1.var"])


def test_image_keys_reach_torch_as_nchw():
    batch = {"x": np.arange(2 * 4 * 5 * 3, dtype=np.float32).reshape(2, 4, 5, 3)}
    tensors = torch_backend.to_device(batch, "cpu", torch.float32, image_keys=("x",))
    assert tensors["x"].shape == (2, 3, 4, 5)
    np.testing.assert_array_equal(tensors["x"].numpy(), batch["x"].transpose(0, 3, 1, 2))


def test_flax_stock_batchnorm_fails_the_running_statistics_check():
    """Same train-mode maths, different running-variance rule: only the statistics and the
    eval-mode outputs may fail, and the report must name the variance, not the mean."""
    result = twinbench.parity([from_file(BN_STOCK)], size="tiny").results[0]
    checks = {c.name: c for c in result.checks}
    for name in ("outputs", "loss", "gradients", "curve[sgd]", "curve[adam]"):
        assert checks[name].passed, checks[name].detail
    assert not checks["statistics"].passed
    assert checks["statistics"].worst_parameter == "bn.var"
    assert not checks["outputs[eval]"].passed


def test_a_workload_may_declare_its_own_init():
    """GPT-2-style N(0, 0.02²) embeddings instead of PyTorch's N(0, 1); the rest unchanged."""
    import dataclasses
    from functools import partial

    mlp = twinbench.builtin("mlp")
    size = mlp.size("tiny")
    calls = []

    def init(shapes, seed):
        calls.append(seed)
        return {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}

    weights = initial_weights(dataclasses.replace(mlp, init=init), size, seed=3)
    assert calls == [3] and all(not w.any() for w in weights.values())

    shapes = {"wte.embedding": (512, 64), "fc.kernel": (64, 8), "fc.bias": (8,)}
    default = init_canonical(shapes, seed=0)
    small = partial(init_canonical, embedding_std=0.02)(shapes, seed=0)
    np.testing.assert_allclose(small["wte.embedding"], 0.02 * default["wte.embedding"], rtol=1e-6)
    assert abs(small["wte.embedding"].std() - 0.02) < 0.002
    np.testing.assert_array_equal(small["fc.kernel"], default["fc.kernel"])


def test_a_workload_may_loosen_float32_tolerances_for_one_size_only():
    import dataclasses

    from twinbench.parity import TOLERANCES, Tolerance, tolerances_for

    mlp = twinbench.builtin("mlp")
    noisy = dataclasses.replace(mlp, tolerances={"small": {"curve": (2e-3, 1e-3)}})
    small, tiny = mlp.size("small"), mlp.size("tiny")
    loosened = tolerances_for(noisy, small, "float32")
    assert loosened.curve == Tolerance(2e-3, 1e-3)
    assert loosened.gradients == TOLERANCES["float32"].gradients
    assert tolerances_for(noisy, tiny, "float32") == TOLERANCES["float32"]
    assert tolerances_for(noisy, small, "bfloat16") == TOLERANCES["bfloat16"]
    assert tolerances_for(mlp, small, "float32") == TOLERANCES["float32"]


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_both_runners_satisfy_the_runner_protocol(framework):
    from twinbench.backends import Activation, Runner, make_runner

    workload = twinbench.builtin("mlp")
    size = workload.size("tiny")
    runner: Runner = make_runner(framework, workload, size)
    assert isinstance(runner, Runner)
    runner.load(initial_weights(workload, size))
    activations = runner.activations(next(workload.batches(size, 0)))
    assert activations and all(isinstance(a, Activation) for a in activations.values())


@pytest.mark.parametrize("mode", ["torch-eager", "jax-jit"])
def test_both_benches_satisfy_the_bench_protocol(mode):
    from twinbench.backends import Bench

    settings = {"phase": "train", "dtype": "float32", "device": "cpu", "seed": 0}
    workload = twinbench.builtin("mlp")
    size = workload.size("tiny")
    if mode == "torch-eager":
        from twinbench.backends.torch_timed import TorchBench

        bench: Bench = TorchBench(
            workload, size, mode=mode, allow_tf32=False, compile_mode="default", **settings
        )
    else:
        from twinbench.backends.jax_timed import JaxBench

        bench = JaxBench(workload, size, mode=mode, allow_tf32=False, **settings)
    assert isinstance(bench, Bench)
    bench.compile()
    bench.sync(bench.step())


@pytest.mark.parametrize("workload_name", ["resnet", "gpt"])  # batch statistics; embeddings
def test_both_timed_benches_start_from_the_same_weights(workload_name):
    """The timed JAX model is built abstractly and filled from the canonical init; the torch one
    is built eagerly and loaded through its own converters: the same seed, the same weights."""
    from twinbench.backends import jax_backend
    from twinbench.backends.jax_timed import JaxBench
    from twinbench.backends.torch_timed import TorchBench

    workload = twinbench.builtin(workload_name)
    size = workload.size("tiny")
    settings = dict(phase="train", dtype="float32", device="cpu", seed=5, allow_tf32=False)
    jax_model = JaxBench(workload, size, mode="jax-jit", **settings)._objects[0]
    torch_model = TorchBench(
        workload, size, mode="torch-eager", compile_mode="default", **settings
    )._model
    jax_weights = jax_backend.to_canonical(jax_model)
    jax_weights |= jax_backend.statistics_to_canonical(jax_model)
    torch_weights = torch_backend.to_canonical(torch_model)
    torch_weights |= torch_backend.statistics_to_canonical(torch_model)
    assert jax_weights.keys() == torch_weights.keys()
    for name, value in torch_weights.items():
        np.testing.assert_array_equal(jax_weights[name], value, err_msg=name)
    # and not seed 0's: the seed reached both
    seed_0 = initial_weights(workload, size, seed=0)
    assert any(not np.array_equal(seed_0[n], v) for n, v in torch_weights.items() if n in seed_0)


def test_jax_eager_jax_jit_and_torch_eager_take_the_same_training_steps():
    """jax-eager's op-by-op step, jax-jit's compiled one and torch-eager's take the same steps:
    the same losses, step by step, from the same weights and batches."""
    from twinbench.backends.jax_timed import JaxBench
    from twinbench.backends.torch_timed import TorchBench
    from twinbench.parity import TOLERANCES, compare_curves

    workload = twinbench.builtin("mlp")
    size = workload.size("tiny")
    settings = dict(phase="train", dtype="float32", device="cpu", seed=0, allow_tf32=False)
    benches = {
        "torch-eager": TorchBench(
            workload, size, mode="torch-eager", compile_mode="default", **settings
        ),
        "jax-jit": JaxBench(workload, size, mode="jax-jit", **settings),
        "jax-eager": JaxBench(workload, size, mode="jax-eager", **settings),
    }
    losses = {}
    for mode, bench in benches.items():
        bench.compile()
        losses[mode] = [float(bench.step()) for _ in range(4)]
    for mode in ("jax-jit", "jax-eager"):  # parity's loss-curve check between the modes
        check = compare_curves(mode, losses["torch-eager"], losses[mode],
                               TOLERANCES["float32"].curve, labels=("torch-eager", mode))
        assert check.passed, check.detail


def test_torch_activations_skip_a_module_whose_output_is_not_one_tensor():
    """``nn.GRU`` returns (output, state): no activation of its own, so the first divergent layer
    is looked for among the modules that return one tensor; the head's input is the GRU's last
    output, as the head received it."""
    from twinbench.backends import make_runner

    workload = twinbench.builtin("gru")
    size = workload.size("tiny")
    runner = make_runner("torch", workload, size)
    runner.load(initial_weights(workload, size))
    batch = next(workload.batches(size, 0))
    assert [name for name, _ in runner.model.named_modules() if name] == ["gru", "head"]
    activations = runner.activations(batch)
    assert list(activations) == ["head"]
    head = activations["head"]
    np.testing.assert_allclose(head.output, runner.apply_layer("head", head.input), rtol=1e-6)
    np.testing.assert_array_equal(head.output, runner.outputs(batch))
