"""PyTorch layers' ``state_dict`` ⇄ canonical weights, driven by the layout table
(`twinbench.backends.layouts`): Linear, Conv2d, BatchNorm, LayerNorm, Embedding, LSTM and GRU."""

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
from twinbench.converters._tensors import (
    Shape,
    as_numpy,
    check,
    copy_out,
    get,
    join,
    maybe,
    refuse,
)


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
    return copy_out(array if axes is None else array.transpose(axes))


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
    main = get(weights, join(prefix, source), (None,) * rank)
    # torch puts the (output) channels first; the canonical layout moves that axis
    channels = main.shape[_in_source_layout(first, tuple(range(rank)), to_torch).index(0)]
    out = {join(prefix, target): _move(main, axes)}
    rest = [*required, *(leaf for leaf in layout.leaves if leaf not in (first, *required))]
    for leaf in rest:
        source, target, axes = _ends(leaf, to_torch)
        read = get if leaf in required else maybe
        value = read(weights, join(prefix, source), (channels,))
        if value is not None:
            out[join(prefix, target)] = _move(value, axes)
    if to_torch:  # in the order torch's own state_dict has them
        names = [join(prefix, leaf.torch) for leaf in layout.leaves]
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

_MEAN, _VAR = BATCHNORM.leaves[2:]


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
    out[join(prefix, "num_batches_tracked")] = np.array(num_batches_tracked, dtype=np.int64)
    return out


# ------------------------------------------------------------------------ LayerNorm, Embedding


def _layernorm(weights: Mapping[str, Any], prefix: str, *, to_torch: bool) -> dict[str, np.ndarray]:
    """Scale and bias of any shape, each optional but not both; the bias shaped as the scale."""
    (scale_source, scale_target, _), (bias_source, bias_target, _) = (
        _ends(leaf, to_torch) for leaf in LAYERNORM.leaves
    )
    scale_name, bias_name = join(prefix, scale_source), join(prefix, bias_source)
    if scale_name not in weights and bias_name not in weights:
        raise CanonicalError(f"missing tensor '{scale_name}'")
    out: dict[str, np.ndarray] = {}
    scale = None
    if scale_name in weights:
        scale = as_numpy(weights[scale_name])
        out[join(prefix, scale_target)] = copy_out(scale)
    if bias_name in weights:
        bias = as_numpy(weights[bias_name])
        if scale is not None:
            check(bias_name, bias, scale.shape)
        out[join(prefix, bias_target)] = copy_out(bias)
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
    hh_name = join(prefix, _ends(w_hh, to_torch)[0])
    hh = get(weights, hh_name, (None, None))
    hidden = hh.shape[_in_source_layout(w_hh, (0, 1), to_torch).index(1)]
    check(hh_name, hh, _in_source_layout(w_hh, (gates * hidden, hidden), to_torch))
    ih_shape = _in_source_layout(w_ih, (gates * hidden, None), to_torch)
    ih = get(weights, join(prefix, _ends(w_ih, to_torch)[0]), ih_shape)
    bias_i, bias_h = (
        maybe(weights, join(prefix, _ends(leaf, to_torch)[0]), (gates * hidden,))
        for leaf in (b_ih, b_hh)
    )
    return (ih, hh, bias_i, bias_h), hidden


def _recurrent(
    weights: Mapping[str, Any], prefix: str, gates: int, kind: str, *, to_torch: bool
) -> dict[str, np.ndarray]:
    """Every layer ``0, 1, ...`` of an LSTM (``gates`` 4) or GRU (3), in one direction."""

    def first_tensor(layer: int) -> str:
        return join(prefix, _ends(recurrent_layer(layer).leaves[0], to_torch)[0])

    if first_tensor(0) not in weights:
        raise CanonicalError(f"missing tensor '{first_tensor(0)}'")
    out: dict[str, np.ndarray] = {}
    layer = 0
    while first_tensor(layer) in weights:
        if not to_torch:
            reverse = join(prefix, f"weight_ih_l{layer}_reverse")
            refuse(weights, [reverse], f"bidirectional {kind}")
            refuse(weights, [join(prefix, f"weight_hr_l{layer}")], "LSTM proj_size")
        arrays, _ = _read_recurrent_layer(weights, prefix, layer, gates, to_torch=to_torch)
        for leaf, array in zip(recurrent_layer(layer).leaves, arrays, strict=True):
            if array is not None:
                _, target, axes = _ends(leaf, to_torch)
                out[join(prefix, target)] = _move(array, axes)
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


def recurrent_layer_arrays(
    canonical: Mapping[str, Any], prefix: str, layer: int, gates: int
) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """A canonical layer's name, kernels, biases (zeros where absent) and hidden size."""
    (k_ih, k_hh, b_i, b_h), hidden = _read_recurrent_layer(
        canonical, prefix, layer, gates, to_torch=True
    )
    zeros = np.zeros(gates * hidden, dtype=k_ih.dtype)
    return (
        join(prefix, str(layer)),
        k_ih,
        k_hh,
        zeros if b_i is None else b_i,
        zeros if b_h is None else b_h,
        hidden,
    )
