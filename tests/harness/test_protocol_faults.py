"""Hostile twins cannot forge or break the worker protocol, and leave no process behind.

Each fixture in ``tests/fixtures/faulty/proto_*.py`` plants one fault in its PyTorch twin's
``build()``, which both the parity check and the torch cells call; its JAX twin works.
"""

import time
import uuid
from pathlib import Path

import psutil
import pytest

from twinbench.harness import runner
from twinbench.harness.runner import RunSettings
from twinbench.store import DB_NAME, ResultStore

FAULTY = Path(__file__).parents[1] / "fixtures" / "faulty"
NOT_OURS = "the worker's output was not the harness's"


@pytest.fixture
def quick_probe(monkeypatch):
    monkeypatch.setattr(runner, "PROBE_SECONDS", 0.05)


def set_marker(monkeypatch: pytest.MonkeyPatch) -> str:
    """A value only this test's workers (and what they start) carry, in their environment."""
    value = f"proto-marker-{uuid.uuid4().hex}"
    monkeypatch.setenv("PROTO_MARKER", value)
    return value


@pytest.fixture
def marker(monkeypatch) -> str:
    return set_marker(monkeypatch)


def carrying(marker: str) -> list[psutil.Process]:
    """Live processes with ``marker`` in their command line or environment."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if process.pid == psutil.Process().pid or process.info["status"] == "zombie":
                continue
            cmdline = " ".join(process.info["cmdline"] or ())
            if marker in cmdline or process.environ().get("PROTO_MARKER") == marker:
                found.append(process)
        except psutil.Error:
            pass
    return found


def assert_none_left(marker: str, within: float = 10.0) -> None:
    """No process of the run is left (SIGKILL takes a moment to land everywhere)."""
    deadline = time.monotonic() + within
    while (left := carrying(marker)) and time.monotonic() < deadline:
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


def test_junk_or_a_forged_answer_on_the_protocol_fails_that_cell_only(
    tmp_path, quick_probe, marker
):
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


def test_children_and_forks_of_a_twin_are_stopped_with_its_cell(tmp_path, quick_probe, marker):
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
