"""A failed cell's status and error, read from torchrun's report and the ranks' error files;
the whole process tree stopped once one process fails."""

import os
import sys

import pytest

from twinbench.parallel.launcher import LaunchFailed, ProcessTree, _describer, _wait

# The tail of torchrun's failure report, as torch 2.13 prints it.
REPORT = """\
Failures:
[1]:
  time      : 2026-12-01_12:28:31
  host      : localhost
  rank      : 1 (local_rank: 1)
  exitcode  : {rank1} (pid: 30587)
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-01_12:28:31
  host      : localhost
  rank      : 0 (local_rank: 0)
  exitcode  : {rank0} (pid: 30586)
"""
PEER = "RuntimeError: [pair.cc:537] Read error [127.0.0.1]:59572: Connection reset by peer."


def _describe(tmp_path, rank0, rank1, errors):
    log = tmp_path / "torchrun.log"
    log.write_text(REPORT.format(rank0=rank0, rank1=rank1))
    for rank, text in errors.items():
        (tmp_path / f"error-rank{rank}.txt").write_text(text)
    return _describer(tmp_path, [log], torchrun=True)([1])


def test_a_rank_that_raised_is_an_error_even_when_torchrun_stopped_the_others(tmp_path):
    status, error = _describe(tmp_path, rank0=-15, rank1=1, errors={1: "RuntimeError: boom"})
    assert status == "error"
    assert error == "rank 1: RuntimeError: boom"


def test_the_rank_with_its_own_error_is_named_before_the_one_that_lost_its_peer(tmp_path):
    errors = {0: PEER, 1: "RuntimeError: boom"}
    status, error = _describe(tmp_path, rank0=1, rank1=1, errors=errors)
    assert status == "error"
    assert error.startswith("rank 1: RuntimeError: boom; rank 0: ")


def test_a_rank_killed_by_a_signal_makes_the_cell_crashed(tmp_path):
    status, error = _describe(tmp_path, rank0=1, rank1=-9, errors={0: PEER})
    assert status == "crashed"
    assert error.startswith("rank 1: worker died from SIGKILL")
    assert error.index("rank 1") < error.index("rank 0: RuntimeError")


def test_a_rank_stopped_by_sigterm_with_no_other_cause_is_crashed(tmp_path):
    status, error = _describe(tmp_path, rank0=-15, rank1=-15, errors={})
    assert status == "crashed"
    assert "SIGTERM" in error


def test_one_process_that_fails_ends_the_cell_and_the_tree_is_killed(tmp_path):
    ready = tmp_path / "child-started"
    # rank 0 waits on its peer, with a child of its own (as torchrun's ranks have); rank 1 fails
    # once that child is there
    waiting = (f"import pathlib, subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
               f"'import time; time.sleep(60)']); pathlib.Path({str(ready)!r}).touch(); "
               "time.sleep(60)")
    failing = (f"import os, time\nwhile not os.path.exists({str(ready)!r}): time.sleep(0.01)\n"
               "print('out of patience'); raise SystemExit(3)")
    logs = [tmp_path / "rank0.log", tmp_path / "rank1.log"]
    tree = ProcessTree()
    tree.start([sys.executable, "-c", waiting], dict(os.environ), logs[0])
    tree.start([sys.executable, "-c", failing], dict(os.environ), logs[1])
    with pytest.raises(LaunchFailed) as failed:
        _wait(tree, timeout_s=60, describe=_describer(tmp_path, logs, torchrun=False))
    assert failed.value.status == "error"
    assert failed.value.error == "process 1: worker exited with status 3; output: out of patience"
    assert len(tree.seen) == 3  # both ranks and the first one's child were seen, and are gone
    assert not [p for p in tree.seen.values() if p.is_running()]
