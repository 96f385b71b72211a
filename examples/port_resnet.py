"""Port a trained PyTorch ResNet to Flax NNX with the layer converters, then check the port.

The PyTorch model here is the ``resnet`` workload's twin, whose ``state_dict`` has torchvision's
keys (``conv1.weight``, ``bn1.running_var``, ``layer1.0.conv1.weight``, ``fc.weight``, …), so the
same loop ports a ``torchvision.models.resnet18()`` checkpoint into a Flax model with the same
attribute names. It trains a few steps first, so the BatchNorm running statistics are no longer
their initial values: the eval-mode outputs below depend on every converted tensor.

Exits non-zero unless the Flax model reproduces the PyTorch model's eval-mode logits.
"""

import sys
from itertools import islice

import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F
from flax import nnx
from torch import nn

import twinbench
from twinbench import converters as cv
from twinbench.workloads.resnet import jax_twin, torch_twin

LAYER_CONVERTERS = {
    nn.Conv2d: cv.conv2d_from_torch,
    nn.BatchNorm2d: cv.batchnorm2d_from_torch,
    nn.Linear: cv.linear_from_torch,
}


def to_canonical(model: nn.Module) -> dict[str, np.ndarray]:
    """Every layer of ``model`` through its converter, keyed by the module's name."""
    state = {name: tensor.numpy() for name, tensor in model.state_dict().items()}
    canonical: dict[str, np.ndarray] = {}
    for name, module in model.named_modules():
        converter = LAYER_CONVERTERS.get(type(module))
        if converter is not None:
            canonical |= converter(state, name)
    return canonical


def main() -> int:
    size = twinbench.builtin("resnet").size("tiny")
    batches = list(islice(twinbench.builtin("resnet").batches(size, seed=0), 6))

    torch.manual_seed(0)
    torch_model = torch_twin.build(size.config)
    optimizer = torch.optim.SGD(torch_model.parameters(), lr=0.05, momentum=0.9)
    for batch in batches[:5]:  # a little training moves weights and running statistics
        images = torch.from_numpy(batch["x"]).permute(0, 3, 1, 2)  # NHWC -> NCHW
        loss = F.cross_entropy(torch_model(images), torch.from_numpy(batch["y"]).long())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    canonical = to_canonical(torch_model)
    flax_model = jax_twin.build(size.config)
    cv.load_nnx(flax_model, canonical)  # every Param and BatchStat, shapes checked by name

    torch_model.eval()
    flax_model.eval()
    held_out = batches[5]["x"]
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(held_out).permute(0, 3, 1, 2)).numpy()
    got = np.asarray(flax_model(jnp.asarray(held_out)))
    gap = float(np.abs(expected - got).max())
    params = sum(leaf.size for leaf in jax.tree.leaves(nnx.state(flax_model, nnx.Param)))
    print(f"ported {len(canonical)} tensors ({params:,} parameters plus running statistics)")
    print(f"eval-mode logits, torch vs flax: max abs difference {gap:.2e}")
    if gap > 1e-4:
        print("port FAILED")
        return 1
    print("target met: the Flax model reproduces the PyTorch model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
