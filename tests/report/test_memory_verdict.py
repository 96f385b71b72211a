"""Memory verdicts from synthetic cells with known answers."""

from helpers import cell as synthetic_cell
from twinbench.report.memory import memory_verdicts, memory_verdicts_for_run
from twinbench.report.recommend import recommend
from twinbench.report.summary import summarize_run
from twinbench.store import CellRecord, RunRecord

MB = 2**20


def cell(mode: str, *by_process_mb: float) -> CellRecord:
    values = [int(v * MB) for v in by_process_mb]
    metrics = {
        "median_s": 1e-3,
        "ci_low_s": 1e-3,
        "ci_high_s": 1e-3,
        "time_to_first_step_s": 1.0,
        "attributable_peak_bytes": sorted(values)[len(values) // 2],
        "attributable_peak_bytes_by_process": values,
        "model_state_bytes": 0,  # the figure as measured now: the state's bytes + one step's
    }
    return synthetic_cell(mode, [1e-3] * 5, metrics=metrics)


def old_style_cell(mode: str, peak_mb: float) -> CellRecord:
    """A cell as stored before the figure counted the state: one step's resident peak above
    the runtime's start-up memory, compiled code and caches included; no model_state_bytes."""
    metrics = {
        "median_s": 1e-3,
        "ci_low_s": 1e-3,
        "ci_high_s": 1e-3,
        "time_to_first_step_s": 1.0,
        "attributable_peak_bytes": int(peak_mb * MB),
        "attributable_peak_bytes_by_process": [int(peak_mb * MB)] * 2,
        "attributable_method": "resident high-water mark of one step (reset first) above the "
        "runtime baseline",
    }
    return synthetic_cell(mode, [1e-3] * 5, metrics=metrics)


def by_comparison(verdicts):
    return {v.comparison: v for v in verdicts}


def test_jax_needing_half_the_memory_is_a_significant_verdict_for_jax():
    cells = [cell("torch-eager", 100, 102, 101), cell("jax-jit", 50, 51, 49)]
    best = by_comparison(memory_verdicts(cells, parity_passed=True))["memory, best vs best"]
    assert best.ratio is not None and best.ratio.significant
    assert 1.9 < best.ratio.ratio < 2.1
    assert best.text.startswith("jax-jit needs 2.0")


def test_the_verdict_flips_when_the_numbers_are_swapped():
    lean, heavy = (50, 51, 49), (100, 102, 101)
    before = memory_verdicts(
        [cell("torch-eager", *heavy), cell("jax-jit", *lean)], parity_passed=True
    )
    after = memory_verdicts(
        [cell("torch-eager", *lean), cell("jax-jit", *heavy)], parity_passed=True
    )
    assert before[0].text.startswith("jax-jit needs")
    assert after[0].text.startswith("torch-eager needs")
    assert before[0].ratio.ratio > 1 > after[0].ratio.ratio


def test_processes_that_disagree_across_1_give_no_significant_difference():
    cells = [cell("torch-eager", 80, 120), cell("jax-jit", 100, 101)]
    (best, *_) = memory_verdicts(cells, parity_passed=True)
    assert best.ratio.ci_low < 1 < best.ratio.ci_high
    assert best.text.startswith("no significant difference")


def test_best_is_the_leanest_mode_and_like_is_compared_with_like():
    cells = [
        cell("torch-eager", 40, 41),
        cell("torch-compile", 90, 91),
        cell("jax-jit", 60, 61),
        cell("jax-eager", 200, 201),
    ]
    verdicts = by_comparison(memory_verdicts(cells, parity_passed=True))
    best = verdicts["memory, best vs best"]
    assert (best.torch_mode, best.jax_mode) == ("torch-eager", "jax-jit")
    assert verdicts["memory, eager vs eager"].text.startswith("torch-eager needs")
    assert verdicts["memory, compiled vs compiled"].text.startswith("jax-jit needs")


def test_no_memory_verdict_for_cells_stored_before_it_or_twins_that_failed_parity():
    old = [synthetic_cell("torch-eager", [1e-3] * 3), synthetic_cell("jax-jit", [1e-3] * 3)]
    assert memory_verdicts(old, parity_passed=True) == []
    cells = [cell("torch-eager", 100), cell("jax-jit", 50)]
    failed = [{"workload": "mlp", "size": "tiny", "passed": False, "summary": {}}]
    assert memory_verdicts_for_run(cells, failed) == []


def test_the_report_and_its_recommendations_carry_the_memory_verdict():
    run = RunRecord(1, "2026-01-01", "2026-01-01", "finished", {}, {}, {})
    cells = [cell("torch-eager", 100, 101), cell("jax-jit", 50, 51)]
    summary = summarize_run(run, cells, [])
    assert any(v.comparison == "memory, best vs best" for v in summary.verdicts)
    advice = [r for r in recommend(summary) if r.kind == "memory"]
    assert len(advice) == 1 and "jax-jit needs" in advice[0].text
    rows = {r["mode"]: r for r in summary.rows}
    assert rows["jax-jit"]["model MB"].startswith("51 (50–51)")  # median, then the processes


def test_exports_and_load_results_name_every_memory_field(tmp_path):
    import twinbench
    from helpers import add_run
    from twinbench.report import export

    legacy = synthetic_cell("torch-eager", [1e-3] * 3, metrics={"peak_memory_bytes": 7 * MB})
    new = cell("jax-jit", 50, 51)
    add_run(tmp_path, [legacy, new])
    frame = twinbench.load_results(tmp_path)
    assert not [c for c in frame.columns if c.startswith("peak_")]  # no bare peak figure
    by_mode = frame.set_index("mode")
    assert by_mode.loc["torch-eager", "process_peak_memory_bytes"] == 7 * MB  # an older row
    assert by_mode.loc["jax-jit", "attributable_peak_bytes"] == 51 * MB
    run = RunRecord(1, "2026-01-01", "2026-01-01", "finished", {}, {}, {})
    data = export.export_dict(summarize_run(run, [new, cell("torch-eager", 100, 101)], []))
    assert "attributable_peak_bytes" in data["memory_fields"]
    quantities = {v["comparison"]: v["quantity"] for v in data["verdicts"]}
    assert quantities["memory, best vs best"] == "attributable peak memory"
    assert quantities["best vs best"] == "time"


def test_cells_stored_before_the_state_was_counted_get_a_caveat_not_a_verdict():
    # linreg tiny as it was stored then: torch-compile 70.8 MB, jax-eager 79.6 MB, mostly compiler
    cells = [old_style_cell("torch-compile", 70.8), old_style_cell("jax-eager", 79.6)]
    (only,) = memory_verdicts(cells, parity_passed=True)
    assert only.ratio is None and only.comparison == "memory, best vs best"
    assert only.text.startswith("no memory verdict") and "compiled code" in only.text
    run = RunRecord(1, "2026-01-01", "2026-01-01", "finished", {}, {}, {})
    summary = summarize_run(run, cells, [])
    assert [v.text for v in summary.verdicts if v.comparison.startswith("memory")] == [only.text]
    assert not [r for r in recommend(summary) if r.kind == "memory"]  # nothing to act on


def test_a_device_peak_stored_without_the_state_is_still_compared():
    gpu = "device allocator peak of the memory step"  # the allocator never held the compiler's
    cells = [old_style_cell("torch-eager", 100), old_style_cell("jax-jit", 50)]
    for c in cells:
        c.metrics["attributable_method"] = gpu
    (best, *_) = memory_verdicts(cells, parity_passed=True)
    assert best.ratio is not None and best.text.startswith("jax-jit needs")
