"""Canonical weights: one flat ``name -> numpy array`` mapping that both twins load.

Names are the module attribute paths joined by dots (``"layers.0.kernel"``), which is why the two
twins of a workload use the same attribute names. Layouts follow the mathematical convention
``y = x @ kernel + bias`` — the layout Flax already uses — so the JAX side converts by flattening
and the PyTorch side transposes where its layout differs:

==========  ==============================  ==============================  ===================
layer kind  canonical                       PyTorch                         Flax NNX
==========  ==============================  ==============================  ===================
Linear      ``kernel (in, out)``, ``bias``  ``weight (out, in)``, ``bias``  ``nnx.Linear``
Conv2d      ``kernel (H, W, in, out)``      ``weight (out, in, H, W)``      ``nnx.Conv`` (HWIO)
LayerNorm   ``scale``, ``bias``             ``weight``, ``bias``            ``nnx.LayerNorm``
Embedding   ``embedding (vocab, d)``        ``weight (vocab, d)``           ``nnx.Embed``
BatchNorm   ``scale``, ``bias``,            ``weight``, ``bias``,           ``nnx.BatchNorm``
            ``mean``, ``var``               ``running_mean``, ``_var``      names
LSTM, GRU   ``k.dense_i.kernel (in, G·H)``, ``weight_ih_lk (G·H, in)``,     two ``nnx.Linear``
(layer k)   ``k.dense_h.kernel (H, G·H)``,  ``weight_hh_lk (G·H, H)``,      per layer in the
            ``k.dense_i|dense_h.bias``      ``bias_ih_lk``, ``bias_hh_lk``  twin's own cell
==========  ==============================  ==============================  ===================

BatchNorm's running statistics are part of the canonical weights (a twin loaded with them must
normalise identically in eval mode); they have no gradients. ``G`` is 4 for LSTM (gates i, f, g, o)
and 3 for GRU (r, z, n), in PyTorch's order.

A parameter a twin declares directly (not inside one of these layers) keeps its name and layout on
both sides. The torch side of this table is code in one place, `twinbench.backends.layouts`, read
by the model-level converters of the torch backend and by the layer-by-layer converters for
porting a torch state_dict (`twinbench.converters`, attention too). NumPy only here.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from twinbench.errors import TwinbenchError

Canonical = dict[str, np.ndarray]


class CanonicalError(TwinbenchError):
    """Canonical weights that do not fit a model: a missing, extra or mis-shaped tensor."""


def check_compatible(
    expected: Mapping[str, tuple[int, ...]], weights: Mapping[str, np.ndarray], *, model: str
) -> None:
    """Raise a `CanonicalError` naming the first tensor whose name or shape does not fit."""
    missing = sorted(set(expected) - set(weights))
    if missing:
        raise CanonicalError(f"{model}: canonical weights lack {', '.join(missing)}")
    extra = sorted(set(weights) - set(expected))
    if extra:
        raise CanonicalError(f"{model}: canonical weights have unknown tensors {', '.join(extra)}")
    for name, shape in expected.items():
        got = tuple(weights[name].shape)
        if got != tuple(shape):
            raise CanonicalError(
                f"{model}: tensor '{name}' has shape {got}, the model expects {tuple(shape)}"
            )


def init_canonical(
    shapes: Mapping[str, tuple[int, ...]], seed: int, *, embedding_std: float = 1.0
) -> Canonical:
    """The one init both twins load, drawn with NumPy from ``seed``.

    Kernels and their biases follow PyTorch's default, U(±1/√fan_in) with fan_in the product of
    all but the last kernel dimension; norm scales start at one; embeddings at
    N(0, ``embedding_std``²) (PyTorch's 1; GPT-2 and BERT use 0.02); BatchNorm
    running means at zero and variances at one, as a fresh layer has them. Each
    tensor has its own generator keyed by its name, so adding a layer leaves the others unchanged.
    """
    weights: Canonical = {}
    for name, shape in shapes.items():
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        prefix, _, leaf = name.rpartition(".")
        kernel = shapes.get(f"{prefix}.kernel" if prefix else "kernel")
        if leaf in ("scale", "var"):
            value = np.ones(shape)
        elif leaf == "mean":
            value = np.zeros(shape)
        elif leaf == "embedding":
            value = embedding_std * rng.standard_normal(shape)
        elif leaf == "bias" and kernel is None:
            value = np.zeros(shape)
        else:
            fan_source = kernel if leaf == "bias" else shape
            assert fan_source is not None
            fan_in = int(np.prod(fan_source[:-1])) if len(fan_source) > 1 else fan_source[0]
            bound = 1.0 / np.sqrt(max(fan_in, 1))
            value = rng.uniform(-bound, bound, shape)
        weights[name] = value.astype(np.float32)
    return weights


def save(weights: Mapping[str, np.ndarray], path: str | Path) -> None:
    """Write canonical weights to a safetensors file."""
    from safetensors.numpy import save_file

    save_file({name: np.ascontiguousarray(array) for name, array in weights.items()}, str(path))


def load(path: str | Path) -> Canonical:
    """Read canonical weights from a safetensors file."""
    from safetensors.numpy import load_file

    if not Path(path).is_file():
        raise CanonicalError(f"no canonical weights file at {path}")
    return dict(load_file(str(path)))


def shapes_of(weights: Mapping[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    """Name -> shape, the form `check_compatible` and `init_canonical` take."""
    return {name: tuple(array.shape) for name, array in weights.items()}


def parameter_count(shapes: Mapping[str, tuple[int, ...]]) -> int:
    """Number of scalars in weights of the given shapes."""
    return int(sum(np.prod(shape, dtype=np.int64) for shape in shapes.values()))
