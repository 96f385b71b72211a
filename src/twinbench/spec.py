"""The framework-neutral contract of a workload.

A workload says *what* is computed — sizes, data, loss, optimizer settings — and points at its two
twins, the PyTorch and the JAX implementation of *how*. Nothing here imports a framework.

A twin is a module (a file) that defines three functions::

    def build(config: Mapping[str, Any]) -> Model        # nn.Module / nnx.Module from Size.config
    def forward(model: Model, batch: Batch) -> Array      # the model's outputs for one batch
    def loss_fn(model: Model, batch: Batch) -> Scalar     # the training loss, mean over the batch

Batches are dicts of NumPy arrays; each backend moves them to its device before calling the twin.
Images travel channels-last (NHWC, JAX's layout); keys a workload lists in ``image_keys`` reach the
PyTorch twin as NCHW, PyTorch's layout, permuted once when the batch is placed on the device.

Both backends call ``model.train()`` / ``model.eval()`` before a train or an inference step, so
layers with a mode (BatchNorm, dropout) follow the phase being measured.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from twinbench.errors import TwinbenchError

Batch = dict[str, np.ndarray]
Framework = Literal["torch", "jax"]
FRAMEWORKS: tuple[Framework, ...] = ("torch", "jax")
SIZE_NAMES = ("tiny", "small", "full")

# What a user installs when a framework is missing (the CPU build of torch, as in the README).
INSTALL_HINTS = {
    "torch": "pip install torch==2.13.0 (CPU) or a CUDA build from pytorch.org",
    "jax": "pip install jax flax optax",
}


@dataclass(frozen=True)
class Size:
    """One size preset: the model's hyper-parameters and the batch size."""

    name: str
    config: Mapping[str, Any]
    batch_size: int
    tokens_per_sample: int = 0  # > 0 for sequence workloads, so throughput can be given in tokens/s


@dataclass(frozen=True)
class OptimizerConfig:
    """Optimizer hyper-parameters, all explicit, mapped identically onto torch.optim and optax.

    ``adam`` applies ``weight_decay`` as an L2 term added to the gradient (torch.optim.Adam);
    ``adamw`` decays the weights directly (decoupled, torch.optim.AdamW).
    """

    name: Literal["sgd", "adam", "adamw"]
    lr: float
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0


def sgd_and_adam(*, sgd_lr: float, adam_lr: float) -> dict[str, OptimizerConfig]:
    """The optimizers parity checks a curve for: SGD with momentum 0.9, and Adam, at these rates."""
    return {
        "sgd": OptimizerConfig("sgd", lr=sgd_lr, momentum=0.9),
        "adam": OptimizerConfig("adam", lr=adam_lr),
    }


DEFAULT_OPTIMIZERS = sgd_and_adam(sgd_lr=0.05, adam_lr=1e-3)


@runtime_checkable
class TwinModule(Protocol):
    """What a twin file provides (see the module docstring)."""

    def build(self, config: Mapping[str, Any]) -> Any: ...

    def forward(self, model: Any, batch: Any) -> Any: ...

    def loss_fn(self, model: Any, batch: Any) -> Any: ...


class Workload(Protocol):
    """The contract every workload meets; `WorkloadSpec` is the ready-made implementation."""

    name: str
    description: str
    sizes: Mapping[str, Size]
    loss: str
    optimizers: Mapping[str, OptimizerConfig]
    train_optimizer: str

    def batches(self, size: Size, seed: int) -> Iterator[Batch]: ...

    def twin(self, framework: Framework) -> TwinModule: ...

    def twin_path(self, framework: Framework) -> Path | None: ...

    def size(self, name: str) -> Size: ...


@dataclass(frozen=True)
class WorkloadSpec:
    """A workload described by data: sizes, a data generator and where its two twins live.

    ``twins`` maps each framework to a dotted module name (``"twinbench.workloads.mlp.torch_twin"``)
    or to a ``.py`` file path, relative to ``root`` when not absolute.
    """

    name: str
    description: str
    sizes: Mapping[str, Size]
    data: Callable[[Size, np.random.Generator], Iterator[Batch]]
    loss: str
    twins: Mapping[str, str]
    optimizers: Mapping[str, OptimizerConfig] = field(default_factory=lambda: DEFAULT_OPTIMIZERS)
    train_optimizer: str = "adam"
    root: Path | None = None
    # Analytic FLOPs of one training step (forward + backward), the figure the framework counters
    # are checked against; the workload's docstring states the formula.
    flops: Callable[[Size], float] | None = None
    # Raises a one-line TwinbenchError naming the constraint a config breaks (heads not dividing
    # the width, a sequence longer than the position table); sweeps call it on every point.
    validate: Callable[[Size], None] | None = None
    image_keys: tuple[str, ...] = ()  # batch keys holding NHWC images (see the module docstring)
    # The canonical init (shapes, seed) -> weights, when PyTorch's defaults that
    # `twinbench.canonical.init_canonical` draws are not what the reference model uses.
    init: Callable[[Mapping[str, tuple[int, ...]], int], dict[str, np.ndarray]] | None = None
    # Looser float32 parity tolerances for a size whose own float32 rounding noise exceeds the
    # defaults (measured against float64; the workload's docstring gives the evidence):
    # {size name: {"outputs" | "gradients" | "curve": (atol, rtol)}}.
    tolerances: Mapping[str, Mapping[str, tuple[float, float]]] = field(default_factory=dict)

    def size(self, name: str) -> Size:
        """The size preset called ``name``; a one-line error lists the valid ones."""
        if name not in self.sizes:
            valid = ", ".join(self.sizes)
            raise TwinbenchError(f"workload '{self.name}' has no size '{name}'; valid: {valid}")
        size = self.sizes[name]
        self.check(size)
        return size

    def check(self, size: Size) -> None:
        """Refuse a size whose config cannot work, with one line naming the constraint."""
        if size.batch_size < 1:
            raise TwinbenchError(f"{self.name}: batch size {size.batch_size} is invalid; give >= 1")
        if self.validate is not None:
            self.validate(size)

    def flops_per_step(self, size: Size) -> float | None:
        """Analytic FLOPs of one training step at ``size``, when the workload states them."""
        return None if self.flops is None else float(self.flops(size))

    def batches(self, size: Size, seed: int) -> Iterator[Batch]:
        """An endless, deterministic stream of batches for ``size``, from ``seed``."""
        return self.data(size, np.random.default_rng(seed))

    def twin_path(self, framework: Framework) -> Path | None:
        """The twin's source file, found without importing it (None if it cannot be located)."""
        ref = self.twins.get(framework)
        if ref is None:
            return None
        if ref.endswith(".py"):
            return Path(ref) if Path(ref).is_absolute() or self.root is None else self.root / ref
        try:
            spec = importlib.util.find_spec(ref)
        except ImportError:
            return None
        return Path(spec.origin) if spec is not None and spec.origin else None

    def twin(self, framework: Framework) -> TwinModule:
        """Import this workload's twin for ``framework``, with errors that say what is missing."""
        ref = self.twins.get(framework)
        if ref is None:
            raise TwinbenchError(f"workload '{self.name}' has no {framework} twin")
        require_framework(framework)
        module = _import_twin(ref, self.root)
        missing = [fn for fn in ("build", "forward", "loss_fn") if not hasattr(module, fn)]
        if missing:
            raise TwinbenchError(
                f"{framework} twin of '{self.name}' ({ref}) lacks {', '.join(missing)}; "
                "a twin defines build(config), forward(model, batch) and loss_fn(model, batch)"
            )
        return module


def package_twins(package: str) -> dict[str, str]:
    """The twins of a workload package: its ``torch_twin`` and ``jax_twin`` modules.

    A built-in workload is a folder whose ``__init__.py`` is the spec, so it writes
    ``twins=package_twins(__name__)``.
    """
    return {framework: f"{package}.{framework}_twin" for framework in FRAMEWORKS}


def package_workload(package: str, *, description: str, loss: str, **options: Any) -> WorkloadSpec:
    """The spec of a built-in workload package, called from its ``__init__.py`` as
    ``WORKLOAD = package_workload(__name__, description=..., loss=...)``.

    The package is named after its folder, defines ``SIZES`` and ``data(size, rng)`` above the
    call, and keeps its twins beside it (`package_twins`); ``options`` are further `WorkloadSpec`
    fields (optimizers, flops, validate, ...).
    """
    defined = vars(sys.modules[package])  # the package's own namespace, run up to this call
    return WorkloadSpec(
        name=package.rpartition(".")[2],
        description=description,
        sizes=defined["SIZES"],
        data=defined["data"],
        loss=loss,
        twins=package_twins(package),
        **options,
    )


# Checks a `WorkloadSpec.validate` is made of: each raises a one-line TwinbenchError that starts
# with the workload's name and names the config value that breaks the constraint.


def require_at_least(
    workload: str, config: Mapping[str, Any], keys: Iterable[str], low: int
) -> None:
    """Every ``config[key]`` is at least ``low``: ``lstm: hidden must be at least 1, got 0``."""
    for key in keys:
        if config[key] < low:
            raise TwinbenchError(f"{workload}: {key} must be at least {low}, got {config[key]}")


def require_divisible(workload: str, config: Mapping[str, Any], key: str, *, by: str) -> None:
    """``config[key]`` is a multiple of ``config[by]``: ``gpt: d_model 100 is not divisible by
    n_heads 3``."""
    if config[key] % config[by]:
        raise TwinbenchError(
            f"{workload}: {key} {config[key]} is not divisible by {by} {config[by]}"
        )


def require_one_of(
    workload: str, config: Mapping[str, Any], key: str, valid: Iterable[str]
) -> None:
    """``config[key]`` is one of ``valid``: ``resnet: stem 'x' is not one of cifar, imagenet``."""
    names = list(valid)
    if config[key] not in names:
        raise TwinbenchError(f"{workload}: {key} '{config[key]}' is not one of {', '.join(names)}")


def image_keys_of(workload: Workload) -> tuple[str, ...]:
    """The batch keys ``workload`` declares as NHWC images (none for a minimal Workload)."""
    return tuple(getattr(workload, "image_keys", ()))


def check_size(workload: Workload, size: Size) -> None:
    """``workload.check(size)`` where the workload has it (a minimal Workload may not)."""
    check = getattr(workload, "check", None)
    if check is not None:
        check(size)


def analytic_flops(workload: Workload, size: Size) -> float | None:
    """The workload's analytic FLOPs per training step, or None when it states none."""
    flops_per_step = getattr(workload, "flops_per_step", None)
    return None if flops_per_step is None else flops_per_step(size)


def require_framework(framework: Framework) -> None:
    """Fail with an install hint when ``framework`` cannot be imported."""
    packages = {"torch": ("torch",), "jax": ("jax", "flax", "optax")}[framework]
    for package in packages:
        if importlib.util.find_spec(package) is None:
            raise TwinbenchError(
                f"{framework} twin needs the '{package}' package, which is not installed: "
                f"{INSTALL_HINTS[framework]}"
            )


def available_frameworks() -> list[Framework]:
    """The frameworks importable in this environment."""
    found: list[Framework] = []
    for framework in FRAMEWORKS:
        try:
            require_framework(framework)
        except TwinbenchError:
            continue
        found.append(framework)
    return found


def _import_twin(ref: str, root: Path | None) -> ModuleType:
    if not ref.endswith(".py"):
        return importlib.import_module(ref)
    path = Path(ref) if Path(ref).is_absolute() or root is None else root / ref
    if not path.is_file():
        raise TwinbenchError(f"twin file {path} does not exist")
    return load_module_from_path(path)


def load_module_from_path(path: Path) -> ModuleType:
    """Import a Python file as a module named after its resolved path (so it imports once)."""
    path = path.resolve()
    name = "twinbench_user_" + "_".join(path.with_suffix("").parts[1:])
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TwinbenchError(f"cannot import {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # a file that calls sys.exit() must not end the CLI
        del sys.modules[name]
        detail = f"{type(exc).__name__}: {exc}".splitlines()[0] if str(exc) else type(exc).__name__
        raise TwinbenchError(f"cannot import {path}: {detail}") from exc
    return module
