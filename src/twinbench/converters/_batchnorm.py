"""BatchNorm's running statistics across the frameworks: Flax's momentum for torch's, and
torch's running update in NumPy."""

from __future__ import annotations

import numpy as np


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
