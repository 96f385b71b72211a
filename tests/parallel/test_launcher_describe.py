"""A failed cell's status and error, read from torchrun's report and the ranks' error files."""

from twinbench.parallel.launcher import _describer

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
