"""Reading tensors for the layer converters: any framework's tensor as NumPy, shape-checked,
with a `CanonicalError` naming the missing or mis-shaped tensor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from twinbench.canonical import CanonicalError

Shape = Sequence[int | None]  # None: any size


def join(prefix: str, leaf: str) -> str:
    """``prefix.leaf``, or ``leaf`` alone under an empty prefix."""
    return f"{prefix}.{leaf}" if prefix else leaf


def as_numpy(value: Any) -> np.ndarray:
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


def check(name: str, array: np.ndarray, shape: Shape) -> np.ndarray:
    """``array`` when it has ``shape``; else a `CanonicalError` naming the tensor."""
    got = tuple(array.shape)
    fits = len(got) == len(shape) and all(
        e is None or e == g for e, g in zip(shape, got, strict=True)
    )
    if not fits:
        raise CanonicalError(f"tensor '{name}' has shape {got}, expected {_fmt(shape)}")
    return array


def get(weights: Mapping[str, Any], name: str, shape: Shape) -> np.ndarray:
    """Tensor ``name`` as NumPy, shape-checked; a `CanonicalError` when it is missing."""
    if name not in weights:
        raise CanonicalError(f"missing tensor '{name}'")
    return check(name, as_numpy(weights[name]), shape)


def maybe(weights: Mapping[str, Any], name: str, shape: Shape) -> np.ndarray | None:
    """As `get`, but None when the (optional) tensor is absent."""
    return get(weights, name, shape) if name in weights else None


def copy_out(array: np.ndarray) -> np.ndarray:
    """A contiguous copy that shares no memory with the input."""
    return np.ascontiguousarray(array).copy()


def refuse(weights: Mapping[str, Any], names: Sequence[str], why: str) -> None:
    """A `CanonicalError` when any of ``names`` is present: ``why`` is not supported."""
    for name in names:
        if name in weights:
            raise CanonicalError(f"tensor '{name}': {why} is not supported")
