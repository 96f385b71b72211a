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
prefix and the canonical prefix are the same string. The names and axis orders of every layer kind
but attention come from `twinbench.backends.layouts`, the table the torch backend uses too.

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

from twinbench.backends.layouts import (
    BATCHNORM,
    CONV2D,
    EMBEDDING,
    LAYERNORM,
    LINEAR,
    Axes,
    Layout,
    Leaf,
    recurrent_layer,
)
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
            return np.asarray(value.numpy())
        except TypeError:  # bfloat16 and other dtypes NumPy lacks
            return np.asarray(value.float().numpy())
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


def _ends(leaf: Leaf, to_torch: bool) -> tuple[str, str, Axes | None]:
    """The leaf's source name, target name and axis order, converting in one direction."""
    if to_torch:
        return leaf.canonical, leaf.torch, leaf.inverse_axes
    return leaf.torch, leaf.canonical, leaf.axes


def _in_source_layout(leaf: Leaf, torch_shape: Shape, to_torch: bool) -> Shape:
    """A shape given in torch's layout, in the layout being converted from."""
    if not to_torch or leaf.axes is None:
        return torch_shape
    return tuple(torch_shape[axis] for axis in leaf.axes)


def _move(array: np.ndarray, axes: Axes | None) -> np.ndarray:
    return _out(array if axes is None else array.transpose(axes))


def _channel_layer(
    layout: Layout,
    weights: Mapping[str, Any],
    prefix: str,
    *,
    to_torch: bool,
    first: Leaf,
    rank: int,
    required: Sequence[Leaf] = (),
) -> dict[str, np.ndarray]:
    """One layer whose ``first`` tensor (of ``rank`` axes) sets the channel count: its other
    tensors, the ``required`` ones and then the optional rest, are vectors of that length."""
    source, target, axes = _ends(first, to_torch)
    main = _get(weights, _join(prefix, source), (None,) * rank)
    # torch puts the (output) channels first; the canonical layout moves that axis
    channels = main.shape[_in_source_layout(first, tuple(range(rank)), to_torch).index(0)]
    out = {_join(prefix, target): _move(main, axes)}
    rest = [*required, *(leaf for leaf in layout.leaves if leaf not in (first, *required))]
    for leaf in rest:
        source, target, axes = _ends(leaf, to_torch)
        read = _get if leaf in required else _maybe
        value = read(weights, _join(prefix, source), (channels,))
        if value is not None:
            out[_join(prefix, target)] = _move(value, axes)
    if to_torch:  # in the order torch's own state_dict has them
        names = [_join(prefix, leaf.torch) for leaf in layout.leaves]
        out = {name: out[name] for name in names if name in out}
    return out


# ---------------------------------------------------------------------------- Linear and Conv2d


def linear_from_torch(sd: Mapping[str, Any], prefix: str = "") -> Canonical:
    """``nn.Linear`` ``weight (out, in)`` / ``bias`` → canonical ``kernel (in, out)`` / ``bias``."""
    return _channel_layer(LINEAR, sd, prefix, to_torch=False, first=LINEAR.leaves[0], rank=2)


def linear_to_torch(canonical: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Canonical ``kernel (in, out)`` / ``bias`` → ``nn.Linear`` ``weight (out, in)`` / ``bias``."""
    return _channel_layer(LINEAR, canonical, prefix, to_torch=True, first=LINEAR.leaves[0], rank=2)


def conv2d_from_torch(sd: Mapping[str, Any], prefix: str = "") -> Canonical:
    """``nn.Conv2d`` ``weight (out, in/groups, H, W)`` → canonical ``kernel (H, W, in/groups,
    out)``.

    Only weights move; padding, stride and the NCHW/NHWC activation layout are the twins' business
    (pass explicit padding to ``nnx.Conv``: its ``"SAME"`` pads differently from torch's).
    """
    return _channel_layer(CONV2D, sd, prefix, to_torch=False, first=CONV2D.leaves[0], rank=4)


def conv2d_to_torch(canonical: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Canonical ``kernel (H, W, in/groups, out)`` → ``nn.Conv2d`` ``weight (out, in/groups,
    H, W)``."""
    return _channel_layer(CONV2D, canonical, prefix, to_torch=True, first=CONV2D.leaves[0], rank=4)


# ----------------------------------------------------------------------------------- BatchNorm

_SCALE, _BN_BIAS, _MEAN, _VAR = BATCHNORM.leaves


def batchnorm2d_from_torch(sd: Mapping[str, Any], prefix: str = "") -> Canonical:
    """``nn.BatchNorm{1,2,3}d`` → canonical ``scale``, ``bias``, ``mean``, ``var`` (each (C,)).

    ``var`` is ``running_var`` verbatim — the variance eval mode normalises with (torch's unbiased
    running estimate); see the module docstring. ``scale``/``bias`` are absent when the layer was
    built with ``affine=False``; ``num_batches_tracked`` is dropped.
    """
    return _channel_layer(
        BATCHNORM, sd, prefix, to_torch=False, first=_MEAN, rank=1, required=(_VAR,)
    )


def batchnorm2d_to_torch(
    canonical: Mapping[str, Any], prefix: str = "", *, num_batches_tracked: int = 0
) -> dict[str, np.ndarray]:
    """Canonical ``scale``/``bias``/``mean``/``var`` → a BatchNorm ``state_dict`` (strict-loadable).

    ``num_batches_tracked`` (an int64 scalar) is not part of canonical weights; pass it if the
    torch layer uses ``momentum=None`` (cumulative averaging).
    """
    out = _channel_layer(
        BATCHNORM, canonical, prefix, to_torch=True, first=_MEAN, rank=1, required=(_VAR,)
    )
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


def _layernorm(weights: Mapping[str, Any], prefix: str, *, to_torch: bool) -> dict[str, np.ndarray]:
    """Scale and bias of any shape, each optional but not both; the bias shaped as the scale."""
    (scale_source, scale_target, _), (bias_source, bias_target, _) = (
        _ends(leaf, to_torch) for leaf in LAYERNORM.leaves
    )
    scale_name, bias_name = _join(prefix, scale_source), _join(prefix, bias_source)
    if scale_name not in weights and bias_name not in weights:
        raise CanonicalError(f"missing tensor '{scale_name}'")
    out: dict[str, np.ndarray] = {}
    scale = None
    if scale_name in weights:
        scale = _as_numpy(weights[scale_name])
        out[_join(prefix, scale_target)] = _out(scale)
    if bias_name in weights:
        bias = _as_numpy(weights[bias_name])
        if scale is not None:
            _check(bias_name, bias, scale.shape)
        out[_join(prefix, bias_target)] = _out(bias)
    return out


def layernorm_from_torch(sd: Mapping[str, Any], prefix: str = "") -> Canonical:
    """``nn.LayerNorm`` ``weight``/``bias`` → canonical ``scale``/``bias`` (same shape).

    eps is not a weight: torch defaults to 1e-5, ``nnx.LayerNorm`` to 1e-6 — set it on both.
    """
    return _layernorm(sd, prefix, to_torch=False)


def layernorm_to_torch(canonical: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Canonical ``scale``/``bias`` → ``nn.LayerNorm`` ``weight``/``bias``."""
    return _layernorm(canonical, prefix, to_torch=True)


def embedding_from_torch(sd: Mapping[str, Any], prefix: str = "") -> Canonical:
    """``nn.Embedding`` ``weight (vocab, d)`` → canonical ``embedding (vocab, d)``."""
    return _channel_layer(EMBEDDING, sd, prefix, to_torch=False, first=EMBEDDING.leaves[0], rank=2)


def embedding_to_torch(canonical: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Canonical ``embedding (vocab, d)`` → ``nn.Embedding`` ``weight (vocab, d)``."""
    return _channel_layer(
        EMBEDDING, canonical, prefix, to_torch=True, first=EMBEDDING.leaves[0], rank=2
    )


# ------------------------------------------------------------------------------------ LSTM, GRU


_RecurrentLayer = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]


def _read_recurrent_layer(
    weights: Mapping[str, Any], prefix: str, layer: int, gates: int, *, to_torch: bool
) -> tuple[_RecurrentLayer, int]:
    """Layer ``layer``'s kernels and biases (None where absent) as the source holds them, each
    shape-checked, and the hidden size."""
    w_ih, w_hh, b_ih, b_hh = recurrent_layer(layer).leaves
    hh_name = _join(prefix, _ends(w_hh, to_torch)[0])
    hh = _get(weights, hh_name, (None, None))
    hidden = hh.shape[_in_source_layout(w_hh, (0, 1), to_torch).index(1)]
    _check(hh_name, hh, _in_source_layout(w_hh, (gates * hidden, hidden), to_torch))
    ih_shape = _in_source_layout(w_ih, (gates * hidden, None), to_torch)
    ih = _get(weights, _join(prefix, _ends(w_ih, to_torch)[0]), ih_shape)
    bias_i, bias_h = (
        _maybe(weights, _join(prefix, _ends(leaf, to_torch)[0]), (gates * hidden,))
        for leaf in (b_ih, b_hh)
    )
    return (ih, hh, bias_i, bias_h), hidden


def _recurrent(
    weights: Mapping[str, Any], prefix: str, gates: int, kind: str, *, to_torch: bool
) -> dict[str, np.ndarray]:
    """Every layer ``0, 1, ...`` of an LSTM (``gates`` 4) or GRU (3), in one direction."""

    def first_tensor(layer: int) -> str:
        return _join(prefix, _ends(recurrent_layer(layer).leaves[0], to_torch)[0])

    if first_tensor(0) not in weights:
        raise CanonicalError(f"missing tensor '{first_tensor(0)}'")
    out: dict[str, np.ndarray] = {}
    layer = 0
    while first_tensor(layer) in weights:
        if not to_torch:
            reverse = _join(prefix, f"weight_ih_l{layer}_reverse")
            _refuse(weights, [reverse], f"bidirectional {kind}")
            _refuse(weights, [_join(prefix, f"weight_hr_l{layer}")], "LSTM proj_size")
        arrays, _ = _read_recurrent_layer(weights, prefix, layer, gates, to_torch=to_torch)
        for leaf, array in zip(recurrent_layer(layer).leaves, arrays, strict=True):
            if array is not None:
                _, target, axes = _ends(leaf, to_torch)
                out[_join(prefix, target)] = _move(array, axes)
        layer += 1
    return out


def lstm_from_torch(sd: Mapping[str, Any], prefix: str = "") -> Canonical:
    """``nn.LSTM`` (any ``num_layers``, unidirectional) → canonical, per layer ``k``:
    ``k.dense_i.kernel (in, 4H)``, ``k.dense_h.kernel (H, 4H)``, ``k.dense_i.bias`` (= ``b_ih``),
    ``k.dense_h.bias`` (= ``b_hh``); gates i, f, g, o along the last axis, as in torch."""
    return _recurrent(sd, prefix, 4, "LSTM", to_torch=False)


def lstm_to_torch(canonical: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Canonical LSTM layers ``0, 1, ...`` → ``nn.LSTM`` ``weight_ih_lk``, ... (exact inverse)."""
    return _recurrent(canonical, prefix, 4, "LSTM", to_torch=True)


def gru_from_torch(sd: Mapping[str, Any], prefix: str = "") -> Canonical:
    """``nn.GRU`` → canonical, laid out as `lstm_from_torch` with 3H (gates r, z, n); ``b_hn`` is
    kept as the last H entries of ``k.dense_h.bias``."""
    return _recurrent(sd, prefix, 3, "GRU", to_torch=False)


def gru_to_torch(canonical: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """Canonical GRU layers → ``nn.GRU`` ``weight_ih_lk``, ... (exact inverse)."""
    return _recurrent(canonical, prefix, 3, "GRU", to_torch=True)


def _rnn_layer(
    canonical: Mapping[str, Any], prefix: str, layer: int, gates: int
) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """A canonical layer's name, kernels, biases (zeros where absent) and hidden size."""
    (k_ih, k_hh, b_i, b_h), hidden = _read_recurrent_layer(
        canonical, prefix, layer, gates, to_torch=True
    )
    zeros = np.zeros(gates * hidden, dtype=k_ih.dtype)
    return (
        _join(prefix, str(layer)),
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
