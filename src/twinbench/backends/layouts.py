"""The weight layouts of the layer kinds twins are built from, written down once.

For each layer kind, every tensor it holds: its name in a PyTorch ``state_dict``, its canonical
name, and how the canonical layout orders torch's axes. The torch backend (whole twins) and
`twinbench.converters` (one layer of a ``state_dict`` at a time) both read this table, so a
layout is changed in one place. Plain Python: no framework, no NumPy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Axes = tuple[int, ...]


@dataclass(frozen=True)
class Leaf:
    """One tensor of a layer: ``torch`` and ``canonical`` names, ``axes`` the canonical layout
    (canonical axis ``i`` is torch axis ``axes[i]``; None: the same layout on both sides)."""

    torch: str
    canonical: str
    axes: Axes | None = None

    @property
    def inverse_axes(self) -> Axes | None:
        """The axis order that takes the canonical layout back to torch's."""
        if self.axes is None:
            return None
        return tuple(sorted(range(len(self.axes)), key=self.axes.__getitem__))


@dataclass(frozen=True)
class Layout:
    """The tensors of one layer kind, in the order torch's ``state_dict`` lists them."""

    kind: str
    leaves: tuple[Leaf, ...]

    def leaf(self, torch_name: str) -> Leaf | None:
        """The leaf torch calls ``torch_name``; None when it is not a canonical weight."""
        return next((leaf for leaf in self.leaves if leaf.torch == torch_name), None)


_BIAS = Leaf("bias", "bias")
# y = x @ kernel + bias: torch's (out, in) weight transposed; a conv kernel HWIO, torch's OIHW.
LINEAR = Layout("Linear", (Leaf("weight", "kernel", (1, 0)), _BIAS))
CONV2D = Layout("Conv2d", (Leaf("weight", "kernel", (2, 3, 1, 0)), _BIAS))
LAYERNORM = Layout("LayerNorm", (Leaf("weight", "scale"), _BIAS))
# Running statistics are buffers in torch and BatchStat variables in Flax: both canonical.
# num_batches_tracked is not (it matters only for torch's cumulative momentum=None).
BATCHNORM = Layout(
    "BatchNorm",
    (
        Leaf("weight", "scale"),
        _BIAS,
        Leaf("running_mean", "mean"),
        Leaf("running_var", "var"),
    ),
)
EMBEDDING = Layout("Embedding", (Leaf("weight", "embedding"),))


def recurrent_layer(layer: int) -> Layout:
    """Layer ``layer`` of an LSTM or GRU: the input and hidden projections as two dense layers
    (``weight_ih_l1`` → ``1.dense_i.kernel`` transposed, ``bias_hh_l0`` → ``0.dense_h.bias``),
    torch's gate order kept along the last canonical axis."""
    projections = (("ih", "dense_i"), ("hh", "dense_h"))
    kernels = [Leaf(f"weight_{s}_l{layer}", f"{layer}.{d}.kernel", (1, 0)) for s, d in projections]
    biases = [Leaf(f"bias_{s}_l{layer}", f"{layer}.{d}.bias") for s, d in projections]
    return Layout("recurrent layer", (*kernels, *biases))


_RECURRENT_TENSOR = re.compile(r"(?:weight|bias)_(?:ih|hh)_l(\d+)")


def recurrent_leaf(torch_name: str) -> Leaf | None:
    """The leaf of an LSTM's or GRU's tensor ``torch_name``; None for any other name."""
    match = _RECURRENT_TENSOR.fullmatch(torch_name)
    return None if match is None else recurrent_layer(int(match.group(1))).leaf(torch_name)
