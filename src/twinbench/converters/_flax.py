"""Canonical weights into Flax NNX layers: the state of Flax's recurrent cells built from a
canonical LSTM or GRU layer, and loading or reading any NNX layer's variables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from twinbench.canonical import Canonical, CanonicalError
from twinbench.converters._tensors import copy_out, get, join
from twinbench.converters._torch_layers import recurrent_layer_arrays


def lstm_cell_weights(
    canonical: Mapping[str, Any], prefix: str = "", layer: int = 0, *, cell: str = "optimized"
) -> Canonical:
    """The state of a Flax LSTM cell for canonical layer ``layer``, for `load_nnx` (no prefix).

    ``cell="optimized"``: ``nnx.OptimizedLSTMCell`` — ``dense_i.kernel``, ``dense_h.kernel`` and
    ``dense_h.bias = b_ih + b_hh`` (Flax has one bias). ``cell="lstm"``: ``nnx.LSTMCell`` — per
    gate ``ii|if_|ig|io.kernel`` and ``hi|hf|hg|ho.kernel``/``.bias``. Summing the biases is the
    one place a conversion rounds; the cell's output then differs from torch's by rounding only.
    """
    _, k_ih, k_hh, b_i, b_h, hidden = recurrent_layer_arrays(canonical, prefix, layer, 4)
    bias = b_i + b_h
    if cell == "optimized":
        return {
            "dense_i.kernel": copy_out(k_ih),
            "dense_h.kernel": copy_out(k_hh),
            "dense_h.bias": copy_out(bias),
        }
    if cell != "lstm":
        raise ValueError(f"cell must be 'optimized' or 'lstm', not {cell!r}")
    out: Canonical = {}
    for g, name in enumerate(("i", "f", "g", "o")):
        cols = slice(g * hidden, (g + 1) * hidden)
        out[f"i{name}_.kernel" if name == "f" else f"i{name}.kernel"] = copy_out(k_ih[:, cols])
        out[f"h{name}.kernel"] = copy_out(k_hh[:, cols])
        out[f"h{name}.bias"] = copy_out(bias[cols])
    return out


def gru_cell_weights(
    canonical: Mapping[str, Any], prefix: str = "", layer: int = 0, *, drop_b_hn: bool = False
) -> Canonical:
    """The state of an ``nnx.GRUCell`` for canonical GRU layer ``layer``, for `load_nnx`.

    ``dense_i.bias = b_ih + [b_hr, b_hz, 0]``; ``nnx.GRUCell`` has no place for ``b_hn`` (it sits
    inside ``r ⊙ (W_hn h + b_hn)``), so a non-zero ``b_hn`` raises `CanonicalError` naming the
    tensor, unless ``drop_b_hn=True`` — then the cell computes a different GRU.
    """
    base, k_ih, k_hh, b_i, b_h, hidden = recurrent_layer_arrays(canonical, prefix, layer, 3)
    if np.any(b_h[2 * hidden :] != 0) and not drop_b_hn:
        raise CanonicalError(
            f"tensor '{base}.dense_h.bias' has a non-zero b_hn (its last {hidden} entries), "
            "which nnx.GRUCell cannot hold; write the GRU cell in the twin, or pass drop_b_hn=True"
        )
    folded = b_h.copy()
    folded[2 * hidden :] = 0
    return {
        "dense_i.kernel": copy_out(k_ih),
        "dense_i.bias": copy_out(b_i + folded),
        "dense_h.kernel": copy_out(k_hh),
    }


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
        join(prefix, name): np.array(var.get_value()) for _, name, var in _nnx_variables(module)
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
    expected = {join(prefix, name) for _, name, _ in flat}
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
        full = join(prefix, name)
        current = var.get_value()
        value = get(canonical, full, tuple(current.shape))
        new[path] = type(var)(jnp.asarray(value, dtype=current.dtype))
    nnx.update(module, nnx.from_flat_state(new))
