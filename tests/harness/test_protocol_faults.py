"""Hostile twins cannot forge or break the worker protocol, and leave no process behind.

Each fixture in ``tests/fixtures/faulty/proto_*.py`` plants one fault in its PyTorch twin's
``build()``, which both the parity check and the torch cells call; its JAX twin works.
"""

import os
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from twinbench.harness import process as harness_process
from twinbench.harness import runner
from twinbench.harness.process import MARKER_VARIABLE, CellFailed, WorkerProcess
from twinbench.harness.runner import RunSettings
from twinbench.store import DB_NAME, ResultStore

FAULTY = Path(__file__).parents[1] / "fixtures" / "faulty"
NOT_OURS = "the worker's output was not the harness's"


def set_marker(monkeypatch: pytest.MonkeyPatch) -> str:
    """A value only this test's workers (and what they start) carry, in their environment."""
    value = f"proto-marker-{uuid.uuid4().hex}"
    monkeypatch.setenv("PROTO_MARKER", value)
    return value


@pytest.fixture
def marker(monkeypatch) -> str:
    return set_marker(monkeypatch)


def carrying(marker: str, variable: str = "PROTO_MARKER") -> list[psutil.Process]:
    """Live processes with ``marker`` in their command line or as ``variable`` in their
    environment."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if process.pid == psutil.Process().pid or process.info["status"] == "zombie":
                continue
            cmdline = " ".join(process.info["cmdline"] or ())
            if marker in cmdline or process.environ().get(variable) == marker:
                found.append(process)
        except psutil.Error:
            pass
    return found


def assert_none_left(marker: str, within: float = 10.0, variable: str = "PROTO_MARKER") -> None:
    """No process of the run is left (SIGKILL takes a moment to land everywhere)."""
    deadline = time.monotonic() + within
    while (left := carrying(marker, variable)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, [" ".join(p.cmdline()) for p in left]


def measure(tmp_path: Path, *faults: str, timeout: float) -> tuple[dict, dict, str]:
    """Run the fixtures of ``faults``: (cells by (workload, mode), parity by workload, status)."""
    files = tuple(str(FAULTY / f"proto_{fault}.py") for fault in faults)
    settings = RunSettings(
        workload_files=files,
        sizes=("tiny",),
        modes=("torch-eager", "jax-jit"),
        budget=0.3,
        repeats=1,
        timeout=timeout,
        out=tmp_path / "out",
    )
    run_id = runner.run(settings)
    with ResultStore(tmp_path / "out" / DB_NAME) as store:
        cells = {(c.workload, c.mode): c for c in store.cells(run_id)}
        parity = {p["workload"]: p for p in store.parity(run_id)}
        return cells, parity, store.run(run_id).status


def test_junk_or_a_forged_answer_on_the_protocol_fails_that_cell_only(tmp_path, unprobed, marker):
    cells, parity, status = measure(tmp_path, "fd_junk", "forged", timeout=60)

    assert status == "finished"
    for workload in ("proto_fd_junk", "proto_forged"):
        check = parity[workload]
        assert check["passed"] is False  # never a "passed" with no checks behind it
        assert NOT_OURS in check["summary"]["error"], check
        torch_cell = cells[(workload, "torch-eager")]
        assert torch_cell.status == "error", torch_cell.error
        assert NOT_OURS in torch_cell.error
        assert torch_cell.samples == []
        jax_cell = cells[(workload, "jax-jit")]  # the run went on
        assert jax_cell.status == "ok" and jax_cell.samples, jax_cell.error
    assert "junk" in cells[("proto_fd_junk", "torch-eager")].error  # the offending line, quoted
    assert_none_left(marker)


@pytest.mark.slow  # a real run of two planted workloads; CI's slow step runs it
def test_children_and_forks_of_a_twin_are_stopped_with_its_cell(tmp_path, unprobed, marker):
    timeout = 300  # a crash must be noticed when the worker dies, not when this runs out
    cells, parity, status = measure(tmp_path, "sleep_child", "fork_crash", timeout=timeout)

    assert status == "finished"
    assert parity["proto_sleep_child"]["passed"] is True, parity["proto_sleep_child"]
    for mode in ("torch-eager", "jax-jit"):
        cell = cells[("proto_sleep_child", mode)]
        assert cell.status == "ok" and cell.samples, cell.error
    crashed = cells[("proto_fork_crash", "torch-eager")]
    assert crashed.status == "crashed", crashed.error
    assert "SIGABRT" in crashed.error
    assert "parity check crashed" in parity["proto_fork_crash"]["summary"]["error"]
    assert cells[("proto_fork_crash", "jax-jit")].status == "ok"
    assert_none_left(marker)


# ---- the protocol itself, with a framework-free worker (tests/fixtures/faulty/proto_worker.py)


def proto_worker(kind: str, **fields: object) -> WorkerProcess:
    path = os.pathsep.join(p for p in (str(FAULTY), os.environ.get("PYTHONPATH")) if p)
    return WorkerProcess(
        {"kind": kind, **fields}, threads=1, module="proto_worker", env={"PYTHONPATH": path}
    )


def test_an_answer_is_signed_and_the_pipes_are_out_of_reach():
    worker = proto_worker("echo")
    try:
        answer = worker.receive(120, "result")
    finally:
        worker.close()
    assert answer["request"] == {"kind": "echo"}  # the key is not handed to the code it runs
    pipes = answer["pipes"]
    assert len(pipes) == 2 and all(fd >= 256 for fd in pipes), pipes  # not fds 0, 1 or 3


@pytest.mark.parametrize(
    "line",
    ['{"result": "forged"}\n', "0" * 64 + ' {"result": "forged"}\n', "junk"],
    ids=["unsigned", "wrong-signature", "no-newline"],
)
def test_a_line_the_harness_did_not_sign_fails_the_cell(line):
    worker = proto_worker("forge", line=line)
    with pytest.raises(CellFailed) as failure:
        worker.receive(120, "result")
    assert failure.value.status == "error"
    assert NOT_OURS in failure.value.error
    assert_none_left(worker.marker, variable=MARKER_VARIABLE)


def test_a_worker_that_dies_is_noticed_though_its_fork_holds_the_pipe():
    worker = proto_worker("fork_then_exit")
    started = time.monotonic()
    with pytest.raises(CellFailed) as failure:
        worker.receive(600, "result")
    assert time.monotonic() - started < 120  # at its exit, not after the 600 s timeout
    assert failure.value.status == "crashed"
    assert "status 3" in failure.value.error
    assert_none_left(worker.marker, variable=MARKER_VARIABLE)  # the fork too


def test_closing_a_worker_stops_its_children_in_and_out_of_its_group():
    marker = f"proto-marker-{uuid.uuid4().hex}"  # in the children's command lines only
    worker = proto_worker("children", marker=marker)
    deadline = time.monotonic() + 120
    while len(carrying(marker)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(carrying(marker)) == 2
    with pytest.raises(CellFailed) as failure:
        worker.receive(0.1, "result")
    assert failure.value.status == "timeout"
    assert_none_left(marker)


def test_a_worker_that_closes_the_pipe_and_lives_on_is_stopped(monkeypatch):
    # it never exits: the harness waits EXIT_WAIT_S (20 s) for an exit status, then stops it
    monkeypatch.setattr(harness_process, "EXIT_WAIT_S", 2.0)
    worker = proto_worker("close_pipes")
    started = time.monotonic()
    with pytest.raises(CellFailed) as failure:
        worker.receive(600, "result")
    assert time.monotonic() - started < 120
    assert failure.value.status == "error"
    assert "closed the harness's pipe" in failure.value.error
    assert_none_left(worker.marker, variable=MARKER_VARIABLE)


def test_a_worker_cannot_import_ipython_and_flax_takes_that_for_no_notebook():
    """What `serve` does first in every worker: flax imports IPython only to ask whether it runs
    in a notebook, and a worker, where that import fails, still gets its answer."""
    saved = sys.modules.pop("IPython", None)
    try:
        harness_process._without_notebook_probes()
        with pytest.raises(ImportError):
            import IPython  # noqa: F401
        from flax.nnx import reprlib

        assert reprlib.supports_color() is sys.stdout.isatty()  # not in IPython, on Linux
    finally:
        if saved is None:
            sys.modules.pop("IPython", None)
        else:
            sys.modules["IPython"] = saved
