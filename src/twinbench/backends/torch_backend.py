"""PyTorch side: canonical-weight converters, optimizers and the twin runner used by parity."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np
import torch
from torch import nn

from twinbench.backends import layouts
from twinbench.backends.layouts import Axes, Layout, Leaf
from twinbench.backends.protocols import Activation
from twinbench.canonical import Canonical, check_compatible
from twinbench.errors import TwinbenchError
from twinbench.spec import Batch, OptimizerConfig, Size, Workload, image_keys_of

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float64": torch.float64}

# Per layer kind, the layout of its tensors. Buffers not in a layout are not canonical weights.
_LAYOUTS: dict[type[nn.Module], Layout] = {
    nn.Linear: layouts.LINEAR,
    nn.Conv2d: layouts.CONV2D,
    nn.LayerNorm: layouts.LAYERNORM,
    nn.BatchNorm1d: layouts.BATCHNORM,
    nn.BatchNorm2d: layouts.BATCHNORM,
    nn.BatchNorm3d: layouts.BATCHNORM,
    nn.Embedding: layouts.EMBEDDING,
}


def _leaf(module: nn.Module, name: str) -> Leaf | None:
    if isinstance(module, nn.LSTM | nn.GRU):
        if module.bidirectional or (isinstance(module, nn.LSTM) and module.proj_size):
            raise TwinbenchError(
                f"{type(module).__name__}: bidirectional layers and proj_size have no canonical "
                "layout yet; use a unidirectional layer without projection"
            )
        return layouts.recurrent_leaf(name)
    layout = _LAYOUTS.get(type(module))
    return None if layout is None else layout.leaf(name)


def _permute(tensor: torch.Tensor, axes: Axes | None) -> torch.Tensor:
    return tensor if axes is None else tensor.permute(axes)


def _canonical_tensors(
    model: nn.Module, *, statistics: bool = True
) -> Iterable[tuple[str, torch.Tensor, Leaf]]:
    """Every parameter (and, with ``statistics``, every running statistic) with its canonical name
    and its layout. Shared parameters appear once, under their first name."""
    seen: set[int] = set()
    for prefix, module in model.named_modules():
        tensors = list(module.named_parameters(recurse=False))
        if statistics:
            tensors += [
                (name, buffer)
                for name, buffer in module.named_buffers(recurse=False)
                if _leaf(module, name) is not None
            ]
        for name, tensor in tensors:
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            leaf = _leaf(module, name) or Leaf(name, name)  # a parameter of the twin's own
            yield f"{prefix}.{leaf.canonical}" if prefix else leaf.canonical, tensor, leaf


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).contiguous().numpy().copy()


def to_canonical(model: nn.Module) -> Canonical:
    """The model's parameters and running statistics in canonical names and layouts (float32)."""
    return {name: _to_numpy(_permute(t, leaf.axes)) for name, t, leaf in _canonical_tensors(model)}


def statistics_to_canonical(model: nn.Module) -> Canonical:
    """Only the running statistics (BatchNorm means and variances), canonical."""
    parameters = {name for name, *_ in _canonical_tensors(model, statistics=False)}
    return {k: v for k, v in to_canonical(model).items() if k not in parameters}


def grads_to_canonical(model: nn.Module) -> Canonical:
    """The gradients from the last ``backward()``, in canonical layout (zeros where none)."""
    return {
        name: _to_numpy(_permute(torch.zeros_like(p) if p.grad is None else p.grad, leaf.axes))
        for name, p, leaf in _canonical_tensors(model, statistics=False)
    }


def canonical_shapes(model: nn.Module, *, statistics: bool = True) -> dict[str, tuple[int, ...]]:
    """Canonical name -> shape, without copying any data (works on the meta device)."""
    return {
        name: tuple(_permute(t, leaf.axes).shape)
        for name, t, leaf in _canonical_tensors(model, statistics=statistics)
    }


def load_canonical(model: nn.Module, weights: Mapping[str, np.ndarray]) -> None:
    """Copy canonical weights into ``model`` in place, checking every name and shape."""
    check_compatible(canonical_shapes(model), weights, model=type(model).__name__)
    with torch.no_grad():
        for name, tensor, leaf in _canonical_tensors(model):
            value = _permute(torch.from_numpy(np.array(weights[name])), leaf.inverse_axes)
            tensor.copy_(value.to(tensor.dtype))


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


def to_device(
    batch: Batch, device: str, dtype: torch.dtype, image_keys: Iterable[str] = ()
) -> dict[str, torch.Tensor]:
    """Batch arrays as tensors on ``device``: floats in the run's dtype, integers as int64 (the
    index dtype torch's losses and embeddings expect), ``image_keys`` from NHWC to NCHW."""
    images = set(image_keys)
    tensors = {}
    for key, array in batch.items():
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        tensor = tensor.to(dtype) if tensor.is_floating_point() else tensor.long()
        if key in images:
            tensor = tensor.permute(0, 3, 1, 2).contiguous()
        tensors[key] = tensor.to(device)
    return tensors


def build_on_meta(workload: Workload, size: Size) -> nn.Module:
    """The twin's model with shapes only (no memory), for parameter counts and init shapes."""
    with torch.device("meta"):
        model: nn.Module = workload.twin("torch").build(size.config)
    return model


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
        self.image_keys = image_keys_of(workload)
        self.model: nn.Module = self.twin.build(size.config).to(device, self.dtype)

    def load(self, weights: Mapping[str, np.ndarray]) -> None:
        load_canonical(self.model, weights)

    def weights(self) -> Canonical:
        return to_canonical(self.model)

    def statistics(self) -> Canonical:
        return statistics_to_canonical(self.model)

    def set_mode(self, train: bool) -> None:
        self.model.train(train)

    def _batch(self, batch: Batch) -> dict[str, torch.Tensor]:
        return to_device(batch, self.device, self.dtype, self.image_keys)

    def _channels_last(self, tensor: torch.Tensor) -> np.ndarray:
        """An activation in the JAX twin's layout: image workloads' 4-D maps NCHW -> NHWC."""
        if self.image_keys and tensor.dim() == 4:
            tensor = tensor.permute(0, 2, 3, 1)
        return _to_numpy(tensor)

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

    def activations(self, batch: Batch) -> dict[str, Activation]:
        """Each submodule's output and single input, in the order the modules finished."""
        recorded: dict[str, Activation] = {}

        def hook(name: str) -> Callable[[nn.Module, tuple[object, ...], object], None]:
            def record(_module: nn.Module, inputs: tuple[object, ...], output: object) -> None:
                if name in recorded or not isinstance(output, torch.Tensor):
                    return  # a module called twice is compared on its first call
                single = inputs[0] if len(inputs) == 1 else None
                x = self._channels_last(single) if isinstance(single, torch.Tensor) else None
                recorded[name] = Activation(self._channels_last(output), x)

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

    def apply_layer(self, name: str, x: np.ndarray) -> np.ndarray:
        """Run the submodule ``name`` alone on input ``x``, both in the JAX twin's layout."""
        tensor = torch.from_numpy(np.ascontiguousarray(x)).to(self.device, self.dtype)
        if self.image_keys and tensor.dim() == 4:
            tensor = tensor.permute(0, 3, 1, 2)
        with torch.no_grad():
            return self._channels_last(self.model.get_submodule(name)(tensor))
