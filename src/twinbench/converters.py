"""Layer converters: a PyTorch ``state_dict`` ⇄ canonical weights ⇄ a Flax NNX layer's state.

`twinbench.backends.torch_backend` converts whole twins whose modules carry canonical names. This
module is for the other case: porting weights that already exist as a torch ``state_dict`` (a
plain mapping of tensors or NumPy arrays, keyed like ``"bn1.running_var"``), one layer at a time,
and loading canonical weights into Flax NNX layers that do not hold them one-to-one (recurrent
cells). Every function checks shapes and raises `twinbench.canonical.CanonicalError` naming the
missing or mis-shaped tensor. Conversions are pure layout changes (transposes, reshapes), never
arithmetic, so ``*_to_torch(*_from_torch(sd))`` gives back ``sd``'s tensors bit for bit, in their
own dtype. Only the ``*_cell_weights`` helpers, which feed Flax's recurrent cells, add biases.

Canonical names are ``prefix + "." + leaf`` (just ``leaf`` when the prefix is empty); the torch
prefix and the canonical prefix are the same string.

======================  ==========================================  ===========================
layer kind              PyTorch ``state_dict`` (under prefix)       canonical (under prefix)
======================  ==========================================  ===========================
Linear                  ``weight (out, in)``, ``bias (out,)``       ``kernel (in, out)``,
                                                                    ``bias (out,)``
Conv2d                  ``weight (out, in/groups, H, W)``, bias     ``kernel (H, W, in/groups,
                                                                    out)``, ``bias``
BatchNorm1d/2d/3d       ``weight``, ``bias``, ``running_mean``,     ``scale``, ``bias``,
                        ``running_var``, ``num_batches_tracked``    ``mean``, ``var`` (all (C,))
LayerNorm               ``weight``, ``bias`` (normalized_shape)     ``scale``, ``bias``
Embedding               ``weight (vocab, d)``                       ``embedding (vocab, d)``
LSTM, layer k           ``weight_ih_lk (4H, in)``,                  ``k.dense_i.kernel (in, 4H)``,
(gates i, f, g, o)      ``weight_hh_lk (4H, H)``,                   ``k.dense_h.kernel (H, 4H)``,
                        ``bias_ih_lk (4H,)``, ``bias_hh_lk (4H,)``  ``k.dense_i.bias (4H,)``,
                                                                    ``k.dense_h.bias (4H,)``
GRU, layer k            as LSTM with 3H (gates r, z, n);            as LSTM with 3H; the last H
(gates r, z, n)         ``b_hn`` is ``bias_hh_lk[2H:]``             of ``k.dense_h.bias`` is
                                                                    ``b_hn``
MultiheadAttention      ``in_proj_weight (3E, E)`` (or              ``query|key|value.kernel
(E = heads·head_dim)    ``q|k|v_proj_weight (E, E_in)``),           (E_in, heads, head_dim)``,
                        ``in_proj_bias (3E,)``,                     ``query|key|value.bias
                        ``out_proj.weight (E, E)``,                 (heads, head_dim)``,
                        ``out_proj.bias (E,)``                      ``out.kernel (heads,
                                                                    head_dim, E)``, ``out.bias``
======================  ==========================================  ===========================

Notes on the choices:

* Linear, Conv2d, LayerNorm, Embedding and MultiheadAttention canonical names and shapes are those
  of ``nnx.Linear``, ``nnx.Conv``, ``nnx.LayerNorm``, ``nnx.Embed`` and ``nnx.MultiHeadAttention``
  (``in_features=E, qkv_features=E, out_features=E``), so `load_nnx` loads them directly. Torch
  splits the projected ``E`` head-major (``view(..., heads, head_dim)``), the same order as
  Flax's ``(heads, head_dim)`` axes, so the reshape needs no transpose. Both scale by
  ``1/sqrt(head_dim)``. LayerNorm's eps differs (torch 1e-5, Flax 1e-6): set it explicitly.
* **BatchNorm.** Canonical ``var`` is *the running variance exactly as the layer normalises with it
  in eval mode*, copied verbatim in both directions — it is neither rescaled to "biased" nor to
  "unbiased". A rescale could not be right: torch's ``running_var`` is an exponential average of
  unbiased batch variances taken with batch sizes that the ``state_dict`` does not record, and an
  eval-mode twin must normalise with the very same numbers to agree. So weights ported from torch
  carry torch's (unbiased) convention, and ``nnx.BatchNorm(use_running_average=True)`` loaded with
  them gives torch's eval output. In train mode both frameworks normalise with the *biased* batch
  variance, so outputs agree; only the running update differs:

  - momentum: torch ``new = (1-m)·old + m·batch`` with ``m = 0.1``; Flax
    ``new = m'·old + (1-m')·batch``, so pass ``momentum=flax_batchnorm_momentum(0.1)`` (= 0.9;
    Flax's default is 0.99).
  - variance: torch feeds the *unbiased* batch variance (``n/(n-1)`` times the biased one,
    ``n = N·H·W`` elements per channel) into its running var, Flax the biased one. After one step
    the two running vars differ by ``m·(n/(n-1) - 1)·biased_batch_var``. A JAX twin that must
    match torch's running var therefore updates it itself (see `batchnorm_running_update`) instead
    of relying on ``nnx.BatchNorm``'s update; the running means always agree.

  ``num_batches_tracked`` is dropped (only used when torch's ``momentum=None``) and re-emitted by
  `batchnorm2d_to_torch` (default 0) so that ``load_state_dict(strict=True)`` accepts the result.
* **LSTM/GRU.** Both torch biases are kept (``dense_i.bias`` = ``b_ih``, ``dense_h.bias`` =
  ``b_hh``) so the round trip is exact; torch's gate order is kept along the last axis, which
  is also ``nnx.OptimizedLSTMCell``'s and ``nnx.GRUCell``'s order. Flax's cells hold fewer
  biases, so `lstm_cell_weights` / `gru_cell_weights` build a cell's state from the canonical
  layer (summing biases). ``nnx.GRUCell`` has no hidden bias at all, so it cannot express a
  non-zero ``b_hn`` (``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``): `gru_cell_weights`
  refuses one unless told to drop it; a faithful JAX twin writes its own GRU cell using the
  canonical ``dense_h.bias``. Bidirectional layers and LSTM ``proj_size`` are refused.

Usage — port a torch ``state_dict`` and load it into Flax layers::

    from twinbench import converters as cv

    sd = torch_model.state_dict()
    canonical = {}
    canonical |= cv.conv2d_from_torch(sd, "conv1")
    canonical |= cv.batchnorm2d_from_torch(sd, "bn1")
    canonical |= cv.linear_from_torch(sd, "fc")

    cv.load_nnx(jax_model.conv1, canonical, "conv1")          # Params and BatchStats
    cv.load_nnx(jax_model.bn1, canonical, "bn1")
    back = cv.linear_to_torch(canonical, "fc")                # {"fc.weight": ..., "fc.bias": ...}

    lstm = cv.lstm_from_torch(sd, "rnn")                      # "rnn.0.dense_i.kernel", ...
    cv.load_nnx(cell0, cv.lstm_cell_weights(lstm, "rnn", 0))  # an nnx.OptimizedLSTMCell
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from twinbench.canonical import Canonical, CanonicalError

__all__ = [
    "batchnorm2d_from_torch",
    "batchnorm2d_to_torch",
    "batchnorm_running_update",
    "conv2d_from_torch",
    "conv2d_to_torch",
    "embedding_from_torch",
    "embedding_to_torch",
    "flax_batchnorm_momentum",
    "from_nnx",
    "gru_cell_weights",
    "gru_from_torch",
    "gru_to_torch",
    "layernorm_from_torch",
    "layernorm_to_torch",
    "linear_from_torch",
    "linear_to_torch",
    "load_nnx",
    "lstm_cell_weights",
    "lstm_from_torch",
    "lstm_to_torch",
    "multihead_attention_from_torch",
    "multihead_attention_to_torch",
]

Shape = Sequence[int | None]  # None: any size


# --------------------------------------------------------------------------------------- helpers


def _join(prefix: str, leaf: str) -> str:
    return f"{prefix}.{leaf}" if prefix else leaf


def _as_numpy(value: Any) -> np.ndarray:
    """A tensor (torch, JAX or NumPy) as a NumPy array of its own dtype (bfloat16 → float32)."""
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch
        value = value.detach().cpu()
        try:
            return value.numpy()
        except TypeError:  # bfloat16 and other dtypes NumPy lacks
            return value.float().numpy()
    return np.asarray(value)


def _fmt(shape: Shape) -> str:
    inner = ", ".join("*" if s is None else str(s) for s in shape)
    return f"({inner},)" if len(shape) == 1 else f"({inner})"


def _check(name: str, array: np.ndarray, shape: Shape) -> np.ndarray:
    got = tuple(array.shape)
    fits = len(got) == len(shape) and all(
        e is None or e == g for e, g in zip(shape, got, strict=True)
    )
    if not fits:
        raise CanonicalError(f"tensor '{name}' has shape {got}, expected {_fmt(shape)}")
    return array


def _get(weights: Mapping[str, Any], name: str, shape: Shape) -> np.ndarray:
    if name not in weights:
        raise CanonicalError(f"missing tensor '{name}'")
    return _check(name, _as_numpy(weights[name]), shape)


def _maybe(weights: Mapping[str, Any], name: str, shape: Shape) -> np.ndarray | None:
    return _get(weights, name, shape) if name in weights else None


def _out(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array).copy()


def _refuse(weights: Mapping[str, Any], names: Sequence[str], why: str) -> None:
    for name in names:
        if name in weights:
            raise CanonicalError(f"tensor '{name}': {why} is not supported")


# ---------------------------------------------------------------------------- Linear and Conv2d


def linear_from_torch(sd: Mapping[str, Any], prefix: str = "") -> Canonical:
    """``nn.Linear`` ``weight (out, in)`` / ``bias`` → canonical ``kernel (in, out)`` / ``bias``."""
    weight = _get(sd, _join(prefix, "weight"), (None, None))
    out: Canonical = {_join(prefix, "kernel"): _out(weight.T)}
    bias = _maybe(sd, _join(prefix, "bias"), (weight.shape[0],))
    if bias is not None:
        out[_join(prefix, "bias")] = _out(bias)
    return out


def linear_to_torch(canonical: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Canonical ``kernel (in, out)`` / ``bias`` → ``nn.Linear`` ``weight (out, in)`` / ``bias``."""
    kernel = _get(canonical, _join(prefix, "kernel"), (None, None))
    out = {_join(prefix, "weight"): _out(kernel.T)}
    bias = _maybe(canonical, _join(prefix, "bias"), (kernel.shape[1],))
    if bias is not None:
        out[_join(prefix, "bias")] = _out(bias)
    return out


def conv2d_from_torch(sd: Mapping[str, Any], prefix: str = "") -> Canonical:
    """``nn.Conv2d`` ``weight (out, in/groups, H, W)`` → canonical ``kernel (H, W, in/groups,
    out)``.

    Only weights move; padding, stride and the NCHW/NHWC activation layout are the twins' business
    (pass explicit padding to ``nnx.Conv``, see PARITY.md).
    """
    weight = _get(sd, _join(prefix, "weight"), (None, None, None, None))
    out: Canonical = {_join(prefix, "kernel"): _out(weight.transpose(2, 3, 1, 0))}
    bias = _maybe(sd, _join(prefix, "bias"), (weight.shape[0],))
    if bias is not None:
        out[_join(prefix, "bias")] = _out(bias)
    return out


def conv2d_to_torch(canonical: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Canonical ``kernel (H, W, in/groups, out)`` → ``nn.Conv2d`` ``weight (out, in/groups,
    H, W)``."""
    kernel = _get(canonical, _join(prefix, "kernel"), (None, None, None, None))
    out = {_join(prefix, "weight"): _out(kernel.transpose(3, 2, 0, 1))}
    bias = _maybe(canonical, _join(prefix, "bias"), (kernel.shape[3],))
    if bias is not None:
        out[_join(prefix, "bias")] = _out(bias)
    return out


# ----------------------------------------------------------------------------------- BatchNorm


def batchnorm2d_from_torch(sd: Mapping[str, Any], prefix: str = "") -> Canonical:
    """``nn.BatchNorm{1,2,3}d`` → canonical ``scale``, ``bias``, ``mean``, ``var`` (each (C,)).

    ``var`` is ``running_var`` verbatim — the variance eval mode normalises with (torch's unbiased
    running estimate); see the module docstring. ``scale``/``bias`` are absent when the layer was
    built with ``affine=False``; ``num_batches_tracked`` is dropped.
    """
    mean = _get(sd, _join(prefix, "running_mean"), (None,))
    channels = mean.shape[0]
    out: Canonical = {
        _join(prefix, "mean"): _out(mean),
        _join(prefix, "var"): _out(_get(sd, _join(prefix, "running_var"), (channels,))),
    }
    for torch_leaf, leaf in (("weight", "scale"), ("bias", "bias")):
        value = _maybe(sd, _join(prefix, torch_leaf), (channels,))
        if value is not None:
            out[_join(prefix, leaf)] = _out(value)
    return out


def batchnorm2d_to_torch(
    canonical: Mapping[str, Any], prefix: str = "", *, num_batches_tracked: int = 0
) -> dict[str, np.ndarray]:
    """Canonical ``scale``/``bias``/``mean``/``var`` → a BatchNorm ``state_dict`` (strict-loadable).

    ``num_batches_tracked`` (an int64 scalar) is not part of canonical weights; pass it if the
    torch layer uses ``momentum=None`` (cumulative averaging).
    """
    mean = _get(canonical, _join(prefix, "mean"), (None,))
    channels = mean.shape[0]
    out: dict[str, np.ndarray] = {}
    for leaf, torch_leaf in (("scale", "weight"), ("bias", "bias")):
        value = _maybe(canonical, _join(prefix, leaf), (channels,))
        if value is not None:
            out[_join(prefix, torch_leaf)] = _out(value)
    out[_join(prefix, "running_mean")] = _out(mean)
    out[_join(prefix, "running_var")] = _out(_get(canonical, _join(prefix, "var"), (channels,)))
    out[_join(prefix, "num_batches_tracked")] = np.array(num_batches_tracked, dtype=np.int64)
    return out


def flax_batchnorm_momentum(torch_momentum: float = 0.1) -> float:
    """The ``nnx.BatchNorm`` momentum equivalent to torch's: ``1 - torch_momentum`` (0.1 → 0.9).

    torch's ``momentum=None`` (cumulative average) has no Flax equivalent and raises ValueError.
    """
    if torch_momentum is None:
        raise ValueError("torch momentum=None (cumulative average) has no Flax equivalent")
    return 1.0 - float(torch_momentum)


def batchnorm_running_update(
    mean: np.ndarray,
    var: np.ndarray,
    x: np.ndarray,
    *,
    torch_momentum: float = 0.1,
    channel_axis: int = -1,
    unbiased: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """One train-mode update of running ``(mean, var)`` from batch ``x``, in NumPy.

    ``unbiased=True`` is torch's rule (batch variance times ``n/(n-1)``, ``n`` = elements per
    channel); ``unbiased=False`` is ``nnx.BatchNorm``'s. A JAX twin matching torch's running stats
    applies the torch rule (it is plain array arithmetic, the same in ``jax.numpy``).
    """
    axes = tuple(a for a in range(x.ndim) if a != channel_axis % x.ndim)
    n = int(np.prod([x.shape[a] for a in axes]))
    batch_mean = x.mean(axis=axes)
    batch_var = x.var(axis=axes)
    if unbiased:
        batch_var = batch_var * (n / max(n - 1, 1))
    m = torch_momentum
    return (1 - m) * mean + m * batch_mean, (1 - m) * var + m * batch_var


# ------------------------------------------------------------------------ LayerNorm, Embedding


def layernorm_from_torch(sd: Mapping[str, Any], prefix: str = "") -> Canonical:
    """``nn.LayerNorm`` ``weight``/``bias`` → canonical ``scale``/``bias`` (same shape).

    eps is not a weight: torch defaults to 1e-5, ``nnx.LayerNorm`` to 1e-6 — set it on both.
    """
    weight_name, bias_name = _join(prefix, "weight"), _join(prefix, "bias")
    if weight_name not in sd and bias_name not in sd:
        raise CanonicalError(f"missing tensor '{weight_name}'")
    out: Canonical = {}
    weight = None
    if weight_name in sd:
        weight = _as_numpy(sd[weight_name])
        out[_join(prefix, "scale")] = _out(weight)
    if bias_name in sd:
        bias = _as_numpy(sd[bias_name])
        if weight is not None:
            _check(bias_name, bias, weight.shape)
        out[bias_name] = _out(bias)
    return out


def layernorm_to_torch(canonical: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Canonical ``scale``/``bias`` → ``nn.LayerNorm`` ``weight``/``bias``."""
    scale_name, bias_name = _join(prefix, "scale"), _join(prefix, "bias")
    if scale_name not in canonical and bias_name not in canonical:
        raise CanonicalError(f"missing tensor '{scale_name}'")
    out: dict[str, np.ndarray] = {}
    scale = None
    if scale_name in canonical:
        scale = _as_numpy(canonical[scale_name])
        out[_join(prefix, "weight")] = _out(scale)
    if bias_name in canonical:
        bias = _as_numpy(canonical[bias_name])
        if scale is not None:
            _check(bias_name, bias, scale.shape)
        out[bias_name] = _out(bias)
    return out


def embedding_from_torch(sd: Mapping[str, Any], prefix: str = "") -> Canonical:
    """``nn.Embedding`` ``weight (vocab, d)`` → canonical ``embedding (vocab, d)``."""
    return {_join(prefix, "embedding"): _out(_get(sd, _join(prefix, "weight"), (None, None)))}


def embedding_to_torch(canonical: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Canonical ``embedding (vocab, d)`` → ``nn.Embedding`` ``weight (vocab, d)``."""
    embedding = _get(canonical, _join(prefix, "embedding"), (None, None))
    return {_join(prefix, "weight"): _out(embedding)}


# ------------------------------------------------------------------------------------ LSTM, GRU


def _rnn_from_torch(sd: Mapping[str, Any], prefix: str, gates: int, kind: str) -> Canonical:
    if _join(prefix, "weight_ih_l0") not in sd:
        raise CanonicalError(f"missing tensor '{_join(prefix, 'weight_ih_l0')}'")
    out: Canonical = {}
    layer = 0
    while _join(prefix, f"weight_ih_l{layer}") in sd:
        suffix = f"_l{layer}"
        _refuse(sd, [_join(prefix, f"weight_ih{suffix}_reverse")], f"bidirectional {kind}")
        _refuse(sd, [_join(prefix, f"weight_hr{suffix}")], "LSTM proj_size")
        w_hh = _get(sd, _join(prefix, f"weight_hh{suffix}"), (None, None))
        hidden = w_hh.shape[1]
        _check(_join(prefix, f"weight_hh{suffix}"), w_hh, (gates * hidden, hidden))
        w_ih = _get(sd, _join(prefix, f"weight_ih{suffix}"), (gates * hidden, None))
        base = _join(prefix, str(layer))
        out[f"{base}.dense_i.kernel"] = _out(w_ih.T)
        out[f"{base}.dense_h.kernel"] = _out(w_hh.T)
        for torch_leaf, dense in (("bias_ih", "dense_i"), ("bias_hh", "dense_h")):
            bias = _maybe(sd, _join(prefix, f"{torch_leaf}{suffix}"), (gates * hidden,))
            if bias is not None:
                out[f"{base}.{dense}.bias"] = _out(bias)
        layer += 1
    return out


def _rnn_to_torch(canonical: Mapping[str, Any], prefix: str, gates: int) -> dict[str, np.ndarray]:
    first = _join(prefix, "0.dense_i.kernel")
    if first not in canonical:
        raise CanonicalError(f"missing tensor '{first}'")
    out: dict[str, np.ndarray] = {}
    layer = 0
    while _join(prefix, f"{layer}.dense_i.kernel") in canonical:
        base, suffix = _join(prefix, str(layer)), f"_l{layer}"
        k_hh = _get(canonical, f"{base}.dense_h.kernel", (None, None))
        hidden = k_hh.shape[0]
        _check(f"{base}.dense_h.kernel", k_hh, (hidden, gates * hidden))
        k_ih = _get(canonical, f"{base}.dense_i.kernel", (None, gates * hidden))
        out[_join(prefix, f"weight_ih{suffix}")] = _out(k_ih.T)
        out[_join(prefix, f"weight_hh{suffix}")] = _out(k_hh.T)
        for dense, torch_leaf in (("dense_i", "bias_ih"), ("dense_h", "bias_hh")):
            bias = _maybe(canonical, f"{base}.{dense}.bias", (gates * hidden,))
            if bias is not None:
                out[_join(prefix, f"{torch_leaf}{suffix}")] = _out(bias)
        layer += 1
    return out


def lstm_from_torch(sd: Mapping[str, Any], prefix: str = "") -> Canonical:
    """``nn.LSTM`` (any ``num_layers``, unidirectional) → canonical, per layer ``k``:
    ``k.dense_i.kernel (in, 4H)``, ``k.dense_h.kernel (H, 4H)``, ``k.dense_i.bias`` (= ``b_ih``),
    ``k.dense_h.bias`` (= ``b_hh``); gates i, f, g, o along the last axis, as in torch."""
    return _rnn_from_torch(sd, prefix, 4, "LSTM")


def lstm_to_torch(canonical: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Canonical LSTM layers ``0, 1, ...`` → ``nn.LSTM`` ``weight_ih_lk``, ... (exact inverse)."""
    return _rnn_to_torch(canonical, prefix, 4)


def gru_from_torch(sd: Mapping[str, Any], prefix: str = "") -> Canonical:
    """``nn.GRU`` → canonical, laid out as `lstm_from_torch` with 3H (gates r, z, n); ``b_hn`` is
    kept as the last H entries of ``k.dense_h.bias``."""
    return _rnn_from_torch(sd, prefix, 3, "GRU")


def gru_to_torch(canonical: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Canonical GRU layers → ``nn.GRU`` ``weight_ih_lk``, ... (exact inverse)."""
    return _rnn_to_torch(canonical, prefix, 3)


def _rnn_layer(
    canonical: Mapping[str, Any], prefix: str, layer: int, gates: int
) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    base = _join(prefix, str(layer))
    k_hh = _get(canonical, f"{base}.dense_h.kernel", (None, None))
    hidden = k_hh.shape[0]
    _check(f"{base}.dense_h.kernel", k_hh, (hidden, gates * hidden))
    k_ih = _get(canonical, f"{base}.dense_i.kernel", (None, gates * hidden))
    zeros = np.zeros(gates * hidden, dtype=k_ih.dtype)
    b_i = _maybe(canonical, f"{base}.dense_i.bias", (gates * hidden,))
    b_h = _maybe(canonical, f"{base}.dense_h.bias", (gates * hidden,))
    return (
        base,
        k_ih,
        k_hh,
        zeros if b_i is None else b_i,
        zeros if b_h is None else b_h,
        hidden,
    )


def lstm_cell_weights(
    canonical: Mapping[str, Any], prefix: str = "", layer: int = 0, *, cell: str = "optimized"
) -> Canonical:
    """The state of a Flax LSTM cell for canonical layer ``layer``, for `load_nnx` (no prefix).

    ``cell="optimized"``: ``nnx.OptimizedLSTMCell`` — ``dense_i.kernel``, ``dense_h.kernel`` and
    ``dense_h.bias = b_ih + b_hh`` (Flax has one bias). ``cell="lstm"``: ``nnx.LSTMCell`` — per
    gate ``ii|if_|ig|io.kernel`` and ``hi|hf|hg|ho.kernel``/``.bias``. Summing the biases is the
    one place a conversion rounds; the cell's output then differs from torch's by rounding only.
    """
    _, k_ih, k_hh, b_i, b_h, hidden = _rnn_layer(canonical, prefix, layer, 4)
    bias = b_i + b_h
    if cell == "optimized":
        return {
            "dense_i.kernel": _out(k_ih),
            "dense_h.kernel": _out(k_hh),
            "dense_h.bias": _out(bias),
        }
    if cell != "lstm":
        raise ValueError(f"cell must be 'optimized' or 'lstm', not {cell!r}")
    out: Canonical = {}
    for g, name in enumerate(("i", "f", "g", "o")):
        cols = slice(g * hidden, (g + 1) * hidden)
        out[f"i{name}_.kernel" if name == "f" else f"i{name}.kernel"] = _out(k_ih[:, cols])
        out[f"h{name}.kernel"] = _out(k_hh[:, cols])
        out[f"h{name}.bias"] = _out(bias[cols])
    return out


def gru_cell_weights(
    canonical: Mapping[str, Any], prefix: str = "", layer: int = 0, *, drop_b_hn: bool = False
) -> Canonical:
    """The state of an ``nnx.GRUCell`` for canonical GRU layer ``layer``, for `load_nnx`.

    ``dense_i.bias = b_ih + [b_hr, b_hz, 0]``; ``nnx.GRUCell`` has no place for ``b_hn`` (it sits
    inside ``r ⊙ (W_hn h + b_hn)``), so a non-zero ``b_hn`` raises `CanonicalError` naming the
    tensor, unless ``drop_b_hn=True`` — then the cell computes a different GRU.
    """
    base, k_ih, k_hh, b_i, b_h, hidden = _rnn_layer(canonical, prefix, layer, 3)
    if np.any(b_h[2 * hidden :] != 0) and not drop_b_hn:
        raise CanonicalError(
            f"tensor '{base}.dense_h.bias' has a non-zero b_hn (its last {hidden} entries), "
            "which nnx.GRUCell cannot hold; write the GRU cell in the twin, or pass drop_b_hn=True"
        )
    folded = b_h.copy()
    folded[2 * hidden :] = 0
    return {
        "dense_i.kernel": _out(k_ih),
        "dense_i.bias": _out(b_i + folded),
        "dense_h.kernel": _out(k_hh),
    }


# --------------------------------------------------------------------------- MultiheadAttention


def multihead_attention_from_torch(
    sd: Mapping[str, Any], prefix: str = "", *, num_heads: int
) -> Canonical:
    """``nn.MultiheadAttention`` → ``nnx.MultiHeadAttention``'s layout (``query``, ``key``,
    ``value``, ``out``; see the module table). Reads the packed ``in_proj_weight`` or, when
    ``kdim``/``vdim`` differ from ``embed_dim``, ``q|k|v_proj_weight``. ``add_bias_kv`` is refused.
    """
    _refuse(sd, [_join(prefix, "bias_k"), _join(prefix, "bias_v")], "add_bias_kv")
    out_w = _get(sd, _join(prefix, "out_proj.weight"), (None, None))
    embed = out_w.shape[0]
    _check(_join(prefix, "out_proj.weight"), out_w, (embed, embed))
    if num_heads <= 0 or embed % num_heads:
        raise CanonicalError(
            f"tensor '{_join(prefix, 'out_proj.weight')}': embed_dim {embed} is not a multiple "
            f"of num_heads {num_heads}"
        )
    head_dim = embed // num_heads
    packed_name = _join(prefix, "in_proj_weight")
    if packed_name in sd:
        packed = _get(sd, packed_name, (3 * embed, embed))
        weights = [packed[i * embed : (i + 1) * embed] for i in range(3)]
    else:
        weights = [
            _get(sd, _join(prefix, f"{p}_proj_weight"), (embed, None)) for p in ("q", "k", "v")
        ]
    out: Canonical = {}
    bias = _maybe(sd, _join(prefix, "in_proj_bias"), (3 * embed,))
    for i, (leaf, weight) in enumerate(zip(("query", "key", "value"), weights, strict=True)):
        out[_join(prefix, f"{leaf}.kernel")] = _out(weight.T.reshape(-1, num_heads, head_dim))
        if bias is not None:
            b = bias[i * embed : (i + 1) * embed]
            out[_join(prefix, f"{leaf}.bias")] = _out(b.reshape(num_heads, head_dim))
    out[_join(prefix, "out.kernel")] = _out(out_w.T.reshape(num_heads, head_dim, embed))
    out_b = _maybe(sd, _join(prefix, "out_proj.bias"), (embed,))
    if out_b is not None:
        out[_join(prefix, "out.bias")] = _out(out_b)
    return out


def multihead_attention_to_torch(
    canonical: Mapping[str, Any], prefix: str = ""
) -> dict[str, np.ndarray]:
    """Canonical ``query|key|value|out`` → ``nn.MultiheadAttention`` (exact inverse).

    Emits the packed ``in_proj_weight`` when query, key and value inputs all have ``embed_dim``
    features, else ``q|k|v_proj_weight`` — the keys torch itself uses for that configuration.
    """
    q = _get(canonical, _join(prefix, "query.kernel"), (None, None, None))
    _, heads, head_dim = q.shape
    embed = heads * head_dim
    _check(_join(prefix, "query.kernel"), q, (embed, heads, head_dim))
    k = _get(canonical, _join(prefix, "key.kernel"), (None, heads, head_dim))
    v = _get(canonical, _join(prefix, "value.kernel"), (None, heads, head_dim))
    out_k = _get(canonical, _join(prefix, "out.kernel"), (heads, head_dim, embed))
    weights = [a.reshape(a.shape[0], embed).T for a in (q, k, v)]
    out: dict[str, np.ndarray] = {}
    if k.shape[0] == embed and v.shape[0] == embed:
        out[_join(prefix, "in_proj_weight")] = _out(np.concatenate(weights, axis=0))
    else:
        for p, w in zip(("q", "k", "v"), weights, strict=True):
            out[_join(prefix, f"{p}_proj_weight")] = _out(w)
    biases = [
        _maybe(canonical, _join(prefix, f"{leaf}.bias"), (heads, head_dim))
        for leaf in ("query", "key", "value")
    ]
    present = [b is not None for b in biases]
    if any(present):
        if not all(present):
            leaf = ("query", "key", "value")[present.index(False)]
            raise CanonicalError(f"missing tensor '{_join(prefix, f'{leaf}.bias')}'")
        out[_join(prefix, "in_proj_bias")] = _out(
            np.concatenate([b.reshape(embed) for b in biases if b is not None])
        )
    out[_join(prefix, "out_proj.weight")] = _out(out_k.reshape(embed, embed).T)
    out_b = _maybe(canonical, _join(prefix, "out.bias"), (embed,))
    if out_b is not None:
        out[_join(prefix, "out_proj.bias")] = _out(out_b)
    return out


# ----------------------------------------------------------------------------- Flax NNX layers


def _nnx_variables(module: Any) -> list[tuple[tuple[Any, ...], str, Any]]:
    from flax import nnx

    state = nnx.state(module, nnx.Any(nnx.Param, nnx.BatchStat))
    return [
        (tuple(path), ".".join(str(p) for p in path), var) for path, var in nnx.to_flat_state(state)
    ]


def from_nnx(module: Any, prefix: str = "") -> Canonical:
    """A Flax NNX layer's parameters and batch statistics as canonical NumPy arrays under
    ``prefix`` (their own dtype)."""
    return {
        _join(prefix, name): np.array(var.get_value()) for _, name, var in _nnx_variables(module)
    }


def load_nnx(module: Any, canonical: Mapping[str, Any], prefix: str = "") -> None:
    """Copy the canonical tensors under ``prefix`` into a Flax NNX layer in place.

    Loads ``nnx.Param`` and ``nnx.BatchStat`` variables (so a BatchNorm's ``mean``/``var`` too),
    keeping each variable's dtype. Every variable must have its tensor and no extra tensor may sit
    under ``prefix``; a missing, extra or mis-shaped tensor raises `CanonicalError` naming it.
    """
    import jax.numpy as jnp
    from flax import nnx

    flat = _nnx_variables(module)
    expected = {_join(prefix, name) for _, name, _ in flat}
    under = (
        set(canonical)
        if not prefix
        else {n for n in canonical if n == prefix or n.startswith(prefix + ".")}
    )
    extra = sorted(under - expected)
    if extra:
        raise CanonicalError(
            f"{type(module).__name__}: no variable for tensor(s) "
            + ", ".join(f"'{e}'" for e in extra)
        )
    new = {}
    for path, name, var in flat:
        full = _join(prefix, name)
        current = var.get_value()
        value = _get(canonical, full, tuple(current.shape))
        new[path] = type(var)(jnp.asarray(value, dtype=current.dtype))
    nnx.update(module, nnx.from_flat_state(new))
