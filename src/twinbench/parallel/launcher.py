"""Starting a cell's processes, watching them, and leaving none behind. Imports no framework.

* torch: ``python -m torch.distributed.run`` (torchrun) with a c10d rendezvous — on one machine at
  ``127.0.0.1:<free port>``, across machines at ``--rdzv-endpoint`` with ``--nnodes`` and
  ``--node-rank``: the same command line either way.
* JAX ``mesh``: one process with N (simulated, on CPU) devices.
* JAX ``processes``: N local processes joined by ``jax.distributed.initialize`` at
  ``127.0.0.1:<free port>``, or, across machines, this machine's one process at
  ``--coordinator-address`` with ``--num-processes`` / ``--process-id``.

A launch is bounded by the cell's timeout. When any process fails, the others (stuck in a
collective by then) are killed with their whole process tree: torchrun starts its workers in
sessions of their own, so the tree is followed with psutil while it runs, not by process group.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from signal import SIGTERM
from typing import Any

import psutil

from twinbench.errors import TwinbenchError
from twinbench.harness.environment import usable_cores, worker_environment
from twinbench.harness.process import describe_exit
from twinbench.parallel.common import RESULT_FILE
from twinbench.parallel.plan import Cell, ParallelSettings

POLL_S = 0.1
STDERR_TAIL = 1500
ERROR_CHARS = 400  # of each rank's error message


class LaunchFailed(Exception):
    """A cell's processes failed; ``status`` is ``error``, ``crashed`` or ``timeout``."""

    def __init__(self, status: str, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_reachable(address: str, timeout_s: float, what: str) -> None:
    """Connect to ``address`` (HOST:PORT), retrying until ``timeout_s``; TwinbenchError if never.

    Machines other than the coordinator's start their processes only once it answers, so an
    unreachable address is a one-line error after a bounded wait, never a hang.
    """
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout_s
    last: OSError | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            with socket.create_connection((host, int(port)), timeout=min(remaining, 2.0)):
                return
        except OSError as exc:
            last = exc
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
    reason = last.strerror or str(last) if last else "no answer"
    raise TwinbenchError(
        f"cannot reach the {what} at {address} within {timeout_s:g} s ({reason}); is process 0 "
        "running there, and is the port open?"
    )


class ProcessTree:
    """Processes started for one cell, and every descendant they start, killed together."""

    def __init__(self) -> None:
        self.roots: list[subprocess.Popen[bytes]] = []
        self.seen: dict[int, psutil.Process] = {}

    def start(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "wb") as stream:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stream,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the parent, which then stops the tree
            )
        self.roots.append(proc)
        self._remember(proc.pid)
        return proc

    def _remember(self, pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(pid)
            self.seen.setdefault(pid, parent)
            for child in parent.children(recursive=True):
                self.seen.setdefault(child.pid, child)

    def refresh(self) -> None:
        for proc in self.roots:
            if proc.poll() is None:
                self._remember(proc.pid)

    def kill(self) -> None:
        """SIGKILL every process of the tree that still runs, and reap the roots."""
        self.refresh()
        alive = [p for p in self.seen.values() if p.is_running()]  # is_running checks identity
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)
        for root in self.roots:
            root.wait()


def _env(threads: int) -> dict[str, str]:
    env = {**os.environ, **worker_environment(threads)}
    env.pop("TORCHELASTIC_ERROR_FILE", None)
    return env


def _tail(log: Path) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return text[-STDERR_TAIL:].strip()


def _rank_errors(out_dir: Path) -> list[str]:
    errors = []
    for path in sorted(out_dir.glob("error-rank*.txt"), key=lambda p: int(p.stem[10:])):
        errors.append(f"rank {path.stem[10:]}: {path.read_text().strip()}")
    return errors


def _lost_its_peer(error: str) -> bool:
    return "by peer" in error  # gloo's "Connection reset by peer" / "closed by peer"


def _torchrun_exits(log: Path) -> dict[int, int]:
    """Rank -> exit code of the failed ranks in torchrun's own report."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    found = re.findall(r"rank\s*:\s*(\d+).*?\n\s*exitcode\s*:\s*(-?\d+)", text)
    return {int(rank): int(code) for rank, code in found}


def _wait(tree: ProcessTree, timeout_s: float, describe: Any) -> None:
    """Wait until every root exits; on the first failure or the deadline, kill the tree."""
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            tree.refresh()
            codes = [p.poll() for p in tree.roots]
            if any(c not in (None, 0) for c in codes):
                time.sleep(0.5)  # let the others' error files land before naming the cause
                raise LaunchFailed(*describe([p.poll() for p in tree.roots]))
            if all(c == 0 for c in codes):
                return
            if time.monotonic() > deadline:
                raise LaunchFailed(
                    "timeout", f"no result within {timeout_s:g} s; all processes stopped"
                )
            time.sleep(POLL_S)
    finally:
        tree.kill()


def launch(
    settings: ParallelSettings, cell: Cell, request: dict[str, Any]
) -> dict[str, Any] | None:
    """Run one cell; its result dict (None when rank 0 ran on another machine).

    Raises `LaunchFailed` when a process fails or the cell times out, `TwinbenchError` when a
    multi-node coordinator cannot be reached.
    """
    out_dir = Path(request["out_dir"])
    request_path = out_dir / "request.json"
    request_path.write_text(json.dumps(request))
    tree = ProcessTree()
    try:
        if cell.framework == "torch":
            describe = _launch_torch(settings, cell, request_path, tree)
        elif cell.impl == "mesh":
            describe = _launch_jax_mesh(settings, cell, request_path, tree)
        else:
            describe = _launch_jax_processes(settings, cell, request_path, tree)
        _wait(tree, settings.timeout_s, describe)
    finally:  # also on Ctrl-C, or when starting the second process fails
        tree.kill()
    result_file = out_dir / RESULT_FILE
    if not result_file.is_file():
        return None
    result: dict[str, Any] = json.loads(result_file.read_text())
    return result


def _describer(out_dir: Path, logs: list[Path], torchrun: bool) -> Any:
    def describe(codes: list[int | None]) -> tuple[str, str]:
        """(cell status, error). A rank killed by a signal is named first: the others' errors
        ("connection closed by peer") are what its death did to them. SIGTERM is how torchrun
        stops the surviving ranks once one has failed, so a rank it ended is a crash only when
        no rank explains the failure itself."""
        exits = _torchrun_exits(logs[0]) if torchrun else dict(enumerate(codes))
        signalled = {r: c for r, c in exits.items() if c and c < 0}
        killed = [f"rank {r}: {describe_exit(c)}" for r, c in signalled.items() if c != -SIGTERM]
        stopped = [f"rank {r}: {describe_exit(c)}" for r, c in signalled.items() if c == -SIGTERM]
        # A rank that lost its peer mid-collective says so; the rank with its own error goes first.
        raised = sorted((e[:ERROR_CHARS] for e in _rank_errors(out_dir)), key=_lost_its_peer)
        if killed:
            return "crashed", "; ".join(killed + raised)
        if raised:
            return "error", "; ".join(raised)
        if stopped:
            return "crashed", "; ".join(stopped)
        index, code = next((i, c) for i, c in enumerate(codes) if c)
        tail = _tail(logs[index])
        who = "torchrun" if torchrun else f"process {index}"
        text = f"{who}: {describe_exit(code or 0)}" + (f"; output: {tail}" if tail else "")
        return "error", text

    return describe


def torchrun_args(settings: ParallelSettings, cell: Cell) -> list[str]:
    """torchrun's options for this cell, on one machine or across ``--nnodes`` machines."""
    m = settings.multinode
    # Port 0 on one machine: the c10d store binds a free port itself (as torchrun --standalone
    # does), so no other process can take it between choosing and binding.
    endpoint = m.rdzv_endpoint or "127.0.0.1:0"
    rdzv_id = f"twinbench-{cell.strategy}-{cell.devices}-{cell.global_batch}"
    return [
        f"--nnodes={m.nnodes}",
        f"--node-rank={m.node_rank}",
        f"--nproc-per-node={cell.devices // m.nnodes}",
        "--rdzv-backend=c10d",
        f"--rdzv-endpoint={endpoint}",
        f"--rdzv-id={rdzv_id}",
        f"--rdzv-conf=join_timeout={int(settings.timeout_s)},"
        f"read_timeout={int(m.connect_timeout_s)}",
        "--max-restarts=0",
        "--monitor-interval=0.2",
    ]


def _launch_torch(
    settings: ParallelSettings, cell: Cell, request_path: Path, tree: ProcessTree
) -> Any:
    m = settings.multinode
    if m.rdzv_endpoint is not None and m.node_rank > 0:
        wait_reachable(m.rdzv_endpoint, m.connect_timeout_s, "torch rendezvous endpoint")
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *torchrun_args(settings, cell),
        "-m",
        "twinbench.parallel.torch_parallel",
        str(request_path),
    ]
    log = request_path.parent / "torchrun.log"
    tree.start(argv, _env(settings.threads), log)
    return _describer(request_path.parent, [log], torchrun=True)


def _xla_env(settings: ParallelSettings, local_devices: int, threads: int) -> dict[str, str]:
    env = worker_environment(threads)
    extra = {"JAX_PLATFORMS": "cpu"} if settings.device == "cpu" else {}
    if settings.device == "cpu":
        count = f"--xla_force_host_platform_device_count={local_devices}"
        env["XLA_FLAGS"] = f"{count} {env['XLA_FLAGS']}"
    return {**os.environ, **env, **extra}


def _launch_jax_mesh(
    settings: ParallelSettings, cell: Cell, request_path: Path, tree: ProcessTree
) -> Any:
    # One process drives all N simulated devices: it gets their threads, up to the usable cores.
    threads = max(1, min(settings.threads * cell.devices, usable_cores()))
    argv = [sys.executable, "-m", "twinbench.parallel.jax_parallel", str(request_path)]
    log = request_path.parent / "jax.log"
    tree.start(argv, _xla_env(settings, cell.devices, threads), log)
    return _describer(request_path.parent, [log], torchrun=False)


def _launch_jax_processes(
    settings: ParallelSettings, cell: Cell, request_path: Path, tree: ProcessTree
) -> Any:
    m = settings.multinode
    if m.jax_multinode:
        assert m.coordinator_address and m.num_processes and m.process_id is not None
        address, processes, ids = m.coordinator_address, m.num_processes, [m.process_id]
        if m.process_id > 0:
            wait_reachable(address, m.connect_timeout_s, "JAX coordinator")
    else:
        address, processes = f"127.0.0.1:{free_port()}", cell.devices
        ids = list(range(processes))
    request = json.loads(request_path.read_text())
    request["distributed"] = {
        "coordinator_address": address,
        "num_processes": processes,
        "timeout_s": m.connect_timeout_s,
    }
    request_path.write_text(json.dumps(request))
    logs = []
    for process_id in ids:
        log = request_path.parent / f"jax-{process_id}.log"
        argv = [
            sys.executable,
            "-m",
            "twinbench.parallel.jax_parallel",
            str(request_path),
            str(process_id),
        ]
        env = _xla_env(settings, cell.devices // processes, settings.threads)
        if settings.device == "cuda" and not m.jax_multinode:  # one GPU per local process
            env["CUDA_VISIBLE_DEVICES"] = str(process_id)
        tree.start(argv, env, log)
        logs.append(log)
    return _describer(request_path.parent, logs, torchrun=False)


def cell_directory(root: str | None = None) -> tempfile.TemporaryDirectory[str]:
    """A scratch folder for one cell's request, logs, result and weights."""
    return tempfile.TemporaryDirectory(prefix="twinbench-parallel-", dir=root)
