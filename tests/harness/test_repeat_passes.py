"""The order of a run's worker processes: one pass over every group per repeat, each group
recorded when its last pass is done, and Ctrl-C recording what finished. The rounds themselves
are replaced here by a stand-in that starts no worker (real rounds: test_repeats.py)."""

from types import SimpleNamespace

import pytest

from twinbench.harness import cells as cells_module
from twinbench.harness.cells import CellProcess, measure_cells


def _session(repeats, events):
    def record_measured(cell, processes):
        events.append(("recorded", cell.label, len(processes)))

    def record_failure(cell, status, error):
        events.append(("failed", cell.label, status))

    return SimpleNamespace(
        settings=SimpleNamespace(repeats=repeats),
        record_measured=record_measured,
        record_failure=record_failure,
    )


def _cell(label):
    return SimpleNamespace(label=label)


def _groups():
    return [[_cell("a/torch"), _cell("a/jax")], [_cell("b/torch"), _cell("b/jax")]]


def _stand_in_rounds(monkeypatch, events, interrupt_at=None):
    def measure_round(session, runs, repeat, progress, caches):
        group = runs[0].cell.label.split("/")[0]
        if (group, repeat) == interrupt_at:
            runs[0].processes.append(CellProcess(None, {}))  # cut short: no final word
            raise KeyboardInterrupt
        events.append(("pass", group, repeat))
        for r in runs:
            r.processes.append(CellProcess(None, {}, samples=[1.0], final={"peak_rss_bytes": 1}))

    monkeypatch.setattr(cells_module, "_measure_round", measure_round)


def test_each_pass_goes_through_every_group_and_a_group_is_recorded_after_its_last(monkeypatch):
    events, progress = [], []
    _stand_in_rounds(monkeypatch, events)
    measure_cells(_session(2, events), _groups(), lambda e, i: progress.append((e, i)), None)
    assert events == [
        ("pass", "a", 0), ("pass", "b", 0),  # process 1 of every cell, group after group
        ("pass", "a", 1), ("recorded", "a/torch", 2), ("recorded", "a/jax", 2),
        ("pass", "b", 1), ("recorded", "b/torch", 2), ("recorded", "b/jax", 2),
    ]
    done = [i for e, i in progress if e == "cell-done"]
    assert [d["processes_left"] for d in done] == [0, 0, 0, 0]


def test_ctrl_c_records_the_processes_that_finished_and_leaves_out_the_one_cut_short(
    monkeypatch,
):
    events = []
    _stand_in_rounds(monkeypatch, events, interrupt_at=("a", 1))
    with pytest.raises(KeyboardInterrupt):
        measure_cells(_session(2, events), _groups(), lambda e, i: None, None)
    assert events == [
        ("pass", "a", 0), ("pass", "b", 0),
        # each cell keeps its first process; a/torch's second, cut short, is not counted
        ("recorded", "a/torch", 1), ("recorded", "a/jax", 1),
        ("recorded", "b/torch", 1), ("recorded", "b/jax", 1),
    ]


def test_ctrl_c_in_the_first_pass_records_no_cell_without_a_finished_process(monkeypatch):
    events = []
    _stand_in_rounds(monkeypatch, events, interrupt_at=("b", 0))
    with pytest.raises(KeyboardInterrupt):
        measure_cells(_session(2, events), _groups(), lambda e, i: None, None)
    assert events == [
        ("pass", "a", 0),
        ("recorded", "a/torch", 1), ("recorded", "a/jax", 1),  # b's cells: nothing finished
    ]
