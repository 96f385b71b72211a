"""A PyTorch twin set up for timing: eager or torch.compile, train or infer step."""

from __future__ import annotations

from collections.abc import Callable
from itertools import cycle, islice
from time import perf_counter
from typing import Any

import torch
from torch.utils import flop_counter
from torch.utils.flop_counter import FlopCounterMode

from twinbench.backends import initial_weights
from twinbench.backends.torch_backend import DTYPES, load_canonical, make_optimizer, to_device
from twinbench.spec import Size, Workload, image_keys_of

DEVICE_BATCHES = 4  # distinct batches kept on the device and cycled through while timing


def _as_registered(formula: Callable[..., int]) -> Callable[..., int]:
    """A formula torch already registered (shape-wrapped), marked so it is not wrapped twice."""

    def count(*args: Any, **kwargs: Any) -> int:
        return formula(*args, **kwargs)

    count._get_raw = True  # type: ignore[attr-defined]
    return count


# FlopCounterMode counts the CUDA fused-attention kernels but has no formula for the CPU one, so
# scaled_dot_product_attention on a CPU would count as zero FLOPs; same formulas as the CUDA ones.
_CPU_ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _as_registered(
        flop_counter.sdpa_flop
    ),
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _as_registered(
        flop_counter.sdpa_backward_flop
    ),
}


class TorchBench:
    """One cell's PyTorch side: model, optimizer and batches on the device, a step to time."""

    def __init__(
        self,
        workload: Workload,
        size: Size,
        *,
        mode: str,
        phase: str,
        dtype: str,
        device: str,
        seed: int,
        allow_tf32: bool,
        compile_mode: str,
    ) -> None:
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
        torch.backends.cudnn.allow_tf32 = allow_tf32
        torch.set_float32_matmul_precision("high" if allow_tf32 else "highest")
        self.device = device
        twin = workload.twin("torch")
        model = twin.build(size.config).to(device, DTYPES[dtype])
        load_canonical(model, initial_weights(workload, size, seed, framework="torch"))
        batches = [
            to_device(b, device, DTYPES[dtype], image_keys_of(workload))
            for b in islice(workload.batches(size, seed), DEVICE_BATCHES)
        ]
        self._batches = cycle(batches)
        self._first_batch = batches[0]

        if phase == "train":
            model.train()
            optimizer = make_optimizer(
                model.parameters(), workload.optimizers[workload.train_optimizer]
            )

            def step(batch: dict[str, torch.Tensor]) -> torch.Tensor:
                optimizer.zero_grad(set_to_none=True)
                loss = twin.loss_fn(model, batch)
                loss.backward()
                optimizer.step()
                return loss.detach()
        else:
            model.eval()

            def step(batch: dict[str, torch.Tensor]) -> torch.Tensor:
                with torch.no_grad():
                    return twin.forward(model, batch)

        self._eager_step = step
        self._step = torch.compile(step, mode=compile_mode) if mode == "torch-compile" else step

    def compile(self) -> float | None:
        """torch.compile compiles on the first call, so there is no separate compile phase."""
        return None

    def step(self) -> Any:
        return self._step(next(self._batches))

    def sync(self, _out: Any = None) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def flops_per_step(self) -> float | None:
        """FLOPs of one step, from torch.utils.flop_counter (runs one eager step)."""
        with FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION_FLOPS) as counter:
            self._eager_step(self._first_batch)
        return float(counter.get_total_flops())

    def peak_device_memory(self) -> int | None:
        return torch.cuda.max_memory_allocated() if self.device == "cuda" else None


def matmul_probe(*, n: int, dtype: str, device: str, seconds: float) -> float:
    """Best FLOP/s of an n×n matmul over about ``seconds``: the machine's achievable peak."""
    a = torch.randn(n, n, dtype=DTYPES[dtype], device=device)
    b = torch.randn(n, n, dtype=DTYPES[dtype], device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    best = float("inf")
    deadline = perf_counter() + seconds
    while perf_counter() < deadline:
        start = perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, perf_counter() - start)
    return 2 * n**3 / best
