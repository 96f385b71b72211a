"""``twinbench run``: parity first, then every cell timed in its own process, rounds interleaved.

The parent imports no framework. It checks the parity of each workload and size in subprocesses
(as many at once as there are cores), then for each starts one worker per mode and times them in
interleaved rounds (A B C D A B C D …) so that a slow drift of a shared machine hits every cell
alike. A cell stops when the 95 % CI of its median step time is within ±2 % or its time budget is
spent, and is committed to the store at once.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from twinbench.errors import TwinbenchError
from twinbench.harness.breakdown import TimeBreakdown
from twinbench.harness.cells import CellProcess, cell_metrics, measure_cells
from twinbench.harness.environment import (
    ALLOCATOR_ENVIRONMENT,
    fingerprint,
    thread_environment,
    usable_cores,
)
from twinbench.harness.machine_load import LoadMeter
from twinbench.harness.memory_budget import confirm_memory_budget, record_sequence_fits
from twinbench.harness.point import CHECKPOINT_OPTION
from twinbench.harness.point import Point as Point  # re-exported: callers import it from here
from twinbench.harness.process import CellFailed, one_shot, stop_workers
from twinbench.harness.twin_source import twin_text
from twinbench.modes import FRAMEWORK_OF, MODES
from twinbench.registry import BUILTIN, EXAMPLES, ZOO, resolve
from twinbench.spec import Workload, check_size
from twinbench.store import DB_NAME, DEFAULT_DIR, CellRecord, ResultStore
from twinbench.validation import in_range, one_of, positive, seed

PHASES = ("train", "infer")
DTYPES = ("float32", "bfloat16")
DEVICES = ("cpu", "cuda")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
# Gradient checkpointing of a workload's blocks: off, on, or both (the trade-off side by side).
CHECKPOINTING = {"off": (False,), "on": (True,), "both": (False, True)}
# Named suites: (workloads, size). The default is a multilayer perceptron, a transformer and a
# recurrent network at small: real model shapes in under 10 minutes on a 2-core CPU (with the
# convolutional network too it took 16.5: its parity check and torch.compile cost the most).
DEFAULT_WORKLOADS = ("mlp", "gpt", "lstm")
SUITES = {
    "default": (DEFAULT_WORKLOADS, "small"),
    "tiny": (EXAMPLES, "tiny"),
    "examples": (EXAMPLES, "small"),
    "zoo": (ZOO, "small"),
    "zoo-tiny": (ZOO, "tiny"),
    "all": (BUILTIN, "small"),
}
# Seconds of steady-state timing per cell where a suite needs other than the default 5. tiny's
# steps take well under a millisecond: a second per process still gives a hundred blocks or
# more, and its CIs are set by the spread between processes, which more samples within a
# process do not narrow.
SUITE_BUDGETS = {"tiny": 2.0}
PROBE_SECONDS = 1.0
MAX_REPEATS = 50


def suite_selection(name: str) -> tuple[tuple[str, ...], str]:
    """The (workloads, size) of the named suite; one line naming the valid names if unknown."""
    one_of("suite", (name,), tuple(SUITES))
    return SUITES[name]


@dataclass(frozen=True)
class RunSettings:
    """Everything that decides what a run measures and how; stored with the run."""

    workloads: tuple[str, ...] = ()
    workload_files: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ("small",)
    modes: tuple[str, ...] = MODES
    phases: tuple[str, ...] = ("train",)
    dtype: str = "float32"
    device: str = "cpu"
    threads: int = field(default_factory=usable_cores)
    budget: float = 5.0  # seconds of steady-state timing per cell, over all its processes
    repeats: int = 2  # worker processes per cell; their disagreement widens the CI
    timeout: float = 900.0  # seconds a cell may take to set up, compile and take its first step
    allow_tf32: bool = False
    torch_compile_mode: str = "default"
    seed: int = 0
    parity_steps: int = 20
    out: Path = DEFAULT_DIR
    batch_sizes: tuple[int, ...] = ()  # a sweep: each group measured at each of these
    seq_lens: tuple[int, ...] = ()  # a sweep over the config's "seq_len" (sequence workloads)
    memory_budget: int | None = None  # bytes: a sweep predicts, then measures, the largest batch
    # (over --batch-sizes) or the longest sequence (over --seq-lens)
    gradient_checkpointing: str = "off"  # a CHECKPOINTING name

    def validate(self) -> None:
        """Refuse a bad value with one line naming it and what is valid (reads nothing else)."""
        one_of("mode", self.modes, MODES)
        one_of("phase", self.phases, PHASES)
        one_of("dtype", (self.dtype,), DTYPES)
        one_of("device", (self.device,), DEVICES)
        one_of("torch compile mode", (self.torch_compile_mode,), COMPILE_MODES)
        one_of("--gradient-checkpointing", (self.gradient_checkpointing,), tuple(CHECKPOINTING))
        in_range("--threads", self.threads, low=1, integer=True)
        positive("--budget", self.budget)
        positive("--timeout", self.timeout)
        in_range("--repeats", self.repeats, low=1, high=MAX_REPEATS, integer=True)
        seed(self.seed)
        in_range("parity steps", self.parity_steps, low=1, integer=True)
        for flag, values in (("--batch-sizes", self.batch_sizes), ("--seq-lens", self.seq_lens)):
            for value in values:
                positive(f"{flag} value", value, integer=True)
        if self.memory_budget is not None:
            positive("--memory-budget", self.memory_budget, integer=True)
            if len(set(self.batch_sizes)) < 2 and len(set(self.seq_lens)) < 2:
                raise TwinbenchError(
                    "--memory-budget needs a sweep over at least two --batch-sizes or two "
                    "--seq-lens to fit"
                )

    def check_environment(self, *, local_gpu: bool = True) -> None:
        """Refuse what this machine cannot do: more threads than usable cores, or ``--device
        cuda`` without a GPU (``local_gpu=False`` when the GPU is on other machines)."""
        cores = usable_cores()
        if self.threads > cores:
            raise TwinbenchError(
                f"--threads {self.threads} is invalid; valid: 1 to {cores} "
                "(the cores this process may use)"
            )
        if local_gpu and self.device == "cuda" and not fingerprint()["gpus"]:
            raise TwinbenchError("--device cuda: no NVIDIA GPU found on this machine; use cpu")

    def as_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["out"] = str(self.out)
        return record


def suite_budget(name: str) -> float:
    """The steady-state seconds per cell of a suite `suite_selection` accepted (`RunSettings`'
    default for most)."""
    return SUITE_BUDGETS.get(name, RunSettings.budget)


@dataclass(frozen=True)
class Cell:
    point: Point
    mode: str
    phase: str

    @property
    def workload(self) -> Workload:
        return self.point.workload

    @property
    def size(self) -> str:
        return self.point.label

    @property
    def framework(self) -> str:
        return FRAMEWORK_OF[self.mode]

    @property
    def label(self) -> str:
        return f"{self.workload.name}/{self.size} {self.mode} {self.phase}"

    def request(self, settings: RunSettings) -> dict[str, Any]:
        """What the worker needs to set this cell up."""
        return _request(
            settings,
            kind="cell",
            workload=self.workload.name,
            workload_file=self.point.workload_file,
            size=self.point.size_name,
            batch_size=self.point.batch_size,
            seq_len=self.point.seq_len,
            checkpointing=self.point.checkpointing,
            mode=self.mode,
            phase=self.phase,
            allow_tf32=settings.allow_tf32,
            compile_mode=settings.torch_compile_mode,
        )


class RunInterrupted(Exception):
    """Ctrl-C or SIGTERM: the run stopped; every finished cell is in the store.

    ``exit_code`` is what the command exits with: 128 + the signal (130 for Ctrl-C, 143 for
    SIGTERM), so a shell or a scheduler can tell which one stopped it.
    """

    def __init__(self, run_id: int, signum: int = signal.SIGINT) -> None:
        self.signal_name = signal.Signals(signum).name
        super().__init__(f"run {run_id} interrupted by {self.signal_name}")
        self.run_id = run_id
        self.exit_code = 128 + int(signum)


class _StopSignals:
    """SIGINT and SIGTERM as `KeyboardInterrupt` in the main thread; ``received``: the first.

    While held (before the run's ``try`` and during its clean-up) a signal is only remembered,
    so a second Ctrl-C or a scheduler's repeated SIGTERM cannot cut the clean-up short and
    leave the run ``running``.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.held = True

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.received is None:
            self.received = signum
        if not self.held:  # every time: code that swallowed the first must not trap the user
            raise KeyboardInterrupt

    def release(self) -> None:
        """From now on a signal raises `KeyboardInterrupt` (at once if one came while held)."""
        self.held = False
        if self.received is not None:
            raise KeyboardInterrupt

    def hold(self) -> None:
        self.held = True

    @contextlib.contextmanager
    def installed(self) -> Iterator[_StopSignals]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # only the main thread can take signals; its caller handles them
            return
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


Progress = Callable[[str, dict[str, Any]], None]


def _no_progress(_event: str, _info: dict[str, Any]) -> None:
    pass


def plan(settings: RunSettings) -> list[Point]:
    """The points a run covers, in order, all validated before any work starts."""
    files = list(settings.workload_files)
    workloads = resolve(list(settings.workloads) or None, files or None)
    file_of = {}
    for path in files:
        from twinbench.registry import from_file

        file_of[from_file(path).name] = str(Path(path).resolve())
    points = []
    for workload in workloads:
        for size in settings.sizes:
            config = workload.size(size).config  # one clear line for a size it lacks
            if settings.seq_lens and "seq_len" not in config:
                raise TwinbenchError(
                    f"--seq-lens: workload '{workload.name}' has no sequence "
                    "length (its config has no 'seq_len')"
                )
            checkpointing = CHECKPOINTING[settings.gradient_checkpointing]
            if any(checkpointing) and CHECKPOINT_OPTION not in config:
                raise TwinbenchError(
                    f"--gradient-checkpointing {settings.gradient_checkpointing}: workload "
                    f"'{workload.name}' has no gradient checkpointing option (gpt and bert have)"
                )
            for batch_size in settings.batch_sizes or (None,):
                for seq_len in settings.seq_lens or (None,):
                    for remat in checkpointing:
                        file = file_of.get(workload.name)
                        point = Point(workload, file, size, batch_size, seq_len, remat)
                        check_size(workload, point.size)  # e.g. a seq_len past the table
                        points.append(point)
    return points


def run(settings: RunSettings, progress: Progress = _no_progress) -> int:
    """Measure every cell of ``settings``; returns the run id in the store.

    Ctrl-C or SIGTERM stops it: the finished cells stay, every worker is stopped, the run is
    marked ``interrupted`` and `RunInterrupted` raised.
    """
    settings.validate()
    settings.check_environment()
    points = plan(settings)
    store = ResultStore(Path(settings.out) / DB_NAME)
    meter = LoadMeter()
    status = "failed"  # unless it ends as planned or by Ctrl-C or SIGTERM
    with _StopSignals().installed() as stop:  # held: a signal before `try` waits for it
        run_id = store.start_run(environment=fingerprint(), settings=settings.as_record())
        session = RunSession(store, run_id, settings)
        try:
            stop.release()
            cells_total = len(points) * len(settings.phases) * len(settings.modes)
            processes = cells_total * settings.repeats
            progress("start", {"run_id": run_id, "cells": cells_total, "processes": processes})
            session.record_run_info(points)
            session.probe_peaks(progress)
            session.measure_group(points, progress)
            record_sequence_fits(session)
            if settings.memory_budget is not None:
                confirm_memory_budget(session, progress)
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
        finally:
            stop.hold()
            stop_workers()
            _close_run(store, run_id, session, meter, status)
    if status == "interrupted":
        raise RunInterrupted(run_id, stop.received or signal.SIGINT)
    progress("done", {"run_id": run_id})
    return run_id


def _close_run(
    store: ResultStore, run_id: int, session: RunSession, meter: LoadMeter, status: str
) -> None:
    """Store the run's load and time breakdown and its final status."""
    try:
        store.set_run_info(run_id, "machine_load", meter.stop().to_dict())
        store.set_run_info(run_id, "time_breakdown", session.clock.to_dict())
        store.finish_run(run_id, status=status)
    finally:
        store.close()


class Recorder(Protocol):
    """Where measured results go: the `ResultStore`, or (on a Ray node) a stream to the driver."""

    def set_run_info(self, run_id: int, key: str, value: Any) -> None: ...

    def record_parity(
        self, run_id: int, *, workload: str, size: str, passed: bool, summary: dict[str, Any]
    ) -> None: ...

    def record_cell(self, run_id: int, cell: CellRecord) -> int: ...


@dataclass(frozen=True)
class RunSession:
    """One run being measured: where its results go, under which run id, with which settings.

    Both executors drive a run through it — the local runner over every point of the plan, a
    Ray task over one (workload, size) group with a recorder that streams to the driver.
    ``clock`` adds up where the time goes.
    """

    recorder: Recorder
    run_id: int
    settings: RunSettings
    clock: TimeBreakdown = field(default_factory=TimeBreakdown)
    # by cell label: what was measured and what failed, for the memory-budget fits
    measured: dict[str, tuple[Cell, dict[str, Any]]] = field(default_factory=dict)
    failures: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def record_run_info(self, points: list[Point]) -> None:
        """What reports and audits need besides cells: twin sources, each worker's settings."""
        _record_run_info(self.recorder, self.run_id, self.settings, points)

    def probe_peaks(self, progress: Progress = _no_progress) -> None:
        """Each framework's best matmul FLOP/s, the peak the cells are compared to."""
        with self.clock.timed("peak probe"):
            _probe_peaks(self.recorder, self.run_id, self.settings, progress)

    def record_failure(self, cell: Cell, status: str, error: str | None) -> None:
        """Record a cell that produced no measurement (``status`` says why)."""
        self.failures[cell.label] = (status, error)
        _record(self.recorder, self.run_id, self.settings, cell, status, error)

    def record_measured(self, cell: Cell, processes: list[CellProcess]) -> None:
        """Record a cell measured in ``processes``: metrics, and every sample in process order."""
        samples = [s for p in processes for s in p.samples]
        metrics = cell_metrics(processes, self.settings, cell)
        self.measured[cell.label] = (cell, metrics)
        _record(self.recorder, self.run_id, self.settings, cell, "ok", None, metrics, samples)

    def measure_group(self, points: list[Point], progress: Progress = _no_progress) -> None:
        """Parity, then timing, of ``points``: the unit of work of both executors.

        Each (workload, size) gets its parity check once (once per sweep) before any cell is
        timed, the checks side by side on the machine's cores (they time nothing); then each
        point's cells, phase by phase, are a group timed in interleaved rounds, each cell in
        ``settings.repeats`` processes, one pass over all the groups per process.
        """
        with self.clock.timed("parity"):
            _check_parities(self.recorder, self.run_id, self.settings, points, progress)
        groups = [
            [Cell(point, mode, phase) for mode in self.settings.modes]
            for point in points
            for phase in self.settings.phases
        ]
        with tempfile.TemporaryDirectory(prefix="twinbench-compile-caches-") as caches:
            measure_cells(self, groups, progress, Path(caches))


def _record_run_info(
    store: Recorder, run_id: int, settings: RunSettings, points: list[Point]
) -> None:
    """What reports and audits need besides cells: twin sources, what each worker ran with."""
    unique = {p.workload.name: p.workload for p in points}
    store.set_run_info(run_id, "twin_sources", twin_sources(unique.values()))
    store.set_run_info(run_id, "thread_environment", thread_environment(settings.threads))
    store.set_run_info(run_id, "allocator_environment", ALLOCATOR_ENVIRONMENT)
    precision = "tf32 allowed" if settings.allow_tf32 else "highest (no TF32)"
    store.set_run_info(
        run_id,
        "compile_options",
        {
            "jax-jit": "jax.jit of the whole step over the split NNX state, donate_argnums=0, "
            "AOT lower().compile()",
            "torch-compile": f"torch.compile of the whole step, mode={settings.torch_compile_mode}",
            "fp32_matmul_precision": precision,
        },
    )


def twin_sources(workloads: Iterable[Workload]) -> dict[str, dict[str, str]]:
    """Each workload's two twins as text (with the private modules they import), so reports can
    show them without the package."""
    sources: dict[str, dict[str, str]] = {}
    for workload in workloads:
        for framework in ("torch", "jax"):
            path = workload.twin_path(framework)
            if path is not None and path.is_file():
                sources.setdefault(workload.name, {})[framework] = twin_text(path)
    return sources


def _request(settings: RunSettings, **fields: Any) -> dict[str, Any]:
    return {"dtype": settings.dtype, "device": settings.device, "seed": settings.seed, **fields}


def _probe_peaks(store: Recorder, run_id: int, settings: RunSettings, progress: Progress) -> None:
    """Each framework's best matmul FLOP/s at the run's dtype: the peak cells are compared to."""
    peaks: dict[str, float | str] = {}
    for framework in sorted({FRAMEWORK_OF[m] for m in settings.modes}):
        progress("probe", {"framework": framework})
        request = _request(settings, kind="probe", framework=framework, seconds=PROBE_SECONDS)
        try:
            peaks[framework] = one_shot(request, threads=settings.threads, timeout=settings.timeout)
        except CellFailed as failure:
            peaks[framework] = f"probe failed: {failure.error}"
    store.set_run_info(run_id, "peak_flops", peaks)


def _check_parities(
    store: Recorder, run_id: int, settings: RunSettings, points: list[Point], progress: Progress
) -> None:
    """The parity check of each (workload, size) among ``points``, as many at once as there are
    cores; each recorded here, in plan order, as it is known."""
    unique = {(p.workload.name, p.size_name): p for p in points}
    pool = ThreadPoolExecutor(max_workers=max(1, min(len(unique), usable_cores())))
    try:
        for point in unique.values():
            progress("parity", {"workload": point.workload.name, "size": point.size_name})
        outcomes = pool.map(lambda point: _parity_outcome(settings, point), unique.values())
        for point, (passed, summary) in zip(unique.values(), outcomes, strict=True):
            workload, size = point.workload.name, point.size_name
            store.record_parity(
                run_id, workload=workload, size=size, passed=passed, summary=summary
            )
            progress("parity-done", {"workload": workload, "size": size, "passed": passed})
    finally:  # Ctrl-C: the run stops the workers, which ends the checks still running
        pool.shutdown(wait=False, cancel_futures=True)


def _parity_outcome(settings: RunSettings, point: Point) -> tuple[bool, dict[str, Any]]:
    """(passed, summary) of one parity check, run in a worker process."""
    request = _request(
        settings,
        kind="parity",
        workload=point.workload.name,
        workload_file=point.workload_file,
        size=point.size_name,
        steps=settings.parity_steps,
        # the loss curve of the optimizer the timed step uses; `twinbench parity` checks all
        optimizers=[point.workload.train_optimizer],
    )
    try:
        summary = one_shot(request, threads=settings.threads, timeout=settings.timeout)
        return bool(summary["passed"]), summary
    except CellFailed as failure:
        return False, {"error": f"parity check {failure.status}: {failure.error}"}


def _record(
    store: Recorder,
    run_id: int,
    settings: RunSettings,
    cell: Cell,
    status: str,
    error: str | None,
    metrics: dict[str, Any] | None = None,
    samples: list[float] | None = None,
) -> None:
    store.record_cell(
        run_id,
        CellRecord(
            workload=cell.workload.name,
            size=cell.size,
            framework=cell.framework,
            mode=cell.mode,
            phase=cell.phase,
            dtype=settings.dtype,
            device=settings.device,
            status=status,
            error=error,
            metrics=metrics or {},
            samples=samples or [],
        ),
    )
