"""The run's record of how busy the machine was."""

import subprocess
import sys
import time

from twinbench.harness.machine_load import QUIET_SHARE, LoadMeter, MachineLoad

BUSY_SECONDS = 1.0
SPIN = f"import time\nt = time.process_time()\nwhile time.process_time() - t < {BUSY_SECONDS}: pass"


def test_cpu_time_of_a_process_outside_the_run_is_counted_as_other():
    meter = LoadMeter()
    outsider = subprocess.Popen([sys.executable, "-c", SPIN])
    time.sleep(BUSY_SECONDS + 1.5)  # it has finished, but nobody has waited for it yet
    load = meter.stop()
    outsider.wait()
    # Other work on the machine can only add to the figure, never take from it.
    assert load.other_cpu_s >= 0.7 * BUSY_SECONDS
    assert load.wall_s >= BUSY_SECONDS


def test_share_and_quiet_follow_from_the_figures():
    cores, wall = 2, 100.0
    quiet = MachineLoad(wall, cores, QUIET_SHARE * wall * cores, 0.1, 0.2)
    busy = MachineLoad(wall, cores, 2 * QUIET_SHARE * wall * cores, 3.0, 4.0)
    assert quiet.quiet and not busy.quiet
    assert busy.to_dict()["other_share"] == 2 * QUIET_SHARE


def _run_with(load):
    from twinbench.store import RunRecord

    info = {} if load is None else {"machine_load": load.to_dict()}
    return RunRecord(1, "2026-12-01T00:00:00", None, "finished", {}, {}, info)


def test_the_report_says_when_the_machine_was_busy_and_only_then():
    from twinbench.report.summary import summarize_run

    busy = MachineLoad(100.0, 2, 60.0, 2.5, 3.1)
    quiet = MachineLoad(100.0, 2, 1.0, 0.1, 0.1)
    notes = summarize_run(_run_with(busy), [], []).notes
    assert any("not quiet" in n and "30%" in n and "2.5 → 3.1" in n for n in notes)
    for load in (quiet, None):  # a quiet run, and a run stored before the figure existed
        assert not any("not quiet" in n for n in summarize_run(_run_with(load), [], []).notes)
