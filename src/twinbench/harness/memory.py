"""Memory a cell's model uses, apart from the runtime and the compiler it runs on.

A process that has imported torch or JAX is already a few hundred MB resident before it builds
anything, and compiling a step (XLA's executable and caches, Inductor's generated code, Dynamo's
state, the pages a compiler touched) keeps tens of MB more resident that no model needs. So a
worker measures the model the same way in every mode, eager or compiled, in its *memory step*
after compile, warm-up and the timed steps:

- ``attributable_peak_bytes`` = ``model_state_bytes`` + ``step_transient_bytes``: the bytes of the
  arrays that live from one step to the next, counted from the framework's own arrays
  (parameters and buffers, gradients kept between steps, optimizer state, one batch), plus what
  one step allocates above them: the resident high-water mark during the step minus the
  resident memory just before it (``warm_baseline_rss_bytes``), the largest of four warm
  steps (one can draw its temporaries from memory an XLA thread's heap still held). On Linux the
  high-water mark is reset just before each (writing ``5`` to ``/proc/self/clear_refs``); where
  it cannot be, the transient is the whole process's high-water mark above that baseline,
  compiling included (``attributable_method`` says which). On a GPU it is the device's peak
  (``torch.cuda.max_memory_allocated`` over the step, JAX's ``peak_bytes_in_use``) and the
  resident figure stays as ``attributable_rss_…``.
- ``compiler_resident_bytes``: what the compiler and runtime kept resident beyond the model's
  state: resident growth from the runtime's start to just before the memory step, less
  ``model_state_bytes`` (compiled code and caches, modules imported to compile, allocator
  pools; the bench's other cached batches, a few KB to MB, too).
- each framework's own account: XLA's ``memory_analysis()`` of the compiled step (``xla_*``) and
  its peak estimate arguments + outputs + temporaries − aliased; on a CPU, PyTorch's profiler
  memory records of one more step (``torch_profiled_step_peak_bytes``) and, eager, the bytes of
  activations autograd saved for the backward pass (``torch_saved_activation_bytes``).
- `analytic_floor_bytes`: parameters + gradients + optimizer state from the canonical shapes.
  ``activation_bytes`` is what the attributable peak holds beyond it.
- ``runtime_baseline_rss_bytes``: resident memory once the framework's runtime had started, and
  the ``process_peak_*`` figures: the whole process, runtime and compiler included.

Frameworks are imported only inside the functions that need them (the worker's process has them).
"""

from __future__ import annotations

import ctypes
import os
import re
import statistics
import time
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
# glibc's mallopt parameters (malloc.h), and the size from which blocks are mapped one by one
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MAPPED_FROM = 64 * 1024
# the environment variables glibc reads the same thresholds from at start-up, and its default
_THRESHOLD_VARIABLES = {
    _M_TRIM_THRESHOLD: "MALLOC_TRIM_THRESHOLD_",
    _M_MMAP_THRESHOLD: "MALLOC_MMAP_THRESHOLD_",
}
_GLIBC_DEFAULT_THRESHOLD = 128 * 1024
# steps run once the allocator releases at once, before the measured ones: the heaps they
# allocate in hand back what earlier steps left there
SETTLING_STEPS = 2
# warm steps measured, the one that rose most kept: a step run on a thread whose heap no
# settling step used finds earlier temporaries still resident (see `memory_step`). With one,
# gpt tiny jax-jit read a tenth of its temporaries in 5 of 10 fresh workers; with two, in 1 of
# 27 (CI's five and 22 before them). Each such step should leave its heap trimmed as it frees
# (the trim threshold is 0 here), so every further step makes a miss rarer; two more cost two
# warm steps a process.
MEASURED_STEPS = 4
# XLA's CPU runtime frees a step's temporaries on its own thread a moment after the outputs are
# ready: the resident memory is read until it has stopped falling, a few ms apart
_QUIET_READS, _QUIET_INTERVAL_S, _QUIET_LIMIT_S = 3, 0.002, 0.5
_STATUS_FIELD = re.compile(r"^(VmRSS|VmHWM|RssFile):\s+(\d+) kB$", re.MULTILINE)

RESET_METHOD = (
    "bytes of the state's arrays + the resident high-water mark of one warm step (reset first) "
    "above the resident memory just before it"
)
WHOLE_PROCESS_METHOD = (
    "bytes of the state's arrays + the whole-process resident high-water mark above the resident "
    "memory before one warm step (no reset here: compiling is included)"
)
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


@contextmanager
def _allocator_releasing_at_once() -> Iterator[None]:
    """Inside the block glibc hands freed memory back at once: blocks from 64 KiB are mapped for
    each allocation and unmapped when freed, and an arena's free top is trimmed on each free.

    Without it a step's temporaries can come from memory an earlier step freed and a thread
    arena kept resident (``malloc_trim`` leaves a thread arena's top alone), and the step would
    seem to allocate nothing. It slows allocation, so only the memory step runs under it; on
    leaving, both thresholds are what the process started with (a worker's fixed ones, see
    `twinbench.harness.environment`), else glibc's documented defaults, fixed from then on.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        yield
        return
    libc.mallopt(_M_TRIM_THRESHOLD, 0)
    libc.mallopt(_M_MMAP_THRESHOLD, _MAPPED_FROM)
    try:
        yield
    finally:
        for parameter, variable in _THRESHOLD_VARIABLES.items():
            libc.mallopt(parameter, int(os.environ.get(variable, _GLIBC_DEFAULT_THRESHOLD)))


@contextmanager
def resident_peak() -> Iterator[dict[str, int]]:
    """How far the block's resident memory rose above where it began: on leaving, the dict holds
    ``peak_above_start_bytes`` (the high-water mark, reset at the start, minus the resident
    memory then; whatever the block compiled and cached included). Empty where the mark cannot
    be reset (not Linux)."""
    figures: dict[str, int] = {}
    _release_free_heap()
    start = _resident_kib().get("VmRSS")
    reset = _reset_high_water_mark()
    try:
        yield figures
    finally:
        high = _resident_kib().get("VmHWM")
        if reset and start is not None and high is not None:
            figures["peak_above_start_bytes"] = max(high - start, 0) * 1024


@dataclass(frozen=True)
class Baseline:
    """Resident memory at one moment, freed heap handed back first; ``file_bytes`` is its
    file-backed part (code and mapped libraries)."""

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

    @classmethod
    def settled(cls) -> Baseline:
        """Resident memory once it has stopped falling: after a step's outputs are ready its
        runtime may still be freeing the step's temporaries (XLA's CPU client does so on its
        own thread), which read too soon would count as held before the next step."""
        lowest = cls.now()
        unchanged = 0
        deadline = time.monotonic() + _QUIET_LIMIT_S
        while unchanged < _QUIET_READS and time.monotonic() < deadline:
            time.sleep(_QUIET_INTERVAL_S)
            reading = cls.now()
            if lowest.rss_bytes is None or reading.rss_bytes is None:
                return reading
            unchanged = unchanged + 1 if reading.rss_bytes >= lowest.rss_bytes else 0
            if reading.rss_bytes < lowest.rss_bytes:
                lowest = reading
        return lowest


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


@dataclass(frozen=True)
class _StepRise:
    """One measured step: the resident memory just before it, and how far it rose above."""

    before: Baseline
    transient: int
    reset: bool


def _measured_step(bench: Bench) -> _StepRise | None:
    """One step with the high-water mark reset just before it; None where /proc is not there."""
    before = Baseline.settled()
    reset = _reset_high_water_mark()
    bench.sync(bench.step())
    after = _resident_kib()
    high_water = after.get("VmHWM")
    if before.rss_bytes is None or high_water is None:
        return None
    # pages of code and libraries the step touched first are the runtime's, not the model's
    paged_in = after.get("RssFile", 0) * 1024 - (before.file_bytes or 0)
    transient = max(high_water * 1024 - before.rss_bytes - max(paged_in, 0), 0)
    return _StepRise(before, transient, reset)


def memory_step(bench: Bench, runtime: Baseline, *, framework: str, device: str) -> dict[str, Any]:
    """Warm steps outside the timed loop: the state's bytes, what a step allocates above the
    resident memory just before it, and the device's peak around them.

    Of ``MEASURED_STEPS`` steps the one that rose most is kept: a step whose temporaries came
    from memory the allocator still held resident (a thread's heap that handing memory back does
    not reach: XLA runs a step on its own threads) rises by a fraction of what it needs.
    ``runtime`` is the resident memory once the runtime had started (`start_runtime`). The steps
    reset the process's resident high-water mark: read the whole-process peak before.
    """
    with _allocator_releasing_at_once():
        for _ in range(SETTLING_STEPS):
            bench.sync(bench.step())
        state = bench.state_bytes()
        with _torch_device_peak(device if framework == "torch" else "cpu") as device_peak:
            rises = [_measured_step(bench) for _ in range(MEASURED_STEPS)]
    figures: dict[str, Any] = {
        "model_state_bytes": state,
        "runtime_baseline_rss_bytes": runtime.rss_bytes,
    }
    measured = [r for r in rises if r is not None]
    if measured:
        rise = max(measured, key=lambda r: r.transient)
        figures["step_transient_bytes"] = rise.transient
        figures["attributable_rss_peak_bytes"] = state + rise.transient
        figures["warm_baseline_rss_bytes"] = rise.before.rss_bytes
        figures["attributable_method"] = RESET_METHOD if rise.reset else WHOLE_PROCESS_METHOD
        if runtime.rss_bytes is not None and rise.before.rss_bytes is not None:
            # what building, compiling and running the step left resident beyond the state
            figures["compiler_resident_bytes"] = rise.before.rss_bytes - runtime.rss_bytes - state
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
    "step_transient_bytes",
    "compiler_resident_bytes",
    "warm_baseline_rss_bytes",
    "runtime_baseline_rss_bytes",
    "torch_profiled_step_peak_bytes",
)
# Figures of the program itself, the same in every process: the first process's are kept.
_PROGRAM_FIGURES = (
    "model_state_bytes",
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
    "attributable_peak_bytes": "memory the model's step needs, runtime and compiler state left "
    "out: the device allocator's peak on a GPU, else attributable_rss_peak_bytes (median over "
    "processes)",
    "attributable_rss_peak_bytes": "model_state_bytes + step_transient_bytes (older runs: the "
    "step's resident high-water mark minus runtime_baseline_rss_bytes, compiler state included; "
    "attributable_method says which)",
    "attributable_method": "how attributable_peak_bytes was measured on this machine",
    "model_state_bytes": "bytes of the arrays kept from step to step: parameters and buffers, "
    "gradients kept between steps, optimizer state, one batch",
    "step_transient_bytes": "resident high-water mark of a warm step above the resident "
    "memory just before it (warm_baseline_rss_bytes), code paged in by the step left out; the "
    "largest of four steps",
    "warm_baseline_rss_bytes": "the whole process's resident memory just before the memory "
    "step, after compiling, warm-up and the timed steps",
    "compiler_resident_bytes": "warm_baseline_rss_bytes - runtime_baseline_rss_bytes - "
    "model_state_bytes: what building, compiling and running the step kept resident beyond the "
    "model's state (compiled code and caches, modules imported to compile, allocator pools)",
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
