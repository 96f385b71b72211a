"""Cells measured in several worker processes: cold and warm compile caches, the time
breakdown, and cells of one process stored by older versions (a new run of one process per
cell: tests/test_cli_run.py, which reads the session's shared run)."""

import time

import pytest

from twinbench.harness.runner import RunSettings, run
from twinbench.report.summary import ONE_PROCESS_NOTE, summarize_run
from twinbench.store import DB_NAME, CellRecord, ResultStore


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("repeats")
    settings = RunSettings(
        workloads=("xor",),
        sizes=("tiny",),
        modes=("torch-eager", "jax-jit"),
        threads=1,
        budget=0.6,
        repeats=2,
        parity_steps=3,
        out=out,
    )
    started = time.monotonic()
    run_id = run(settings)
    wall = time.monotonic() - started
    with ResultStore(out / DB_NAME) as store:
        return store.run(run_id), store.cells(run_id), wall


def _cell(cells, mode):
    return next(c for c in cells if c.mode == mode)


def test_each_cell_pools_the_samples_of_its_processes(two_process_run):
    _, cells, _ = two_process_run
    for cell in cells:
        assert cell.status == "ok", cell.error
        groups = cell.sample_groups()
        assert cell.metrics["processes"] == 2 and len(groups) == 2
        assert all(groups) and sum(map(len, groups)) == len(cell.samples)
        assert len(cell.metrics["time_to_first_step_s_by_process"]) == 2
        assert cell.metrics["flops_per_step"] > 0  # counted once, by the first process


def test_the_first_process_compiles_with_empty_caches_and_the_second_reuses_them(
    two_process_run,
):
    _, cells, _ = two_process_run
    cold, warm = _cell(cells, "jax-jit").metrics["compile_cache_entries_at_start"]
    assert cold == 0
    assert warm > 0  # XLA's persistent cache, written by the first process
    # eager PyTorch compiles nothing: its caches stay empty for both processes
    assert _cell(cells, "torch-eager").metrics["compile_cache_entries_at_start"] == [0, 0]
    jit = _cell(cells, "jax-jit").metrics
    assert jit["compile_s"] == jit["compile_s_by_process"][0]
    assert jit["compile_warm_s"] == jit["compile_s_by_process"][1]


def test_the_time_breakdown_accounts_for_the_run(two_process_run):
    run_record, _, wall = two_process_run
    parts = run_record.info["time_breakdown"]
    total = parts.pop("wall_s")
    assert sum(parts.values()) == pytest.approx(total, rel=1e-6)
    assert total == pytest.approx(wall, rel=0.05)
    for measured in ("parity", "peak probe", "set-up", "compile and first step"):
        assert parts[measured] > 0, measured
    # each of the 2 × 2 processes times at least one round (0.2 s here) before it may stop as
    # converged, and none runs past its share of its cell's budget by more than a round
    assert 2 * 2 * 0.2 * 0.9 <= parts["steady-state timing"] <= 2 * 0.6 + 2 * 2 * 0.2
    assert parts["everything else"] < 0.25 * total


def test_a_cell_stored_before_processes_were_recorded_is_one_group(tmp_path):
    from twinbench.store import RunRecord

    old = CellRecord(
        "mlp", "tiny", "torch", "torch-eager", "train", "float32", "cpu", "ok",
        metrics={"median_s": 0.01, "ci_low_s": 0.009, "ci_high_s": 0.011,
                 "time_to_first_step_s": 0.1, "compile_s": None, "converged": True},
        samples=[0.01, 0.011, 0.009],
    )  # fmt: skip
    assert old.sample_groups() == [[0.01, 0.011, 0.009]]
    run_record = RunRecord(1, "2026-01-01T00:00:00", None, "finished", {}, {"budget": 5}, {})
    summary = summarize_run(run_record, [old], [])
    assert ONE_PROCESS_NOTE in summary.notes
    assert summary.rows[0]["first step s"] == "0.1"
