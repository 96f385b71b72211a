"""Memory a cell's model uses, apart from the runtime it runs on.

A process that has imported torch or JAX is already a few hundred MB resident before it builds
anything, so its high-water mark compares runtimes, not models. A worker therefore takes a
`Baseline` once the framework is imported and its runtime started (and before the model, the
optimizer or the batches exist), and after the timed steps runs one more step of its own, the
*memory step*, outside the timed loop:

- ``attributable_peak_bytes``: the resident high-water mark during the memory step minus the
  resident memory at the baseline. On Linux the high-water mark is reset just before the step
  (writing ``5`` to ``/proc/self/clear_refs``), so compiler work done earlier does not count;
  where it cannot be reset it is the process's whole high-water mark (``attributable_method``
  says which). On a GPU it is the device's peak (``torch.cuda.max_memory_allocated`` over the
  step, JAX's ``peak_bytes_in_use``) and the resident figure stays as ``attributable_rss_…``.
- each framework's own account: XLA's ``memory_analysis()`` of the compiled step (``xla_*``) and
  its peak estimate arguments + outputs + temporaries − aliased; on a CPU, PyTorch's profiler
  memory records of one more step (``torch_profiled_step_peak_bytes``) and, eager, the bytes of
  activations autograd saved for the backward pass (``torch_saved_activation_bytes``).
- `analytic_floor_bytes`: parameters + gradients + optimizer state from the canonical shapes.
  ``activation_bytes`` is what the attributable peak holds beyond it.

Frameworks are imported only inside the functions that need them (the worker's process has them).
"""

from __future__ import annotations

import ctypes
import re
import statistics
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinbench.spec import OptimizerConfig

if TYPE_CHECKING:
    from twinbench.backends.protocols import Bench

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS_FIELD = re.compile(r"^(VmRSS|VmHWM|RssFile):\s+(\d+) kB$", re.MULTILINE)

RESET_METHOD = "resident high-water mark of the memory step (reset first) minus the baseline"
WHOLE_PROCESS_METHOD = "whole-process resident high-water mark minus the baseline (no reset here)"
DEVICE_METHOD = "device allocator peak of the memory step"

# Per-parameter state each optimizer keeps, as torch.optim and optax keep it.
BYTES_PER_ELEMENT = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}


def optimizer_slots(config: OptimizerConfig) -> int:
    """Tensors of parameter size an optimizer keeps: Adam's two moments, SGD's momentum."""
    if config.name in ("adam", "adamw"):
        return 2
    return 1 if config.momentum else 0


def analytic_floor_bytes(params: int, *, dtype: str, phase: str, slots: int) -> int:
    """Parameters + gradients + optimizer slots (training) or parameters alone (inference)."""
    copies = 1 + 1 + slots if phase == "train" else 1
    return params * copies * BYTES_PER_ELEMENT[dtype]


def _resident_kib() -> dict[str, int]:
    """VmRSS and VmHWM of this process in KiB; empty where /proc is not there."""
    try:
        text = _STATUS.read_text()
    except OSError:
        return {}
    return {name: int(kib) for name, kib in _STATUS_FIELD.findall(text)}


def _reset_high_water_mark() -> bool:
    """Reset this process's resident high-water mark to its current RSS (Linux only)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def _release_free_heap() -> None:
    """Hand memory the C allocator holds free back to the system (glibc), so that what a
    compiler freed earlier is not counted as resident."""
    with suppress(OSError, AttributeError):  # not glibc: nothing to hand back this way
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass(frozen=True)
class Baseline:
    """Resident memory once the framework's runtime is up, before the cell builds anything;
    ``file_bytes`` is its file-backed part (code and mapped libraries)."""

    rss_bytes: int | None
    file_bytes: int | None

    @classmethod
    def now(cls) -> Baseline:
        _release_free_heap()
        resident = _resident_kib()
        rss, file = resident.get("VmRSS"), resident.get("RssFile")
        return cls(
            rss * 1024 if rss is not None else None, file * 1024 if file is not None else None
        )


def start_runtime(framework: str, device: str) -> Baseline:
    """Import ``framework`` and start its runtime, so neither counts against the cell.

    Start-up includes the first training step of a throwaway two-weight model: it pages in the
    kernels and lazily imported modules, and (JAX) initialises the XLA compiler, none of which
    belongs to any one model. Freed heap goes back to the system before the baseline is read.
    """
    if framework == "torch":
        import torch

        import twinbench.backends.torch_timed  # noqa: F401  (its imports are runtime, too)

        model = torch.nn.Linear(2, 1)
        optimizer = torch.optim.Adam(model.parameters())
        model(torch.ones(1, 2)).sum().backward()
        optimizer.step()
        if device == "cuda" and torch.cuda.is_available():
            torch.empty(0, device="cuda")  # the CUDA context, not the cell's
    else:
        import jax
        import jax.numpy as jnp

        import twinbench.backends.jax_timed  # noqa: F401  (flax and optax)

        gradient = jax.jit(jax.grad(lambda w: jnp.sum(jnp.tanh(w @ w))))
        jax.block_until_ready(gradient(jnp.ones((2, 2))))  # type: ignore[no-untyped-call]
    return Baseline.now()


@contextmanager
def _torch_device_peak(device: str) -> Iterator[dict[str, int]]:
    """``torch.cuda.max_memory_allocated`` over the block, on a GPU; nothing elsewhere."""
    found: dict[str, int] = {}
    if device != "cuda":
        yield found
        return
    import torch

    torch.cuda.reset_peak_memory_stats()
    yield found
    found["device_peak_bytes"] = int(torch.cuda.max_memory_allocated())


def _jax_device_peak() -> int | None:
    """JAX's ``peak_bytes_in_use`` of the first device where the backend keeps it (GPU)."""
    import jax

    stats = jax.devices()[0].memory_stats()
    return int(stats["peak_bytes_in_use"]) if stats and "peak_bytes_in_use" in stats else None


def memory_step(bench: Bench, baseline: Baseline, *, framework: str, device: str) -> dict[str, Any]:
    """One step outside the timed loop, with the process's and the device's peaks around it.

    It resets the process's resident high-water mark: read the whole-process peak before.
    """
    figures: dict[str, Any] = {}
    before = Baseline.now()
    reset = _reset_high_water_mark()
    with _torch_device_peak(device if framework == "torch" else "cpu") as device_peak:
        bench.sync(bench.step())
    high_water = _resident_kib().get("VmHWM")
    if baseline.rss_bytes is not None and high_water is not None:
        # pages of code and libraries first touched since the baseline are the runtime's
        paged_in = (before.file_bytes or 0) - (baseline.file_bytes or 0)
        attributable = high_water * 1024 - baseline.rss_bytes - max(paged_in, 0)
        figures["attributable_rss_peak_bytes"] = max(attributable, 0)
        figures["file_backed_paged_in_bytes"] = paged_in
        figures["attributable_method"] = RESET_METHOD if reset else WHOLE_PROCESS_METHOD
    figures["runtime_baseline_rss_bytes"] = baseline.rss_bytes
    if framework == "jax":
        peak = _jax_device_peak()
        if peak is not None:
            device_peak["device_peak_bytes"] = peak
    figures.update(device_peak)
    if "device_peak_bytes" in figures:
        figures["attributable_peak_bytes"] = figures["device_peak_bytes"]
        figures["attributable_method"] = DEVICE_METHOD
    else:
        figures["attributable_peak_bytes"] = figures.get("attributable_rss_peak_bytes")
    return figures


def xla_memory_analysis(compiled: Any) -> dict[str, int]:
    """XLA's buffer assignment for a compiled step, and its peak estimate.

    The estimate is arguments + outputs + temporaries − aliased bytes (donated buffers are
    counted once); generated code is reported beside it, not in it.
    """
    stats = compiled.memory_analysis()
    if stats is None:  # a backend without the analysis
        return {}
    fields = {
        "xla_argument_bytes": int(stats.argument_size_in_bytes),
        "xla_output_bytes": int(stats.output_size_in_bytes),
        "xla_temp_bytes": int(stats.temp_size_in_bytes),
        "xla_alias_bytes": int(stats.alias_size_in_bytes),
        "xla_generated_code_bytes": int(stats.generated_code_size_in_bytes),
    }
    fields["xla_peak_estimate_bytes"] = (
        fields["xla_argument_bytes"]
        + fields["xla_output_bytes"]
        + fields["xla_temp_bytes"]
        - fields["xla_alias_bytes"]
    )
    return fields


def torch_profiled_step(bench: Bench, *, saved_activations: bool) -> dict[str, int]:
    """One step under ``torch.profiler`` with ``profile_memory=True``: the peak of CPU tensor
    memory allocated during the step above what was live when it began. With
    ``saved_activations`` (an eager training step) also the bytes autograd saved for backward."""
    from torch.profiler import ProfilerActivity, profile

    saving: AbstractContextManager[dict[int, int]] = (
        saved_for_backward() if saved_activations else nullcontext({})
    )
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof, saving as saved:
        bench.sync(bench.step())
    # the raw records, in time order: the aggregated events fold allocations into their ops
    results = prof.profiler.kineto_results if prof.profiler else None
    events = results.events() if results else []
    records = sorted((e for e in events if e.name() == "[memory]"), key=lambda e: e.start_ns())
    live = peak = 0
    for record in records:
        live += record.nbytes()
        peak = max(peak, live)
    figures = {"torch_profiled_step_peak_bytes": peak}
    if saved_activations:
        figures["torch_saved_activation_bytes"] = sum(saved.values())
    return figures


@contextmanager
def saved_for_backward() -> Iterator[dict[int, int]]:
    """Bytes of each storage autograd saves for the backward pass inside the block, leaves
    (parameters, the batch) and storages they share left out: the activations a step keeps."""
    import torch

    saved: dict[int, int] = {}
    leaves: set[int] = set()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if tensor.is_leaf:
            leaves.add(storage.data_ptr())
        else:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield saved
    for pointer in leaves:
        saved.pop(pointer, None)


# Per-process figures a cell's record keeps as medians over its processes, and by process.
_SPREAD_FIGURES = (
    "attributable_peak_bytes",
    "attributable_rss_peak_bytes",
    "runtime_baseline_rss_bytes",
    "torch_profiled_step_peak_bytes",
)
# Figures of the program itself, the same in every process: the first process's are kept.
_PROGRAM_FIGURES = (
    "xla_argument_bytes",
    "xla_output_bytes",
    "xla_temp_bytes",
    "xla_alias_bytes",
    "xla_generated_code_bytes",
    "xla_peak_estimate_bytes",
    "torch_saved_activation_bytes",
    "attributable_method",
)


def cell_memory_metrics(finals: list[dict[str, Any]], floor_bytes: int | None) -> dict[str, Any]:
    """A cell's stored memory figures from its processes' final answers: medians (and each
    process's value, for the spread) of the measured peaks, the program's own figures, the
    analytic floor and the activation memory above it."""
    metrics: dict[str, Any] = {}
    for name in _SPREAD_FIGURES:
        values = [f[name] for f in finals if f.get(name) is not None]
        if values:
            metrics[name] = int(statistics.median(values))
            metrics[f"{name}_by_process"] = values
    for name in _PROGRAM_FIGURES:
        value = next((f[name] for f in finals if f.get(name) is not None), None)
        if value is not None:
            metrics[name] = value
    metrics["analytic_floor_bytes"] = floor_bytes
    peak = metrics.get("attributable_peak_bytes")
    if peak is not None and floor_bytes is not None:
        metrics["activation_bytes"] = peak - floor_bytes
    return metrics


# What each stored memory figure is, for readers of exports and of load_results().
MEMORY_FIELDS = {
    "attributable_peak_bytes": "peak of one step above the runtime's own memory: the device "
    "allocator's peak on a GPU, else attributable_rss_peak_bytes (median over processes)",
    "attributable_rss_peak_bytes": "resident high-water mark of one step minus the resident "
    "memory once the runtime had started, code and libraries paged in since left out",
    "attributable_method": "how attributable_peak_bytes was measured on this machine",
    "runtime_baseline_rss_bytes": "resident memory after imports and runtime start-up",
    "analytic_floor_bytes": "parameters + gradients + optimizer state (training) or parameters "
    "(inference), from the canonical shapes",
    "activation_bytes": "attributable_peak_bytes minus analytic_floor_bytes",
    "xla_peak_estimate_bytes": "XLA's buffer assignment of the compiled step: arguments + "
    "outputs + temporaries - aliased (jax-jit)",
    "torch_profiled_step_peak_bytes": "peak of CPU tensor memory allocated during one step above "
    "what was live before it, from torch.profiler's memory records",
    "torch_saved_activation_bytes": "bytes autograd saved for the backward pass of one eager "
    "training step, parameters and inputs left out",
    "process_peak_memory_bytes": "the whole process's peak (device peak where the device keeps "
    "one, else the resident high-water mark), runtime included",
    "process_peak_rss_bytes": "the whole process's resident high-water mark, runtime included",
}
