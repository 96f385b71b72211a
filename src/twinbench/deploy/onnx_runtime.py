"""ONNX Runtime, the one runtime both frameworks' ONNX files are served by. Imports neither
framework: serving an ONNX file needs only ``onnxruntime``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

Serve = Callable[[Sequence[np.ndarray]], np.ndarray]
PREFERRED = ("CUDAExecutionProvider", "CPUExecutionProvider")


def providers() -> list[str]:
    """The execution providers used: CUDA where this onnxruntime has it, then the CPU."""
    available = set(ort.get_available_providers())
    return [p for p in PREFERRED if p in available]


def load(file: Path, threads: int) -> Serve:
    """An inference session over ``file`` with ``threads`` intra-op threads (0: its default)."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(file), options, providers=providers())
    names = [i.name for i in session.get_inputs()]

    def serve(arrays: Sequence[np.ndarray]) -> np.ndarray:
        out = session.run(None, dict(zip(names, arrays, strict=True)))[0]
        return np.asarray(out)

    return serve
