"""``twinbench run --executor ray``: the run's (workload, size) groups as tasks on a Ray cluster.

The unit of work is one (workload, size) group — its parity check and every cell of it, all
phases and modes, sweep points included — not one cell. A group is what `RunSession.measure_group`
measures on this machine, and a Ray task runs that same function on a node, so each group keeps
every rule of a local run: parity before timing, each cell in its own worker subprocess
(``twinbench.harness.worker``, started by the task exactly as the local runner starts it), the
cells of a phase timed in interleaved rounds (A B C D A B C D …) on one machine at one time.
One task per cell would give up the interleaving: drift on a node would then bias whichever
cell ran during it, and cells of one comparison could land on different machines.

Fairness between groups: a task asks Ray for ``--threads`` CPUs (and one GPU for ``--device
cuda``), and on its node it holds an exclusive file lock while it measures, so a node times at
most one group at a time even when Ray packs several tasks onto it — two groups timed at once
would share cores, caches and memory bandwidth, and both measurements would be wrong. Groups on
different nodes run in parallel; that is the speed-up.

Results stream back: each task is a Ray generator that yields every parity check, cell and
progress event as it is made, and the driver (``ray.wait`` over all tasks) commits each to the
local SQLite store at once — the same rows and fields as a local run. A task that dies (its Ray
worker killed, its node lost) gets its remaining cells recorded as ``crashed`` with Ray's error,
and the run goes on. A guard process beside each task kills the cell workers such a task leaves
behind.

Ray is an optional extra (``pip install "twinbench[ray]"``); nothing imports it until this
executor is chosen.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from twinbench.errors import TwinbenchError
from twinbench.harness.environment import fingerprint, usable_cores
from twinbench.harness.runner import (
    Cell,
    Point,
    Progress,
    RunInterrupted,
    RunSession,
    RunSettings,
    plan,
)
from twinbench.modes import FRAMEWORK_OF
from twinbench.store import DB_NAME, CellRecord, ResultStore

INSTALL_HINT = 'pip install "twinbench[ray]"'
CONNECT_TIMEOUT = 10.0  # seconds to open a TCP connection to --ray-address at all
JOIN_TIMEOUT = 60.0  # seconds for ray.init to join a cluster that answered
LOCAL_OBJECT_STORE = 128 * 1024**2  # bytes: results are small; leave the memory to the cells
LOCK_FILE = Path(tempfile.gettempdir()) / "twinbench-timing.lock"
GUARD_POLL = 1.0  # seconds between the guard's looks at the task's children


def _no_progress(_event: str, _info: dict[str, Any]) -> None:
    pass


def run(
    settings: RunSettings, progress: Progress = _no_progress, *, address: str | None = None
) -> int:
    """Measure every cell of ``settings`` on a Ray cluster; returns the run id in the store.

    ``address`` joins a running cluster (``HOST:PORT`` of its head, or ``auto``); without it a
    local Ray instance is started on this machine, reachable on the loopback interface only,
    and stopped at the end. A Ray connection this process already has is used as it is.
    """
    settings.validate()
    settings.check_environment(local_gpu=False)  # the GPU must be on the cluster, not here
    if address is not None and address != "auto":
        _reachable(address)  # before Ray is even imported: seconds saved on a typo
    ray = import_ray(local=address is None)
    points = plan(settings)
    owned = connect(address)  # before the store is touched: a bad address leaves no run behind
    try:
        _check_cluster(ray, settings)
        return _run(ray, settings, points, progress, address)
    finally:
        if owned:
            ray.shutdown()


def import_ray(*, local: bool = True) -> Any:
    """The ``ray`` module, or one line saying how to install it.

    For a local instance Ray is told to use the loopback address: on Linux it otherwise
    advertises (and binds) the machine's network address. This is read when Ray is imported.
    """
    if local and "ray" not in sys.modules:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise TwinbenchError(
            f"--executor ray needs Ray, which is not installed; install it with: {INSTALL_HINT}"
        ) from None
    return ray


def connect(address: str | None = None) -> bool:
    """Start or join Ray unless this process is connected already; True if it must shut down."""
    ray = import_ray(local=address is None)
    if address is not None and address != "auto":
        _reachable(address)  # checked even when connected: a bad address is refused anyway
    if ray.is_initialized():
        return False
    if address is None:
        # Token authentication stays on; only Ray's notice that it is on each run is dropped.
        logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(
            _DropMessage("Token authentication is enabled")
        )
        ray.init(
            address="local",  # a new instance, even where `ray start` left one to join
            num_cpus=usable_cores(),
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            object_store_memory=LOCAL_OBJECT_STORE,
        )
        return True
    _join(ray, address)
    return True


def _join(ray: Any, address: str) -> None:
    """Join the cluster at ``address``, or fail in one line within a bounded time.

    Ray itself retries an unreachable address for minutes, so `connect` first tries the address
    with a plain TCP connection, and ``ray.init`` then gets `JOIN_TIMEOUT` seconds.
    """
    outcome: dict[str, BaseException | None] = {}

    def init() -> None:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            outcome["error"] = None
        except Exception as exc:
            outcome["error"] = exc

    # In a thread so that a server that accepts connections but never answers as Ray cannot
    # hang the command; Ray only warns that it then cannot install its SIGTERM handler.
    worker_log = logging.getLogger("ray._private.worker")
    quiet = _DropMessage("SIGTERM handler is not set")
    worker_log.addFilter(quiet)
    thread = threading.Thread(target=init, name="twinbench-ray-join", daemon=True)
    thread.start()
    thread.join(JOIN_TIMEOUT)
    worker_log.removeFilter(quiet)
    if thread.is_alive():
        raise TwinbenchError(
            f"--ray-address {address}: no answer from Ray within {JOIN_TIMEOUT:.0f} s; is it "
            "the head node's address as `ray start --head` prints it?"
        )
    error = outcome.get("error")
    if error is not None:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TwinbenchError(
            f"--ray-address {address}: cannot join the Ray cluster: {first} (a cluster with "
            "token authentication needs RAY_AUTH_MODE=token and its token here)"
        )


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def _reachable(address: str) -> None:
    if address.startswith("ray://"):
        raise TwinbenchError(
            f"--ray-address {address}: Ray Client (ray://) addresses are not supported; "
            "give the head node's address HOST:PORT as `ray start --head` prints it"
        )
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise TwinbenchError(
            f"--ray-address '{address}' is invalid; give HOST:PORT, e.g. 10.0.0.5:6379"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise TwinbenchError(
            f"cannot reach a Ray cluster at {address}: {reason} (tried for up to "
            f"{CONNECT_TIMEOUT:.0f} s); start one with `ray start --head`, or leave out "
            "--ray-address to start a local instance"
        ) from None


def _check_cluster(ray: Any, settings: RunSettings) -> None:
    """Refuse a run no node can take: Ray would keep such tasks pending forever."""
    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    cpus = max((node.get("CPU", 0.0) for node in nodes), default=0.0)
    if settings.threads > cpus:
        raise TwinbenchError(
            f"--threads {settings.threads}: no node of the Ray cluster has that many CPUs "
            f"(the largest has {cpus:g})"
        )
    if settings.device == "cuda" and not any(node.get("GPU", 0.0) >= 1 for node in nodes):
        raise TwinbenchError("--device cuda: no node of the Ray cluster has a GPU; use cpu")


# --- the driver: submit the tasks, commit what they stream back -------------------------------


@dataclass
class _Expected:
    """What one task owes the store, so that a task that dies leaves no gap in the run."""

    label: str
    parity: list[tuple[str, str]] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    peaks: tuple[str, ...] = ()
    node: dict[str, Any] = field(default_factory=dict)

    def settle(self, kind: str, payload: Any) -> None:
        if kind == "parity":
            done = (payload["workload"], payload["size"])
            self.parity = [key for key in self.parity if key != done]
        elif kind == "cell":
            key = (payload.workload, payload.size, payload.mode, payload.phase)
            self.cells = [c for c in self.cells if _cell_key(c) != key]
        elif kind == "info" and payload["key"] == "peak_flops":
            self.peaks = ()


def _cell_key(cell: Cell) -> tuple[str, str, str, str]:
    return (cell.workload.name, cell.size, cell.mode, cell.phase)


def groups(points: list[Point]) -> dict[tuple[str, str], list[Point]]:
    """The plan's points by (workload, size), in plan order: one Ray task each."""
    grouped: dict[tuple[str, str], list[Point]] = {}
    for point in points:
        grouped.setdefault((point.workload.name, point.size_name), []).append(point)
    return grouped


def _run(
    ray: Any, settings: RunSettings, points: list[Point], progress: Progress, address: str | None
) -> int:
    store = ResultStore(Path(settings.out) / DB_NAME)
    run_id = store.start_run(environment=fingerprint(), settings=settings.as_record())
    cells_total = len(points) * len(settings.phases) * len(settings.modes)
    progress("start", {"run_id": run_id, "cells": cells_total})
    executor: dict[str, Any] = {
        "executor": "ray",
        "address": address or "local instance (loopback)",
        "placement": {},
        "nodes": {},
    }
    try:
        RunSession(store, run_id, settings).record_run_info(points)
        _stream(ray, store, run_id, settings, points, progress, executor)
    except KeyboardInterrupt:
        store.set_run_info(run_id, "ray", executor)
        store.finish_run(run_id, status="interrupted")
        store.close()
        raise RunInterrupted(run_id) from None
    except ray.exceptions.RayError as exc:
        store.set_run_info(run_id, "ray", executor)
        store.finish_run(run_id, status="failed")
        store.close()
        raise TwinbenchError(f"the Ray cluster failed during run {run_id}: {exc}") from None
    store.set_run_info(run_id, "ray", executor)
    store.finish_run(run_id, status="finished")
    store.close()
    progress("done", {"run_id": run_id})
    return run_id


def _stream(
    ray: Any,
    store: ResultStore,
    run_id: int,
    settings: RunSettings,
    points: list[Point],
    progress: Progress,
    executor: dict[str, Any],
) -> None:
    task = ray.remote(_on_node).options(
        num_cpus=settings.threads,
        num_gpus=1 if settings.device == "cuda" else 0,
        max_retries=0,  # a benchmark retried elsewhere would be a different measurement
        name="twinbench",
    )
    frameworks = tuple(sorted({FRAMEWORK_OF[m] for m in settings.modes}))
    expected = {task.remote(run_id, settings, None): _Expected("probe", peaks=frameworks)}
    for (workload, size), group in groups(points).items():
        specs = [_spec(point) for point in group]
        owed = _Expected(
            f"{workload}/{size}",
            parity=[(workload, size)],
            cells=[
                Cell(point, mode, phase)
                for point in group
                for phase in settings.phases
                for mode in settings.modes
            ],
        )
        expected[task.remote(run_id, settings, specs)] = owed
    waiting = list(expected)
    try:
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1, timeout=1.0)
            for stream in ready:
                owed = expected[stream]
                try:
                    kind, payload = ray.get(next(stream))
                except StopIteration:
                    continue
                except ray.exceptions.RayError as exc:
                    status = "error" if isinstance(exc, ray.exceptions.RayTaskError) else "crashed"
                    _record_lost(store, run_id, settings, owed, status, _one_line(exc), progress)
                    continue
                waiting.append(stream)
                if kind == "failed":
                    _record_lost(store, run_id, settings, owed, "error", payload, progress)
                    continue
                _commit(store, run_id, kind, payload, progress, owed, executor)
    except KeyboardInterrupt:
        for stream in waiting:
            with contextlib.suppress(Exception):
                ray.cancel(stream, force=True)  # the guard stops the task's cell workers
        raise


def _commit(
    store: ResultStore,
    run_id: int,
    kind: str,
    payload: Any,
    progress: Progress,
    owed: _Expected,
    executor: dict[str, Any],
) -> None:
    if kind == "node":
        executor["placement"][owed.label] = payload["host"]
        executor["nodes"].setdefault(payload["host"], payload["environment"])
        return
    if kind == "progress":
        progress(*payload)
        return
    if kind == "parity":
        store.record_parity(run_id, **payload)
    elif kind == "cell":
        store.record_cell(run_id, payload)
    elif kind == "info":
        store.set_run_info(run_id, payload["key"], payload["value"])
    owed.settle(kind, payload)


def _record_lost(
    store: ResultStore,
    run_id: int,
    settings: RunSettings,
    owed: _Expected,
    status: str,
    error: str,
    progress: Progress,
) -> None:
    """A task ended early: record what it still owed, as a local run records a failed cell."""
    if owed.peaks:
        store.set_run_info(
            run_id, "peak_flops", {fw: f"probe failed: ray task {error}" for fw in owed.peaks}
        )
    for workload, size in owed.parity:
        summary = {"error": f"parity check {status}: ray task {error}"}
        store.record_parity(run_id, workload=workload, size=size, passed=False, summary=summary)
        progress("parity-done", {"workload": workload, "size": size, "passed": False})
    for cell in owed.cells:
        RunSession(store, run_id, settings).record_failure(cell, status, f"ray task {error}")
        progress("cell-done", {"cell": cell.label, "status": status})
    owed.peaks, owed.parity, owed.cells = (), [], []


def _one_line(exc: BaseException) -> str:
    """Ray's errors run to many lines (remote tracebacks): keep the last meaningful one."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}".strip()


def _spec(point: Point) -> dict[str, Any]:
    return {
        "workload": point.workload.name,
        "workload_file": point.workload_file,
        "size": point.size_name,
        "batch_size": point.batch_size,
        "seq_len": point.seq_len,
        "checkpointing": point.checkpointing,
    }


def _point(spec: dict[str, Any]) -> Point:
    from twinbench.registry import builtin, from_file

    path = spec["workload_file"]
    workload = from_file(path) if path else builtin(spec["workload"])
    checkpointing = bool(spec.get("checkpointing"))
    return Point(workload, path, spec["size"], spec["batch_size"], spec["seq_len"], checkpointing)


# --- on a node: one task ----------------------------------------------------------------------


class _Stopped(Exception):
    """The task is being torn down: stop measuring at the next progress event."""


class _Stream:
    """A `Recorder` that queues results for the task's generator to yield."""

    def __init__(self) -> None:
        self.items: queue.Queue[tuple[str, Any] | None] = queue.Queue()
        self.stopped = threading.Event()

    def set_run_info(self, run_id: int, key: str, value: Any) -> None:
        self.items.put(("info", {"key": key, "value": value}))

    def record_parity(
        self, run_id: int, *, workload: str, size: str, passed: bool, summary: dict[str, Any]
    ) -> None:
        fields = {"workload": workload, "size": size, "passed": passed, "summary": summary}
        self.items.put(("parity", fields))

    def record_cell(self, run_id: int, cell: CellRecord) -> int:
        self.items.put(("cell", cell))
        return 0

    def progress(self, event: str, info: dict[str, Any]) -> None:
        if self.stopped.is_set():
            raise _Stopped
        self.items.put(("progress", (event, info)))

    def measure(
        self, run_id: int, settings: RunSettings, specs: list[dict[str, Any]] | None
    ) -> None:
        try:
            if specs is None:
                RunSession(self, run_id, settings).probe_peaks(self.progress)
            else:
                RunSession(self, run_id, settings).measure_group(
                    [_point(s) for s in specs], self.progress
                )
        except _Stopped:
            pass
        except Exception as exc:  # e.g. a --workload-file missing on this node
            self.items.put(("failed", f"{type(exc).__name__}: {exc}"))
        finally:
            self.items.put(None)


def _on_node(
    run_id: int, settings: RunSettings, specs: list[dict[str, Any]] | None
) -> Iterator[tuple[str, Any]]:
    """The Ray task: the probe (``specs`` None) or one group, measured as a local run would.

    The measurement runs in a thread and the task yields what it records, as it records it.
    """
    with _timing_lock():
        yield "node", {"host": socket.gethostname(), "environment": fingerprint()}
        guard = subprocess.Popen(
            [sys.executable, "-m", "twinbench.harness.ray_executor", str(os.getpid())],
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ray kills a dead worker's process group, guard included
        )
        stream = _Stream()
        thread = threading.Thread(target=stream.measure, args=(run_id, settings, specs))
        thread.start()
        try:
            while (item := stream.items.get()) is not None:
                yield item
        finally:
            stream.stopped.set()
            if thread.is_alive():  # torn down early: stop the cell workers it is waiting on
                _kill_children(exclude=guard.pid)
            thread.join(60)
            guard.kill()
            guard.wait()


@contextlib.contextmanager
def _timing_lock() -> Iterator[None]:
    """One timing group per node at a time, whatever Ray packs onto the node."""
    with open(LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _kill_children(exclude: int) -> None:
    for child in psutil.Process().children(recursive=True):
        if child.pid != exclude:
            with contextlib.suppress(psutil.Error):
                child.kill()


def guard(parent_pid: int, poll: float = GUARD_POLL) -> None:
    """Beside a task: once its Ray worker is gone (killed by Ray's memory monitor, a forced
    cancel, a crash), kill the cell workers it left behind, which Ray does not know of."""
    try:
        parent = psutil.Process(parent_pid)
    except psutil.NoSuchProcess:
        return
    me = os.getpid()
    seen: dict[int, psutil.Process] = {}
    while True:
        try:
            if parent.status() == psutil.STATUS_ZOMBIE:
                break
            for child in parent.children(recursive=True):
                if child.pid != me:
                    seen.setdefault(child.pid, child)
        except psutil.NoSuchProcess:
            break
        seen = {pid: p for pid, p in seen.items() if p.is_running()}
        time.sleep(poll)
    for child in seen.values():
        with contextlib.suppress(psutil.Error):
            child.kill()  # psutil checks the process is still the one seen, not a reused pid


if __name__ == "__main__":
    guard(int(sys.argv[1]))
