"""The run's progress bar counts worker processes, so that its ETA moves from the first pass."""

import io

from rich.console import Console

from twinbench.cli.progress import RunProgress


def _completed(events):
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    with RunProgress(console) as progress:
        for event, info in events:
            progress.update(event, info)
        task = progress._progress.tasks[0]
        return task.completed, task.total


def test_the_bar_counts_processes_and_a_failed_cell_its_unstarted_ones():
    events = [
        ("start", {"run_id": 1, "cells": 4, "processes": 8}),
        ("process-done", {"cell": "a (process 1/2)"}),
        ("process-done", {"cell": "b (process 1/2)"}),
        ("cell-done", {"cell": "a", "status": "ok", "processes_left": 0}),
        ("cell-done", {"cell": "c", "status": "crashed", "processes_left": 2}),
    ]
    assert _completed(events) == (4, 8)


def test_without_a_process_count_the_bar_counts_cells():
    events = [
        ("start", {"run_id": 1, "cells": 4}),  # as the Ray executor starts a run
        ("process-done", {"cell": "a (process 1/2)"}),
        ("cell-done", {"cell": "a", "status": "ok"}),
    ]
    assert _completed(events) == (1, 4)


def test_a_cell_added_during_the_run_grows_the_total():
    events = [
        ("start", {"run_id": 1, "cells": 1, "processes": 2}),
        ("process-done", {"cell": "a (process 1/2)"}),
        ("process-done", {"cell": "a (process 2/2)"}),
        ("cell-done", {"cell": "a", "status": "ok", "processes_left": 0}),
        ("cell-added", {"cell": "a at the budget", "processes": 2}),  # confirming a prediction
        ("process-done", {"cell": "a at the budget (process 1/2)"}),
    ]
    assert _completed(events) == (3, 4)
