"""JAX's deployment paths: ``jax.export`` → serialized StableHLO, and ``jax2onnx`` → an ONNX
file; the serialized module's loader.

Both start from one pure function of the inputs: the Flax NNX model is split into its graph and
its state once, and the state (the canonical weights) is closed over, so it is baked into the
artefact as constants, as an AOTInductor package holds its weights. The batch dimension is
``jax.export.symbolic_shape`` (a named dimension for jax2onnx) when ``dynamic``. A deserialized
module is compiled by XLA on its first call: that compile is part of the path's cold start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from time import perf_counter
from typing import Any

import jax
import numpy as np
from flax import nnx

from twinbench.backends.jax_backend import to_device
from twinbench.spec import Batch, TwinModule

NAME = "jax"
Serve = Callable[[Sequence[np.ndarray]], np.ndarray]


def configure(threads: int) -> None:
    """XLA's pool is sized from the environment (``thread_environment``) and CPU affinity."""


def inference(
    twin: TwinModule, model: nnx.Module, keys: Sequence[str], image_keys: Sequence[str] = ()
) -> Callable[..., jax.Array]:
    """The twin's forward as a pure function of positional arrays, the weights closed over
    (images are channels-last already: JAX's layout is the callers')."""
    graphdef, state = nnx.split(model)
    names = list(keys)

    def infer(*inputs: jax.Array) -> jax.Array:
        out: jax.Array = twin.forward(
            nnx.merge(graphdef, state), dict(zip(names, inputs, strict=True))
        )
        return out

    return infer


def device_batch(batch: Batch, image_keys: Sequence[str] = ()) -> dict[str, jax.Array]:
    """The batch as the twin takes it (images channels-last, JAX's layout)."""
    return to_device(batch, None, np.float32)


def forward_of(twin: TwinModule, model: nnx.Module) -> Callable[[dict[str, Any]], object]:
    def forward(batch: dict[str, Any]) -> object:
        return twin.forward(model, batch)

    return forward


def arguments(batch: Batch, keys: Sequence[str]) -> list[jax.Array]:
    """The artefact's positional inputs: the batch's arrays that ``keys`` name."""
    arrays = device_batch(batch)
    return [arrays[k] for k in keys]


def _specs(args: Sequence[jax.Array], batch: Any) -> list[jax.ShapeDtypeStruct]:
    return [jax.ShapeDtypeStruct((batch, *a.shape[1:]), a.dtype) for a in args]  # type: ignore[no-untyped-call]


def export_native(
    infer: Callable[..., jax.Array], args: Sequence[jax.Array], file: Path, *, dynamic: bool
) -> dict[str, float]:
    """jax.export of the jitted forward, serialized to bytes; phase seconds."""
    start = perf_counter()
    (b,) = jax.export.symbolic_shape("b") if dynamic else (args[0].shape[0],)
    exported = jax.export.export(jax.jit(infer))(*_specs(args, b))
    file.write_bytes(exported.serialize())
    return {"trace_s": perf_counter() - start}


def export_onnx(
    infer: Callable[..., jax.Array], args: Sequence[jax.Array], file: Path, *, dynamic: bool
) -> dict[str, float]:
    """jax2onnx's conversion; its one-time plugin registration is timed on its own."""
    from jax2onnx import to_onnx
    from jax2onnx.plugins.plugin_system import import_all_plugins

    start = perf_counter()
    import_all_plugins()
    registered = perf_counter()
    b = "B" if dynamic else args[0].shape[0]
    to_onnx(infer, _specs(args, b), return_mode="file", output_path=str(file))
    return {"setup_s": registered - start, "convert_s": perf_counter() - registered}


def dtype_name(array: jax.Array) -> str:
    return str(array.dtype)


def load_native(file: Path) -> Serve:
    """The deserialized module, jitted, as a NumPy-in, NumPy-out call."""
    call = jax.jit(jax.export.deserialize(bytearray(file.read_bytes())).call)

    def serve(arrays: Sequence[np.ndarray]) -> np.ndarray:
        return np.asarray(call(*arrays))

    return serve
