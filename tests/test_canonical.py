"""Canonical weights: exact conversion both ways, safetensors IO, the init, and layout rules."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from twinbench import builtin, canonical, from_file
from twinbench.backends import canonical_shapes, initial_weights, make_runner
from twinbench.canonical import CanonicalError, check_compatible, init_canonical
from twinbench.registry import BUILTIN

# small: the same conversion code on bigger arrays (resnet-small alone takes ~18 s); CI's slow step
SIZES = ["tiny", pytest.param("small", marks=pytest.mark.slow)]


def assert_exactly_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].shape == b[name].shape, name
        assert np.array_equal(a[name], b[name]), name


@pytest.mark.parametrize("size_name", SIZES)
@pytest.mark.parametrize("name", BUILTIN)
def test_torch_to_jax_to_torch_is_exact(name: str, size_name: str) -> None:
    workload = builtin(name)
    size = workload.size(size_name)
    init = initial_weights(workload, size, seed=3)

    torch_a = make_runner("torch", workload, size)
    torch_a.load(init)
    from_torch = torch_a.weights()
    assert_exactly_equal(from_torch, init)

    jax_runner = make_runner("jax", workload, size)
    jax_runner.load(from_torch)
    from_jax = jax_runner.weights()
    assert_exactly_equal(from_jax, init)

    torch_b = make_runner("torch", workload, size)
    torch_b.load(from_jax)
    assert_exactly_equal(torch_b.weights(), init)
    state_a, state_b = torch_a.model.state_dict(), torch_b.model.state_dict()
    assert list(state_a) == list(state_b)
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_weights_read_from_a_twin_are_plain_writable_arrays(framework: str) -> None:
    """Canonical weights are ordinary NumPy arrays: editable, and loadable into torch without
    its "non-writable array" warning (a read-only view of a JAX buffer is neither)."""
    workload = builtin("xor")
    size = workload.size("tiny")
    runner = make_runner(framework, workload, size)
    runner.load(initial_weights(workload, size))
    for name, array in runner.weights().items():
        assert isinstance(array, np.ndarray), name
        assert array.flags.writeable, name


def test_safetensors_round_trip_is_exact(tmp_path: Path) -> None:
    weights = initial_weights(builtin("mlp"), builtin("mlp").size("tiny"), seed=1)
    weights["extra.float16"] = np.linspace(-2.0, 2.0, 6, dtype=np.float16).reshape(2, 3)
    weights["extra.int64"] = np.arange(5, dtype=np.int64)
    path = tmp_path / "init.safetensors"
    canonical.save(weights, path)
    assert_exactly_equal(canonical.load(path), weights)


def test_load_of_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(CanonicalError, match="nowhere.safetensors"):
        canonical.load(tmp_path / "nowhere.safetensors")


SHAPES = {
    "conv.kernel": (3, 3, 16, 32),
    "conv.bias": (32,),
    "fc.kernel": (400, 2000),
    "fc.bias": (2000,),
    "ln.scale": (2000,),
    "ln.bias": (2000,),
    "embed.embedding": (50, 40),
    "free": (7, 9),
}


def test_init_is_deterministic_per_seed() -> None:
    first, again, other = (init_canonical(SHAPES, s) for s in (0, 0, 1))
    assert_exactly_equal(first, again)
    for name in ("conv.kernel", "conv.bias", "fc.kernel", "fc.bias", "embed.embedding", "free"):
        assert not np.array_equal(first[name], other[name]), name


def test_init_tensors_are_independent_of_each_other() -> None:
    base = init_canonical(SHAPES, 0)
    grown = init_canonical({"extra.kernel": (5, 5), **SHAPES, "head.kernel": (2000, 3)}, 0)
    for name in SHAPES:
        assert np.array_equal(base[name], grown[name]), name
    fewer = init_canonical({"fc.kernel": SHAPES["fc.kernel"], "free": SHAPES["free"]}, 0)
    assert np.array_equal(fewer["free"], base["free"])


def test_init_follows_torch_default_bounds() -> None:
    weights = init_canonical(SHAPES, 0)
    assert all(w.dtype == np.float32 for w in weights.values())
    conv_bound = 1 / math.sqrt(3 * 3 * 16)  # fan_in of an (H, W, in, out) kernel
    fc_bound = 1 / math.sqrt(400)  # a bias is bounded by its sibling kernel's fan_in, not its own
    for name, bound in [("conv.kernel", conv_bound), ("conv.bias", conv_bound),
                        ("fc.kernel", fc_bound), ("fc.bias", fc_bound)]:
        spread = float(np.abs(weights[name]).max())
        assert spread <= bound, name
        assert spread > 0.9 * bound, name  # uniform over the whole interval, not narrower
    assert np.array_equal(weights["ln.scale"], np.ones(2000, np.float32))
    assert np.array_equal(weights["ln.bias"], np.zeros(2000, np.float32))  # no sibling kernel
    assert abs(float(weights["embed.embedding"].std()) - 1.0) < 0.1  # N(0, 1)
    assert float(np.abs(weights["free"]).max()) <= 1 / math.sqrt(7)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"fc.kernel": np.zeros((3, 4))}, "lack fc.bias"),
        ({"fc.kernel": np.zeros((3, 4)), "fc.bias": np.zeros(4), "fc.scale": np.zeros(4)},
         "unknown tensors fc.scale"),
        ({"fc.kernel": np.zeros((4, 3)), "fc.bias": np.zeros(4)},
         r"tensor 'fc.kernel' has shape \(4, 3\), the model expects \(3, 4\)"),
    ],
    ids=["missing", "extra", "wrong-shape"],
)
def test_check_compatible_names_the_offending_tensor(weights: dict[str, np.ndarray],
                                                     message: str) -> None:
    with pytest.raises(CanonicalError, match=message):
        check_compatible({"fc.kernel": (3, 4), "fc.bias": (4,)}, weights, model="Net")
    check_compatible({"fc.kernel": (3, 4), "fc.bias": (4,)},
                     {"fc.kernel": np.zeros((3, 4)), "fc.bias": np.zeros(4)}, model="Net")


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_runner_rejects_weights_of_the_wrong_shape(framework: str) -> None:
    workload = builtin("xor")
    size = workload.size("tiny")
    weights = initial_weights(workload, size)
    weights["hidden.kernel"] = weights["hidden.kernel"].T.copy()  # (2, 8) -> (8, 2)
    runner = make_runner(framework, workload, size)
    with pytest.raises(CanonicalError, match="hidden.kernel"):
        runner.load(weights)


def _random_weights(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    """Every tensor random, scales and biases included, so a swapped tensor cannot hide."""
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(0.5, 1.5, shape).astype(np.float32) * rng.choice([-1, 1], shape)
            for name, shape in shapes.items()}


def test_torch_linear_weight_is_the_canonical_kernel_transposed() -> None:
    workload = builtin("mlp")
    size = workload.size("tiny")  # 1-10-1
    weights = _random_weights(canonical_shapes(workload, size), seed=0)
    runner = make_runner("torch", workload, size)
    runner.load(weights)
    state = runner.model.state_dict()
    for i in range(2):
        assert np.array_equal(state[f"layers.{i}.weight"].numpy(), weights[f"layers.{i}.kernel"].T)
        assert np.array_equal(state[f"layers.{i}.bias"].numpy(), weights[f"layers.{i}.bias"])

    batch = next(workload.batches(size, 0))
    hidden = np.maximum(batch["x"] @ weights["layers.0.kernel"] + weights["layers.0.bias"], 0.0)
    by_hand = hidden @ weights["layers.1.kernel"] + weights["layers.1.bias"]
    for framework in ("torch", "jax"):
        other = make_runner(framework, workload, size)
        other.load(weights)
        np.testing.assert_allclose(other.outputs(batch), by_hand, rtol=1e-5, atol=1e-6)


def test_layernorm_scale_and_bias_map_to_torch_weight_and_bias(ln_gelu_file: Path) -> None:
    workload = from_file(ln_gelu_file)
    size = workload.size("tiny")
    weights = _random_weights(canonical_shapes(workload, size), seed=1)
    runner = make_runner("torch", workload, size)
    runner.load(weights)
    state = runner.model.state_dict()
    assert np.array_equal(state["ln.weight"].numpy(), weights["ln.scale"])
    assert np.array_equal(state["ln.bias"].numpy(), weights["ln.bias"])
    assert np.array_equal(state["fc1.weight"].numpy(), weights["fc1.kernel"].T)

    x = next(workload.batches(size, 0))["x"].astype(np.float64)
    mean, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
    normed = (x - mean) / np.sqrt(var + 1e-5) * weights["ln.scale"] + weights["ln.bias"]
    h = normed @ weights["fc1.kernel"] + weights["fc1.bias"]
    erf = np.vectorize(math.erf)
    by_hand = (0.5 * h * (1 + erf(h / math.sqrt(2)))) @ weights["fc2.kernel"] + weights["fc2.bias"]
    for framework in ("torch", "jax"):
        other = make_runner(framework, workload, size)
        other.load(weights)
        np.testing.assert_allclose(other.outputs({"x": x.astype(np.float32)}), by_hand,
                                   rtol=1e-4, atol=1e-4)
