"""A PyTorch twin set up for timing: eager or torch.compile, train or infer step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Unpack

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from twinbench.backends import initial_weights
from twinbench.backends.timed import BenchSettings, DeviceBatches, fastest_call
from twinbench.backends.torch_backend import DTYPES, load_canonical, make_optimizer, to_device
from twinbench.backends.torch_steps import predict_step, train_step
from twinbench.spec import Size, Workload, image_keys_of


def _as_registered(formula: Callable[..., int]) -> Callable[..., int]:
    """A formula torch already registered (shape-wrapped), marked so it is not wrapped twice."""

    def count(*args: Any, **kwargs: Any) -> int:
        return formula(*args, **kwargs)

    count._get_raw = True  # type: ignore[attr-defined]
    return count


def _rnn_layer_flops(input: Any, weight_ih: Any, weight_hh: Any, *_: Any, **__: Any) -> int:
    """One oneDNN LSTM layer over the sequence: the input and hidden projections of every step,
    ``2 · (T·B) · G·H · (in + H)`` (gate element-wise work not counted, as for nn.Linear)."""
    steps_times_batch = input.numel() // input.shape[-1]  # (T, B, in), (B, T, in) or packed
    gates_hidden, in_features = weight_ih.shape
    return int(2 * steps_times_batch * gates_hidden * (in_features + weight_hh.shape[1]))


def _rnn_layer_backward_flops(
    input: Any, weight_ih: Any, weight_hh: Any, *_: Any, **__: Any
) -> int:
    """Gradients of both projections' weights and inputs: twice the forward."""
    return 2 * _rnn_layer_flops(input, weight_ih, weight_hh)


def _raw(formula: Callable[..., int]) -> Callable[..., int]:
    formula._get_raw = True  # type: ignore[attr-defined]  # receives tensors, not shapes
    return formula


# Kernels FlopCounterMode has no formula for on a CPU, which would count as zero FLOPs: the fused
# attention (torch counts only the CUDA kernels; same formulas here) and the oneDNN LSTM layer
# nn.LSTM runs as (nn.GRU on a CPU runs as counted matmuls).
_CPU_KERNEL_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _as_registered(
        flop_counter.sdpa_flop
    ),
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _as_registered(
        flop_counter.sdpa_backward_flop
    ),
    torch.ops.aten.mkldnn_rnn_layer: _raw(_rnn_layer_flops),
    torch.ops.aten.mkldnn_rnn_layer_backward: _raw(_rnn_layer_backward_flops),
}


class TorchBenchSettings(BenchSettings):
    """A torch cell's settings: the shared ones and torch.compile's ``mode``."""

    compile_mode: str


class TorchBench:
    """One cell's PyTorch side: model, optimizer and batches on the device, a step to time."""

    def __init__(
        self, workload: Workload, size: Size, **settings: Unpack[TorchBenchSettings]
    ) -> None:
        device, dtype, allow_tf32 = settings["device"], settings["dtype"], settings["allow_tf32"]
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
        torch.backends.cudnn.allow_tf32 = allow_tf32
        torch.set_float32_matmul_precision("high" if allow_tf32 else "highest")
        self.device = device
        twin = workload.twin("torch")
        model = twin.build(size.config).to(device, DTYPES[dtype])
        seed = settings["seed"]
        load_canonical(model, initial_weights(workload, size, seed, framework="torch"))
        image_keys = image_keys_of(workload)
        self._batches = DeviceBatches(
            workload, size, seed, lambda b: to_device(b, device, DTYPES[dtype], image_keys)
        )

        self._model = model
        self._optimizer: torch.optim.Optimizer | None = None
        if settings["phase"] == "train":
            model.train()
            optimizer = make_optimizer(
                model.parameters(), workload.optimizers[workload.train_optimizer]
            )
            self._optimizer = optimizer
            step = train_step(twin, model, optimizer)
        else:
            model.eval()
            step = predict_step(twin, model)

        self._eager_step = step
        compiled = settings["mode"] == "torch-compile"
        self._step = torch.compile(step, mode=settings["compile_mode"]) if compiled else step

    def compile(self) -> float | None:
        """torch.compile compiles on the first call, so there is no separate compile phase."""
        return None

    def step(self) -> Any:
        return self._step(self._batches.next())

    def sync(self, _out: Any = None) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def flops_per_step(self) -> float | None:
        """FLOPs of one step, from torch.utils.flop_counter (runs one eager step)."""
        with FlopCounterMode(display=False, custom_mapping=_CPU_KERNEL_FLOPS) as counter:
            self._eager_step(self._batches.first)
        return float(counter.get_total_flops())

    def peak_device_memory(self) -> int | None:
        return torch.cuda.max_memory_allocated() if self.device == "cuda" else None

    def state_bytes(self) -> int:
        """Storage bytes of the parameters, buffers, gradients, optimizer state and one batch,
        each storage counted once (tied weights share one)."""
        tensors = [*self._model.parameters(), *self._model.buffers(), *self._batches.first.values()]
        tensors += [p.grad for p in self._model.parameters() if p.grad is not None]
        if self._optimizer is not None:
            for slots in self._optimizer.state.values():
                tensors += [t for t in slots.values() if isinstance(t, torch.Tensor)]
        storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
        return sum(storages.values())


def matmul_probe(*, n: int, dtype: str, device: str, seconds: float) -> float:
    """Best FLOP/s of an n×n matmul over about ``seconds``: the machine's achievable peak."""
    a = torch.randn(n, n, dtype=DTYPES[dtype], device=device)
    b = torch.randn(n, n, dtype=DTYPES[dtype], device=device)

    def matmul() -> None:
        torch.mm(a, b)
        if device == "cuda":
            torch.cuda.synchronize()

    return 2 * n**3 / fastest_call(matmul, seconds=seconds)
