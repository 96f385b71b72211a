"""PyTorch side: canonical-weight converters, optimizers and the twin runner used by parity."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from twinbench.canonical import Canonical, check_compatible
from twinbench.spec import Batch, OptimizerConfig, Size, Workload

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float64": torch.float64}

Transform = Callable[[torch.Tensor], torch.Tensor]
# Per layer kind: torch parameter name -> (canonical name, torch->canonical, canonical->torch).
_LAYER_RULES: dict[type[nn.Module], dict[str, tuple[str, Transform, Transform]]] = {
    nn.Linear: {
        "weight": ("kernel", lambda w: w.T, lambda k: k.T),
        "bias": ("bias", lambda b: b, lambda b: b),
    },
    nn.Conv2d: {
        "weight": ("kernel", lambda w: w.permute(2, 3, 1, 0), lambda k: k.permute(3, 2, 0, 1)),
        "bias": ("bias", lambda b: b, lambda b: b),
    },
    nn.LayerNorm: {
        "weight": ("scale", lambda w: w, lambda s: s),
        "bias": ("bias", lambda b: b, lambda b: b),
    },
    nn.Embedding: {"weight": ("embedding", lambda w: w, lambda e: e)},
}


def _canonical_params(model: nn.Module) -> Iterable[tuple[str, nn.Parameter, Transform, Transform]]:
    """Every parameter with its canonical name and the two layout transforms."""
    for prefix, module in model.named_modules():
        rules = _LAYER_RULES.get(type(module), {})
        for leaf, param in module.named_parameters(recurse=False):
            canonical_leaf, to_canonical, from_canonical = rules.get(
                leaf, (leaf, lambda t: t, lambda t: t)
            )
            name = f"{prefix}.{canonical_leaf}" if prefix else canonical_leaf
            yield name, param, to_canonical, from_canonical


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).contiguous().numpy().copy()


def to_canonical(model: nn.Module) -> Canonical:
    """The model's parameters in canonical names and layouts (float32 NumPy)."""
    return {name: _to_numpy(to_c(p)) for name, p, to_c, _ in _canonical_params(model)}


def grads_to_canonical(model: nn.Module) -> Canonical:
    """The gradients from the last ``backward()``, in canonical layout (zeros where none)."""
    return {
        name: _to_numpy(to_c(p.grad if p.grad is not None else torch.zeros_like(p)))
        for name, p, to_c, _ in _canonical_params(model)
    }


def canonical_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Canonical name -> shape, without copying any data (works on the meta device)."""
    return {name: tuple(to_c(p).shape) for name, p, to_c, _ in _canonical_params(model)}


def load_canonical(model: nn.Module, weights: Mapping[str, np.ndarray]) -> None:
    """Copy canonical weights into ``model`` in place, checking every name and shape."""
    check_compatible(canonical_shapes(model), weights, model=type(model).__name__)
    with torch.no_grad():
        for name, param, _, from_canonical in _canonical_params(model):
            value = from_canonical(torch.from_numpy(np.array(weights[name])))
            param.copy_(value.to(param.dtype))


def make_optimizer(
    params: Iterable[nn.Parameter], config: OptimizerConfig
) -> torch.optim.Optimizer:
    """torch.optim optimizer with every hyper-parameter set explicitly (see `OptimizerConfig`)."""
    if config.name == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            dampening=0.0,
            nesterov=False,
            weight_decay=config.weight_decay,
        )
    optimizer_class = torch.optim.Adam if config.name == "adam" else torch.optim.AdamW
    return optimizer_class(
        params,
        lr=config.lr,
        betas=config.betas,
        eps=config.eps,
        weight_decay=config.weight_decay,
        amsgrad=False,
    )


def to_device(batch: Batch, device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Batch arrays as tensors on ``device``: floats in the run's dtype, integers as int64 (the
    index dtype torch's losses and embeddings expect)."""
    tensors = {}
    for key, array in batch.items():
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        tensor = tensor.to(dtype) if tensor.is_floating_point() else tensor.long()
        tensors[key] = tensor.to(device)
    return tensors


def build_on_meta(workload: Workload, size: Size) -> nn.Module:
    """The twin's model with shapes only (no memory), for parameter counts and init shapes."""
    with torch.device("meta"):
        return workload.twin("torch").build(size.config)


class TorchRunner:
    """Runs a workload's PyTorch twin for the parity checks."""

    framework = "torch"

    def __init__(
        self, workload: Workload, size: Size, *, dtype: str = "float32", device: str = "cpu"
    ) -> None:
        self.twin = workload.twin("torch")
        self.size = size
        self.device = device
        self.dtype = DTYPES[dtype]
        self.model: nn.Module = self.twin.build(size.config).to(device, self.dtype)

    def load(self, weights: Mapping[str, np.ndarray]) -> None:
        load_canonical(self.model, weights)

    def weights(self) -> Canonical:
        return to_canonical(self.model)

    def _batch(self, batch: Batch) -> dict[str, torch.Tensor]:
        return to_device(batch, self.device, self.dtype)

    def outputs(self, batch: Batch) -> np.ndarray:
        with torch.no_grad():
            return _to_numpy(self.twin.forward(self.model, self._batch(batch)))

    def loss_and_grads(self, batch: Batch) -> tuple[float, Canonical]:
        self.model.zero_grad(set_to_none=True)
        loss = self.twin.loss_fn(self.model, self._batch(batch))
        loss.backward()
        return float(loss.detach()), grads_to_canonical(self.model)

    def train_curve(self, batches: list[Batch], config: OptimizerConfig) -> list[float]:
        """Loss before each of ``len(batches)`` optimizer steps, one batch per step."""
        optimizer = make_optimizer(self.model.parameters(), config)
        losses = []
        for batch in batches:
            optimizer.zero_grad(set_to_none=True)
            loss = self.twin.loss_fn(self.model, self._batch(batch))
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        return losses

    def activations(self, batch: Batch) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
        """Each submodule's (output, single input), in the order the modules finished."""
        recorded: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}

        def hook(name: str) -> Callable[..., None]:
            def record(_module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
                if name in recorded or not isinstance(output, torch.Tensor):
                    return  # a module called twice is compared on its first call
                single = inputs[0] if len(inputs) == 1 else None
                x = _to_numpy(single) if isinstance(single, torch.Tensor) else None
                recorded[name] = (_to_numpy(output), x)

            return record

        handles = [
            m.register_forward_hook(hook(name)) for name, m in self.model.named_modules() if name
        ]
        try:
            self.outputs(batch)
        finally:
            for handle in handles:
                handle.remove()
        return recorded
