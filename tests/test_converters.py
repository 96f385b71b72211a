"""twinbench.converters: exact torch round trips, and outputs of Flax layers (or a NumPy GRU)
loaded from the converted weights against the torch layer's own outputs."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from torch import nn

from twinbench import converters as cv
from twinbench.canonical import CanonicalError

ATOL = 1e-5


def _randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter and buffer non-trivial (biases non-zero, b_hn included; variances > 0)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in module.named_parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        for name, b in module.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen))
    return module


def _sd(module: nn.Module, prefix: str = "") -> dict[str, np.ndarray]:
    return {f"{prefix}{k}": v.detach().numpy().copy() for k, v in module.state_dict().items()}


def _x(*shape: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ----------------------------------------------------------------------------------- round trips

ROUND_TRIPS = {
    "linear": (lambda: nn.Linear(5, 3), cv.linear_from_torch, cv.linear_to_torch),
    "linear_nobias": (
        lambda: nn.Linear(5, 3, bias=False),
        cv.linear_from_torch,
        cv.linear_to_torch,
    ),
    "conv2d": (lambda: nn.Conv2d(3, 4, (3, 2)), cv.conv2d_from_torch, cv.conv2d_to_torch),
    "conv2d_groups": (
        lambda: nn.Conv2d(4, 6, 3, groups=2),
        cv.conv2d_from_torch,
        cv.conv2d_to_torch,
    ),
    "batchnorm2d": (lambda: nn.BatchNorm2d(4), cv.batchnorm2d_from_torch, cv.batchnorm2d_to_torch),
    "layernorm": (lambda: nn.LayerNorm(6), cv.layernorm_from_torch, cv.layernorm_to_torch),
    "embedding": (lambda: nn.Embedding(11, 4), cv.embedding_from_torch, cv.embedding_to_torch),
    "lstm1": (lambda: nn.LSTM(4, 5), cv.lstm_from_torch, cv.lstm_to_torch),
    "lstm2": (lambda: nn.LSTM(4, 5, num_layers=2), cv.lstm_from_torch, cv.lstm_to_torch),
    "lstm_nobias": (lambda: nn.LSTM(4, 5, bias=False), cv.lstm_from_torch, cv.lstm_to_torch),
    "gru2": (lambda: nn.GRU(4, 5, num_layers=2), cv.gru_from_torch, cv.gru_to_torch),
    "mha": (
        lambda: nn.MultiheadAttention(8, 2),
        lambda sd, p: cv.multihead_attention_from_torch(sd, p, num_heads=2),
        cv.multihead_attention_to_torch,
    ),
    "mha_kvdim": (
        lambda: nn.MultiheadAttention(8, 4, kdim=6, vdim=5),
        lambda sd, p: cv.multihead_attention_from_torch(sd, p, num_heads=4),
        cv.multihead_attention_to_torch,
    ),
}


@pytest.mark.parametrize("kind", sorted(ROUND_TRIPS))
@pytest.mark.parametrize("prefix", ["", "block.layer"])
def test_torch_round_trip_is_bit_exact(kind: str, prefix: str) -> None:
    make, from_torch, to_torch = ROUND_TRIPS[kind]
    module = _randomize(make())
    sd = _sd(module, f"{prefix}." if prefix else "")
    canonical = from_torch(sd, prefix)
    assert all(name.startswith(prefix) for name in canonical)
    back = to_torch(canonical, prefix)
    assert set(back) == set(sd)
    for name, value in sd.items():
        assert back[name].dtype == value.dtype, name
        np.testing.assert_array_equal(back[name], value, err_msg=name)
    # the result loads into a fresh layer strictly, and torch tensors are accepted as input too
    fresh = make()
    strip = len(prefix) + 1 if prefix else 0
    fresh.load_state_dict({k[strip:]: torch.from_numpy(v) for k, v in back.items()}, strict=True)
    again = from_torch(
        {f"{prefix}.{k}" if prefix else k: v for k, v in fresh.state_dict().items()}, prefix
    )
    assert set(again) == set(canonical)
    for name in canonical:
        np.testing.assert_array_equal(again[name], canonical[name], err_msg=name)


def test_float64_keeps_dtype() -> None:
    sd = _sd(_randomize(nn.Linear(3, 2).double()))
    canonical = cv.linear_from_torch(sd)
    assert canonical["kernel"].dtype == np.float64
    assert cv.linear_to_torch(canonical)["weight"].dtype == np.float64


# -------------------------------------------------------------------- outputs against Flax layers


def test_linear_matches_nnx() -> None:
    torch_layer = _randomize(nn.Linear(5, 3))
    canonical = cv.linear_from_torch(_sd(torch_layer, "fc."), "fc")
    flax_layer = nnx.Linear(5, 3, rngs=nnx.Rngs(0))
    cv.load_nnx(flax_layer, canonical, "fc")
    x = _x(7, 5)
    expected = torch_layer(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(np.asarray(flax_layer(jnp.asarray(x))), expected, atol=ATOL)
    got = cv.from_nnx(flax_layer, "fc")
    assert set(got) == set(canonical)
    for name in got:
        np.testing.assert_array_equal(got[name], canonical[name])


def test_conv2d_matches_nnx_with_explicit_padding() -> None:
    torch_layer = _randomize(nn.Conv2d(3, 4, 3, stride=2, padding=1))
    canonical = cv.conv2d_from_torch(_sd(torch_layer))
    flax_layer = nnx.Conv(3, 4, (3, 3), strides=2, padding=((1, 1), (1, 1)), rngs=nnx.Rngs(0))
    cv.load_nnx(flax_layer, canonical)
    x = _x(2, 3, 9, 9)  # NCHW; odd size so that 'SAME' would pad differently
    expected = torch_layer(torch.from_numpy(x)).detach().numpy()
    got = np.asarray(flax_layer(jnp.asarray(x.transpose(0, 2, 3, 1)))).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, expected, atol=ATOL)


def test_layernorm_matches_nnx_with_equal_eps() -> None:
    torch_layer = _randomize(nn.LayerNorm(6, eps=1e-5))
    canonical = cv.layernorm_from_torch(_sd(torch_layer))
    flax_layer = nnx.LayerNorm(6, epsilon=1e-5, rngs=nnx.Rngs(0))
    cv.load_nnx(flax_layer, canonical)
    x = _x(4, 6)
    expected = torch_layer(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(np.asarray(flax_layer(jnp.asarray(x))), expected, atol=ATOL)


def test_embedding_matches_nnx() -> None:
    torch_layer = _randomize(nn.Embedding(11, 4))
    canonical = cv.embedding_from_torch(_sd(torch_layer))
    flax_layer = nnx.Embed(11, 4, rngs=nnx.Rngs(0))
    cv.load_nnx(flax_layer, canonical)
    ids = np.array([[0, 3, 10], [5, 5, 1]])
    expected = torch_layer(torch.from_numpy(ids)).detach().numpy()
    np.testing.assert_array_equal(np.asarray(flax_layer(jnp.asarray(ids))), expected)


def _batchnorm_pair() -> tuple[nn.BatchNorm2d, nnx.BatchNorm]:
    torch_layer = _randomize(nn.BatchNorm2d(4, momentum=0.1, eps=1e-5))
    flax_layer = nnx.BatchNorm(
        4, momentum=cv.flax_batchnorm_momentum(0.1), epsilon=1e-5, rngs=nnx.Rngs(0)
    )
    cv.load_nnx(flax_layer, cv.batchnorm2d_from_torch(_sd(torch_layer, "bn."), "bn"), "bn")
    return torch_layer, flax_layer


def test_batchnorm_eval_matches_nnx_with_same_running_stats() -> None:
    torch_layer, flax_layer = _batchnorm_pair()
    torch_layer.eval()
    x = _x(3, 4, 5, 5)
    expected = torch_layer(torch.from_numpy(x)).detach().numpy()
    got = flax_layer(jnp.asarray(x.transpose(0, 2, 3, 1)), use_running_average=True)
    np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), expected, atol=ATOL)


def test_batchnorm_train_outputs_match_and_running_var_differs_by_bessel() -> None:
    torch_layer, flax_layer = _batchnorm_pair()
    old = cv.from_nnx(flax_layer)
    torch_layer.train()
    x = _x(3, 4, 5, 5, seed=7) * 2 + 1
    expected = torch_layer(torch.from_numpy(x)).detach().numpy()
    x_nhwc = x.transpose(0, 2, 3, 1)
    got = flax_layer(jnp.asarray(x_nhwc), use_running_average=False)
    np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), expected, atol=ATOL)

    new = cv.from_nnx(flax_layer)
    torch_stats = cv.batchnorm2d_from_torch(_sd(torch_layer))
    np.testing.assert_allclose(new["mean"], torch_stats["mean"], atol=ATOL)
    # the documented difference: torch's running var uses the unbiased batch variance
    assert not np.allclose(new["var"], torch_stats["var"], atol=1e-3)
    n = 3 * 5 * 5
    biased = x_nhwc.reshape(-1, 4).astype(np.float64).var(axis=0)
    np.testing.assert_allclose(
        torch_stats["var"] - new["var"], 0.1 * (n / (n - 1) - 1) * biased, atol=ATOL
    )
    # and the NumPy reference update reproduces each framework's rule
    for unbiased, target in ((True, torch_stats), (False, new)):
        mean, var = cv.batchnorm_running_update(
            old["mean"], old["var"], x_nhwc, torch_momentum=0.1, unbiased=unbiased
        )
        np.testing.assert_allclose(mean, target["mean"], atol=ATOL)
        np.testing.assert_allclose(var, target["var"], atol=ATOL)


def _run_flax_lstm(cells: list[nnx.Module], x: np.ndarray) -> tuple[np.ndarray, list, list]:
    seq = jnp.asarray(x)  # (batch, time, features)
    hs, cs = [], []
    for cell in cells:
        hidden = cell.hidden_features
        carry = (jnp.zeros((x.shape[0], hidden)), jnp.zeros((x.shape[0], hidden)))
        outs = []
        for t in range(seq.shape[1]):
            carry, y = cell(carry, seq[:, t])
            outs.append(y)
        seq = jnp.stack(outs, axis=1)
        cs.append(np.asarray(carry[0]))
        hs.append(np.asarray(carry[1]))
    return np.asarray(seq), hs, cs


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("cell", ["optimized", "lstm"])
def test_lstm_matches_flax_cells(num_layers: int, cell: str) -> None:
    torch_layer = _randomize(nn.LSTM(4, 5, num_layers=num_layers, batch_first=True))
    canonical = cv.lstm_from_torch(_sd(torch_layer, "rnn."), "rnn")
    assert canonical["rnn.0.dense_i.kernel"].shape == (4, 20)
    assert canonical["rnn.0.dense_h.kernel"].shape == (5, 20)
    cls = nnx.OptimizedLSTMCell if cell == "optimized" else nnx.LSTMCell
    cells = []
    for k in range(num_layers):
        flax_cell = cls(4 if k == 0 else 5, 5, rngs=nnx.Rngs(0))
        cv.load_nnx(flax_cell, cv.lstm_cell_weights(canonical, "rnn", k, cell=cell))
        cells.append(flax_cell)
    x = _x(2, 6, 4)
    out, (h, c) = torch_layer(torch.from_numpy(x))
    got, hs, cs = _run_flax_lstm(cells, x)
    np.testing.assert_allclose(got, out.detach().numpy(), atol=ATOL)
    np.testing.assert_allclose(np.stack(hs), h.detach().numpy(), atol=ATOL)
    np.testing.assert_allclose(np.stack(cs), c.detach().numpy(), atol=ATOL)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _numpy_gru(canonical: dict[str, np.ndarray], prefix: str, x: np.ndarray) -> np.ndarray:
    """Reference GRU straight from torch's equations, reading the canonical layout."""
    seq = x.astype(np.float64)
    k = 0
    while f"{prefix}.{k}.dense_i.kernel" in canonical:
        w_i = canonical[f"{prefix}.{k}.dense_i.kernel"].astype(np.float64)
        w_h = canonical[f"{prefix}.{k}.dense_h.kernel"].astype(np.float64)
        b_i = canonical[f"{prefix}.{k}.dense_i.bias"].astype(np.float64)
        b_h = canonical[f"{prefix}.{k}.dense_h.bias"].astype(np.float64)
        hidden = w_h.shape[0]
        h = np.zeros((x.shape[0], hidden))
        outs = []
        for t in range(seq.shape[1]):
            gi = seq[:, t] @ w_i + b_i
            gh = h @ w_h + b_h
            r = _sigmoid(gi[:, :hidden] + gh[:, :hidden])
            z = _sigmoid(gi[:, hidden : 2 * hidden] + gh[:, hidden : 2 * hidden])
            n = np.tanh(gi[:, 2 * hidden :] + r * gh[:, 2 * hidden :])
            h = (1 - z) * n + z * h
            outs.append(h)
        seq = np.stack(outs, axis=1)
        k += 1
    return seq


def test_gru_with_nonzero_b_hn_matches_numpy_reference() -> None:
    torch_layer = _randomize(nn.GRU(4, 5, num_layers=2, batch_first=True))
    assert np.abs(torch_layer.bias_hh_l0.detach().numpy()[10:]).min() > 0  # b_hn non-zero
    canonical = cv.gru_from_torch(_sd(torch_layer, "gru."), "gru")
    x = _x(3, 6, 4)
    expected = torch_layer(torch.from_numpy(x))[0].detach().numpy()
    np.testing.assert_allclose(_numpy_gru(canonical, "gru", x), expected, atol=ATOL)
    # nnx.GRUCell cannot hold b_hn: refused, naming the tensor
    with pytest.raises(CanonicalError, match=r"gru\.0\.dense_h\.bias"):
        cv.gru_cell_weights(canonical, "gru", 0)


def test_gru_with_zero_b_hn_matches_nnx_gru_cell() -> None:
    torch_layer = _randomize(nn.GRU(4, 5, batch_first=True))
    with torch.no_grad():
        torch_layer.bias_hh_l0[10:] = 0
    canonical = cv.gru_from_torch(_sd(torch_layer))
    flax_cell = nnx.GRUCell(4, 5, rngs=nnx.Rngs(0))
    cv.load_nnx(flax_cell, cv.gru_cell_weights(canonical))
    x = _x(2, 5, 4)
    expected = torch_layer(torch.from_numpy(x))[0].detach().numpy()
    h = jnp.zeros((2, 5))
    outs = []
    for t in range(x.shape[1]):
        h, y = flax_cell(h, jnp.asarray(x[:, t]))
        outs.append(np.asarray(y))
    np.testing.assert_allclose(np.stack(outs, axis=1), expected, atol=ATOL)


@pytest.mark.parametrize("kv_dims", [None, (6, 6)])
def test_multihead_attention_matches_nnx(kv_dims: tuple[int, int] | None) -> None:
    embed, heads = 8, 2
    kdim, vdim = kv_dims or (embed, embed)
    torch_layer = _randomize(
        nn.MultiheadAttention(embed, heads, kdim=kdim, vdim=vdim, batch_first=True)
    )
    torch_layer.eval()
    canonical = cv.multihead_attention_from_torch(
        _sd(torch_layer, "attn."), "attn", num_heads=heads
    )
    assert canonical["attn.query.kernel"].shape == (embed, heads, embed // heads)
    assert canonical["attn.out.kernel"].shape == (heads, embed // heads, embed)
    flax_layer = nnx.MultiHeadAttention(
        num_heads=heads,
        in_features=embed,
        in_kv_features=kdim,
        qkv_features=embed,
        out_features=embed,
        decode=False,
        rngs=nnx.Rngs(0),
    )
    cv.load_nnx(flax_layer, canonical, "attn")
    q, kv = _x(2, 3, embed, seed=2), _x(2, 4, kdim, seed=3)
    with torch.no_grad():
        expected, _ = torch_layer(
            torch.from_numpy(q), torch.from_numpy(kv), torch.from_numpy(kv), need_weights=False
        )
    got = flax_layer(jnp.asarray(q), jnp.asarray(kv), jnp.asarray(kv), deterministic=True)
    np.testing.assert_allclose(np.asarray(got), expected.numpy(), atol=ATOL)


# ------------------------------------------------------------------------------- shape checking


@pytest.mark.parametrize(
    ("call", "bad_name"),
    [
        (lambda: cv.linear_from_torch({"fc.weight": np.zeros((3, 4, 1))}, "fc"), "fc.weight"),
        (
            lambda: cv.linear_from_torch(
                {"fc.weight": np.zeros((3, 4)), "fc.bias": np.zeros(4)}, "fc"
            ),
            "fc.bias",
        ),
        (lambda: cv.linear_to_torch({"kernel": np.zeros(3)}), "kernel"),
        (lambda: cv.conv2d_to_torch({"c.kernel": np.zeros((3, 3, 2))}, "c"), "c.kernel"),
        (
            lambda: cv.batchnorm2d_from_torch(
                {"bn.running_mean": np.zeros(4), "bn.running_var": np.ones(3)}, "bn"
            ),
            "bn.running_var",
        ),
        (
            lambda: cv.batchnorm2d_from_torch({"bn.running_var": np.ones(3)}, "bn"),
            "bn.running_mean",
        ),
        (
            lambda: cv.layernorm_to_torch({"scale": np.ones(4), "bias": np.ones(5)}),
            "bias",
        ),
        (lambda: cv.embedding_to_torch({"embedding": np.ones(5)}), "embedding"),
        (
            lambda: cv.lstm_from_torch(
                {"weight_ih_l0": np.zeros((20, 4)), "weight_hh_l0": np.zeros((16, 5))}
            ),
            "weight_hh_l0",
        ),
        (
            lambda: cv.gru_to_torch(
                {
                    "g.0.dense_i.kernel": np.zeros((4, 15)),
                    "g.0.dense_h.kernel": np.zeros((5, 15)),
                    "g.0.dense_h.bias": np.zeros(12),
                },
                "g",
            ),
            "g.0.dense_h.bias",
        ),
        (
            lambda: cv.multihead_attention_from_torch(
                {"in_proj_weight": np.zeros((24, 7)), "out_proj.weight": np.zeros((8, 8))},
                num_heads=2,
            ),
            "in_proj_weight",
        ),
        (
            lambda: cv.multihead_attention_from_torch(
                {"in_proj_weight": np.zeros((24, 8)), "out_proj.weight": np.zeros((8, 8))},
                num_heads=3,
            ),
            "out_proj.weight",
        ),
    ],
)
def test_wrong_shape_raises_naming_the_tensor(call, bad_name: str) -> None:
    with pytest.raises(CanonicalError, match=f"'{bad_name}'"):
        call()


def test_load_nnx_checks_names_and_shapes() -> None:
    layer = nnx.BatchNorm(4, rngs=nnx.Rngs(0))
    good = {"bn.scale": np.ones(4), "bn.bias": np.zeros(4), "bn.mean": np.zeros(4)}
    with pytest.raises(CanonicalError, match="'bn.var'"):
        cv.load_nnx(layer, good, "bn")  # missing
    with pytest.raises(CanonicalError, match="'bn.var'"):
        cv.load_nnx(layer, {**good, "bn.var": np.ones(5)}, "bn")  # mis-shaped
    with pytest.raises(CanonicalError, match="'bn.extra'"):
        cv.load_nnx(layer, {**good, "bn.var": np.ones(4), "bn.extra": np.ones(1)}, "bn")
    # tensors of other layers are ignored; the state is untouched by the failed loads
    np.testing.assert_array_equal(cv.from_nnx(layer)["var"], np.ones(4))
    cv.load_nnx(layer, {**good, "bn.var": np.full(4, 2.0), "other.kernel": np.ones(2)}, "bn")
    assert cv.from_nnx(layer, "bn")["bn.var"].tolist() == [2.0] * 4


def test_unsupported_torch_features_are_refused() -> None:
    sd = _sd(nn.LSTM(3, 4, bidirectional=True))
    with pytest.raises(CanonicalError, match="weight_ih_l0_reverse"):
        cv.lstm_from_torch(sd)
    sd = _sd(nn.MultiheadAttention(8, 2, add_bias_kv=True))
    with pytest.raises(CanonicalError, match="bias_k"):
        cv.multihead_attention_from_torch(sd, num_heads=2)
    assert cv.flax_batchnorm_momentum(0.1) == pytest.approx(0.9)
