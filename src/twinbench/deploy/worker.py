"""A deploy suite process: ``python -m twinbench.deploy.worker``, one request, one answer.

``export`` builds one twin with the canonical weights in eval mode, writes its eager outputs for
every batch size (the fidelity reference) and exports one path's artefact — with a symbolic
batch dimension, or, if the exporter refuses that, at one batch size. ``serve`` is a fresh
process that never exported: it imports the path's runtime, loads the artefact, runs a first
inference (together: the cold start), saves the artefact's outputs, then times single calls at
each batch size. A call takes NumPy inputs and returns NumPy outputs, as a request would.
Neither request imports a framework before its timer starts.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from time import perf_counter
from types import ModuleType
from typing import Any, Protocol, cast

import numpy as np

from twinbench.backends import Runner, make_runner
from twinbench.deploy.inputs import ArtefactInfo, read_inputs, save_by_batch, used_keys
from twinbench.deploy.settings import framework_of, group_of
from twinbench.harness import timing
from twinbench.harness.process import Handler, serve, thread_budget
from twinbench.spec import Framework, Size, Workload

EXTENSIONS = {
    "torch-aoti": ".pt2",
    "jax-stablehlo": ".jaxexport",
    "torch-onnx": ".onnx",
    "jax-onnx": ".onnx",
}
RUNTIMES = {
    "torch-aoti": "torch",
    "jax-stablehlo": "jax",
    "torch-onnx": "onnxruntime",
    "jax-onnx": "onnxruntime",
}
ERROR_CHARS = 500
MIN_CALLS = 20  # timed calls per batch size, however long the budget
# ... and at most this many, however short the call: plenty for a p99, and the parent's
# hierarchical bootstrap (resamples × processes × calls) stays a few hundred MB, not gigabytes
MAX_CALLS = 2_000


def artefact_file(folder: Path, path: str) -> Path:
    """Where ``path``'s artefact lives in a workload's folder (one subfolder per path)."""
    return folder / path / f"model{EXTENSIONS[path]}"


def reference_file(folder: Path, framework: str) -> Path:
    return folder / f"eager-{framework}.npz"


def outputs_file(folder: Path, path: str) -> Path:
    return folder / path / "outputs.npz"


ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the ONNX exporter colours its messages


def _first_line(exc: BaseException) -> str:
    lines = [line for line in ANSI.sub("", str(exc)).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def one_line(exc: BaseException) -> str:
    """The error and, when it wraps another (an exporter re-raising), the root cause."""
    root = exc
    while (inner := root.__cause__ or root.__context__) is not None and inner is not root:
        root = inner
    text = _first_line(exc) if root is exc else f"{_first_line(exc)} (cause: {_first_line(root)})"
    return text[:ERROR_CHARS]


class EvalRunner(Runner, Protocol):
    """A parity runner with the twin's model it drives (both frameworks' runners hold one)."""

    model: Any


def eval_runner(
    framework: Framework, workload: Workload, size: Size, weights: Mapping[str, np.ndarray]
) -> EvalRunner:
    """The twin in eval mode holding ``weights``: the model every artefact is exported from."""
    runner = cast("EvalRunner", make_runner(framework, workload, size))
    runner.load(weights)
    runner.set_mode(False)
    return runner


def side(framework: str) -> ModuleType:
    module = importlib.import_module(f"twinbench.deploy.{framework}_paths")
    module.configure(thread_budget())
    return module


def export(request: dict[str, Any]) -> dict[str, Any]:
    """Export one path's artefact; an exporter's failure is an answer, not a crash."""
    from twinbench.backends import initial_weights
    from twinbench.registry import builtin
    from twinbench.spec import image_keys_of

    path, folder = request["path"], Path(request["folder"])
    framework = framework_of(path)
    workload = builtin(request["workload"])
    size = workload.size(request["size"])
    sd = side(framework)
    runner = eval_runner(
        framework, workload, size, initial_weights(workload, size, request["seed"], framework)
    )
    batches = read_inputs(folder)
    save_by_batch(
        reference_file(folder, framework), {b: runner.outputs(x) for b, x in batches.items()}
    )
    largest = max(batches)
    twin, model = workload.twin(framework), runner.model
    images = image_keys_of(workload)
    example = sd.device_batch(batches[largest], images)
    keys = used_keys(sd.forward_of(twin, model), example)
    infer, args = sd.inference(twin, model, keys, images), sd.arguments(batches[largest], keys)
    file = artefact_file(folder, path)
    file.parent.mkdir(parents=True, exist_ok=True)
    exporter = sd.export_native if group_of(path) == "native" else sd.export_onnx
    answer: dict[str, Any] = {"pid": os.getpid(), "dynamic_error": None}
    try:
        phases = exporter(infer, args, file, dynamic=True)
        dynamic = True
    except Exception as exc:  # the exporter refused a symbolic batch: try one fixed batch size
        answer["dynamic_error"] = one_line(exc)
        try:
            phases = exporter(infer, args, file, dynamic=False)
        except Exception as again:
            return {**answer, "status": "error", "error": one_line(again)}
        dynamic = False
    dtypes = [sd.dtype_name(example[k]) for k in keys]
    ArtefactInfo(keys=keys, dtypes=dtypes, dynamic=dynamic, batch=largest).write(file)
    sizes = [f.stat().st_size for f in file.parent.iterdir() if f.suffix not in (".json", ".npz")]
    return {
        **answer,
        "status": "ok",
        "error": None,
        "dynamic": dynamic,
        "phases": phases,
        "export_s": sum(v for k, v in phases.items() if k != "setup_s"),
        "size_bytes": sum(sizes),
    }


def _loader(path: str, file: Path) -> Any:
    if group_of(path) == "onnx":
        from twinbench.deploy import onnx_runtime

        return onnx_runtime.load(file, thread_budget())
    return side(framework_of(path)).load_native(file)


def _device(path: str) -> str:
    """Where the artefact ran: ONNX Runtime's execution provider, else the CPU."""
    if group_of(path) == "onnx":
        from twinbench.deploy import onnx_runtime

        return onnx_runtime.providers()[0]
    return "cpu"


def serve_artefact(request: dict[str, Any]) -> dict[str, Any]:
    """Cold start (runtime import, artefact load, first call), outputs, then latency samples."""
    path, folder = request["path"], Path(request["folder"])
    file = artefact_file(folder, path)
    info = ArtefactInfo.read(file)
    batches = {b: info.arguments(x) for b, x in read_inputs(folder).items() if info.accepts(b)}
    first = max(batches)
    start = perf_counter()
    importlib.import_module(RUNTIMES[path])
    imported = perf_counter()
    call = _loader(path, file)
    loaded = perf_counter()
    outputs = {first: call(batches[first])}
    done = perf_counter()
    errors: dict[str, str] = {}
    for b, args in batches.items():
        try:
            outputs[b] = call(args)
        except Exception as exc:  # a symbolic batch the runtime then refuses at this size
            errors[str(b)] = one_line(exc)
    if request["save_outputs"]:
        save_by_batch(outputs_file(folder, path), outputs)
    latency = {}
    for b, args in batches.items():
        if str(b) in errors:
            continue

        def step(args: list[np.ndarray] = args) -> np.ndarray:
            out: np.ndarray = call(args)
            return out

        latency[str(b)] = latency_samples(step, request["budget_s"])
    return {
        "pid": os.getpid(),
        "import_s": imported - start,
        "load_s": loaded - imported,
        "first_call_s": done - loaded,
        "cold_start_s": done - start,
        "device": _device(path),
        "latency": latency,
        "batch_errors": errors,
    }


def latency_samples(step: timing.Step, budget_s: float) -> list[float]:
    """Single-call times after a warm-up: for up to ``budget_s`` seconds, at least `MIN_CALLS`
    and at most `MAX_CALLS` calls (the warm-up's pace says how long those take)."""
    start = perf_counter()
    warm = timing.warm_up(step, _no_sync)
    per_call = (perf_counter() - start) / warm
    samples = timing.time_blocks(step, _no_sync, 1, min(budget_s, MAX_CALLS * per_call))
    while len(samples) < MIN_CALLS:  # a slow call: enough of them for the percentiles
        samples += timing.time_blocks(step, _no_sync, 1, 0.0)
    return samples[:MAX_CALLS]


def _no_sync(_out: object) -> None:
    """Every call returns NumPy arrays, so it has finished when it returns."""


HANDLERS: dict[str, Handler] = {"export": export, "serve": serve_artefact}


if __name__ == "__main__":
    serve(HANDLERS)
