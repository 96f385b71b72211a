"""Ctrl-C, SIGTERM and SIGKILL to a run: what finished is kept and no worker survives.

The run measures ``linreg`` (its cell finishes), then ``proto_hang_build``, whose torch cell
hangs in ``build()``; the signal comes while that cell sets up.
"""

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from test_protocol_faults import FAULTY, assert_none_left, set_marker

from helpers import finish, start
from twinbench.harness import runner
from twinbench.harness.runner import RunInterrupted, RunSettings
from twinbench.store import DB_NAME, ResultStore

HANG = FAULTY / "proto_hang_build.py"
SETUP_WAIT_S = 300  # a loaded machine may take minutes to reach the hanging cell


@pytest.fixture
def marker(monkeypatch) -> str:
    return set_marker(monkeypatch)


@pytest.fixture
def hanging(monkeypatch, tmp_path) -> Path:
    """The folder where the hanging build() says it hangs."""
    folder = tmp_path / "signals"
    folder.mkdir()
    monkeypatch.setenv("PROTO_SIGNAL_DIR", str(folder))
    return folder


def wait_until_hanging(folder: Path, process=None) -> None:
    deadline = time.monotonic() + SETUP_WAIT_S
    while not any(folder.iterdir()):
        assert process is None or process.poll() is None, finish(process).stderr[-3000:]
        assert time.monotonic() < deadline, "the hanging cell never started"
        time.sleep(0.2)


def stored(out: Path) -> tuple[str, dict]:
    with ResultStore(out / DB_NAME) as store:
        run_id = store.latest_run_id()
        assert run_id is not None
        return store.run(run_id).status, {(c.workload, c.mode): c for c in store.cells(run_id)}


@pytest.mark.slow  # a real run interrupted during set-up; CI's slow step runs it
def test_ctrl_c_while_a_cell_sets_up_stops_its_worker(tmp_path, monkeypatch, marker, hanging):
    monkeypatch.setattr(runner, "PROBE_SECONDS", 0.05)
    settings = RunSettings(
        workload_files=(str(HANG),),
        sizes=("tiny",),
        modes=("torch-eager",),
        budget=0.3,
        repeats=1,
        timeout=600,
        out=tmp_path / "out",
    )

    def interrupt() -> None:
        wait_until_hanging(hanging)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    with pytest.raises(RunInterrupted) as stop:
        runner.run(settings)
    thread.join(5)

    assert_none_left(marker)  # the worker that was setting up too
    assert stored(tmp_path / "out")[0] == "interrupted"
    assert stop.value.exit_code == 130


RUN = (
    "run",
    "--workload",
    "linreg",
    "--workload-file",
    HANG,
    "--size",
    "tiny",
    "--mode",
    "torch-eager",
    "--repeats",
    "1",
    "--budget",
    "0.3",
    "--timeout",
    "600",
)


@pytest.mark.parametrize(
    "signum",
    [pytest.param(signal.SIGTERM, id="sigterm"),
     pytest.param(signal.SIGKILL, id="sigkill", marks=pytest.mark.slow)],  # slow: CI's slow step
)
def test_a_signalled_run_keeps_its_cells_and_leaves_no_worker(tmp_path, marker, hanging, signum):
    out = tmp_path / "out"
    process = start(*RUN, "--out", out)
    wait_until_hanging(hanging, process)
    process.send_signal(signum)
    result = finish(process, timeout=60)  # not the 600 s the hanging cell may take

    status, cells = stored(out)
    assert cells[("linreg", "torch-eager")].status == "ok"  # the finished cell is kept
    assert ("proto_hang_build", "torch-eager") not in cells
    if signum == signal.SIGTERM:
        assert result.returncode == 143, result.stderr[-3000:]
        assert status == "interrupted"
        assert "interrupted (SIGTERM)" in result.stderr
        assert "Traceback" not in result.stderr
        assert list(out.glob("*.md")) and list(out.glob("*.html"))  # the report is written
    else:
        assert result.returncode == -signal.SIGKILL
        # nothing could mark it: it stays running, which the store shows as abandoned once it
        # knows the run's process is gone
        assert status in ("running", "abandoned")
    assert_none_left(marker, within=30)  # workers die with their parent (PR_SET_PDEATHSIG)
