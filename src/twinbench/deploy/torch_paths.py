"""PyTorch's deployment paths: ``torch.export`` → an AOTInductor package, and
``torch.onnx.export(..., dynamo=True)`` → an ONNX file; the package's loader.

Both exporters start from one `torch.export.ExportedProgram` of the twin in eval mode with the
canonical weights, its batch dimension a `torch.export.Dim` when ``dynamic``. The AOTInductor
package holds the compiled C++ model and its weights; `aoti_load_package` needs torch at load.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
import torch
from torch import nn

from twinbench.backends.torch_backend import to_device
from twinbench.spec import Batch, TwinModule

NAME = "torch"
MAX_BATCH = 65_536  # the symbolic batch's upper bound (torch.export wants one)
Serve = Callable[[Sequence[np.ndarray]], np.ndarray]


def configure(threads: int) -> None:
    if threads:
        torch.set_num_threads(threads)


def inference(
    twin: TwinModule, model: nn.Module, keys: Sequence[str], image_keys: Sequence[str] = ()
) -> Inference:
    """The twin's forward as the module every torch exporter takes."""
    return Inference(twin, model, keys, image_keys)


class Inference(nn.Module):
    """The twin's forward as a module of positional tensors (the inputs ``keys`` name).

    Images arrive channels-last, as every artefact's caller sends them (JAX's layout); the
    module permutes them to the twin's NCHW, so the permute is part of the exported graph.
    """

    def __init__(
        self,
        twin: TwinModule,
        model: nn.Module,
        keys: Sequence[str],
        image_keys: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.twin, self.model, self.keys = twin, model, list(keys)
        self.image_keys = set(image_keys)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        batch = {
            k: x.permute(0, 3, 1, 2) if k in self.image_keys else x
            for k, x in zip(self.keys, inputs, strict=True)
        }
        out: torch.Tensor = self.twin.forward(self.model, batch)
        return out


def device_batch(batch: Batch, image_keys: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """The batch as the twin takes it: tensors, ``image_keys`` permuted to NCHW."""
    return to_device(batch, "cpu", torch.float32, image_keys)


def forward_of(twin: TwinModule, model: nn.Module) -> Callable[[dict[str, Any]], object]:
    """The twin's eager forward on a `device_batch`."""

    def forward(batch: dict[str, Any]) -> object:
        with torch.no_grad():
            return twin.forward(model, batch)

    return forward


def arguments(batch: Batch, keys: Sequence[str]) -> tuple[torch.Tensor, ...]:
    """The artefact's positional inputs: the batch's tensors that ``keys`` name (images NHWC,
    as callers send them)."""
    tensors = device_batch(batch)
    return tuple(tensors[k] for k in keys)


def _batch_shapes(args: Sequence[torch.Tensor], dynamic: bool) -> Any:
    """A symbolic first dimension for every input, or None for the example's shapes."""
    if not dynamic:
        return None
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    return (tuple({0: batch} for _ in args),)  # forward(*inputs): one entry, a tuple


def export_native(
    module: Inference, args: tuple[torch.Tensor, ...], file: Path, *, dynamic: bool
) -> dict[str, float]:
    """torch.export, then AOTInductor's C++ compile into a ``.pt2`` package; phase seconds."""
    start = perf_counter()
    program = torch.export.export(module.eval(), args, dynamic_shapes=_batch_shapes(args, dynamic))
    traced = perf_counter()
    torch._inductor.aoti_compile_and_package(program, package_path=str(file))
    return {"trace_s": traced - start, "compile_s": perf_counter() - traced}


def export_onnx(
    module: Inference, args: tuple[torch.Tensor, ...], file: Path, *, dynamic: bool
) -> dict[str, float]:
    """The dynamo-based ONNX exporter (it runs torch.export itself); phase seconds."""
    start = perf_counter()
    program = torch.onnx.export(
        module.eval(), args, dynamic_shapes=_batch_shapes(args, dynamic), dynamo=True
    )
    assert program is not None  # dynamo=True always returns the ONNXProgram
    program.save(str(file))
    return {"convert_s": perf_counter() - start}


def dtype_name(array: torch.Tensor) -> str:
    return str(array.dtype).removeprefix("torch.")


def load_native(file: Path) -> Serve:
    """The AOTInductor package as a NumPy-in, NumPy-out call."""
    runner = torch._inductor.aoti_load_package(str(file))

    def serve(arrays: Sequence[np.ndarray]) -> np.ndarray:
        out = runner(*(torch.from_numpy(a) for a in arrays))
        return np.asarray((out[0] if isinstance(out, list | tuple) else out).numpy())

    return serve
