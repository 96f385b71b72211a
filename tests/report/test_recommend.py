"""recommend(): each piece of advice follows from the numbers, and other numbers change it."""

from __future__ import annotations

import numpy as np

from helpers import cell
from twinbench.report.recommend import KINDS, recommend
from twinbench.report.summary import RunSummary, summarize_run
from twinbench.store import CellRecord, RunRecord


def _cell(
    mode: str,
    median: float,
    *,
    compile_s: float | None = None,
    spread: float = 0.01,
    size: str = "small",
    status: str = "ok",
    error: str | None = None,
    batch_size: int = 32,
) -> CellRecord:
    if status != "ok":
        return cell(mode, status=status, error=error, size=size)
    # symmetric around the median, in a shuffled order: the sample median is exactly `median`
    samples = list(
        np.random.default_rng(0).permutation(median * (1 + spread * np.linspace(-2, 2, 61)))
    )
    q25, q75 = np.percentile(samples, [25, 75])
    metrics = {
        "median_s": float(np.median(samples)),
        "iqr_s": float(q75 - q25),
        "ci_low_s": median * (1 - spread / 4),
        "ci_high_s": median * (1 + spread / 4),
        "noisy": bool(q75 - q25 > 0.1 * median),
        "converged": spread < 0.05,
        "time_to_first_step_s": (compile_s or 0.0) + median,
        "compile_s": compile_s,
        "batch_size": batch_size,
        "samples_per_s": batch_size / median,
    }
    return cell(mode, samples, metrics=metrics, size=size)


def _summary(
    cells: list[CellRecord], *, passed: bool = True, status: str = "finished"
) -> RunSummary:
    run = RunRecord(1, "2026-01-01T00:00:00+00:00", None, status, {}, {}, {})
    parity = [
        {
            "workload": "mlp",
            "size": "small",
            "passed": passed,
            "summary": {"checks": [{"name": "loss", "passed": passed}]},
        }
    ]
    return summarize_run(run, cells, parity)


def _kinds(summary: RunSummary) -> list[str]:
    return [r.kind for r in recommend(summary)]


def _text(summary: RunSummary, kind: str) -> str:
    return " ".join(r.text for r in recommend(summary) if r.kind == kind)


def test_fastest_mode_is_recommended_for_long_training_and_flips_with_the_numbers():
    jax_wins = _summary([_cell("torch-eager", 0.010), _cell("jax-jit", 0.005, compile_s=0.5)])
    torch_wins = _summary([_cell("torch-eager", 0.004), _cell("jax-jit", 0.008, compile_s=0.5)])
    assert "use jax-jit" in _text(jax_wins, "long-training")
    assert "2.00× faster" in _text(jax_wins, "long-training")
    assert "use torch-eager" in _text(torch_wins, "long-training")
    assert "use jax-jit" not in _text(torch_wins, "long-training")


def test_break_even_sets_the_short_run_advice():
    # 0.5 s compile, 5 ms saved per step: pays off after 100 steps
    summary = _summary([_cell("torch-eager", 0.010), _cell("jax-jit", 0.005, compile_s=0.5)])
    assert "shorter than about 100 steps use torch-eager" in _text(summary, "short-runs")
    slower_compile = _summary([_cell("torch-eager", 0.010), _cell("jax-jit", 0.005, compile_s=5.0)])
    assert "shorter than about 1,000 steps" in _text(slower_compile, "short-runs")


def test_fastest_mode_without_compile_cost_wins_short_runs_too():
    summary = _summary([_cell("torch-eager", 0.004), _cell("jax-jit", 0.008, compile_s=0.5)])
    assert "use torch-eager" not in _text(summary, "short-runs")
    assert "shorter than" not in _text(summary, "short-runs")


def test_equal_medians_are_called_indistinguishable_not_a_win():
    summary = _summary(
        [_cell("torch-eager", 0.010, spread=0.2), _cell("jax-jit", 0.0101, spread=0.2)]
    )
    kinds = _kinds(summary)
    assert "indistinguishable" in kinds
    assert "long-training" not in kinds
    assert "noisy" in kinds  # a 20 % spread is too noisy to judge
    assert "IQR" in _text(summary, "noisy")


def test_quiet_cells_are_not_flagged_noisy():
    summary = _summary([_cell("torch-eager", 0.010), _cell("jax-jit", 0.005, compile_s=0.5)])
    assert "noisy" not in _kinds(summary)


def test_failed_cells_and_parity_failures_come_first_and_block_speed_advice():
    cells = [
        _cell("torch-eager", 0.010),
        _cell("jax-jit", 0.005, compile_s=0.5),
        _cell("jax-eager", 0.0, status="crashed", error="Segmentation fault\nmore"),
    ]
    ok = _kinds(_summary(cells))
    assert ok[0] == "failed"
    assert "Segmentation fault" in _text(_summary(cells), "failed")
    failed_parity = _kinds(_summary(cells, passed=False))
    assert failed_parity[:2] == ["parity", "failed"]
    assert "long-training" not in failed_parity and "short-runs" not in failed_parity


def test_only_failed_cells_and_interrupted_runs_still_get_advice():
    summary = _summary(
        [
            _cell("torch-eager", 0, status="error", error="boom"),
            _cell("jax-jit", 0, status="timeout", error="timed out"),
        ],
        status="interrupted",
    )
    kinds = _kinds(summary)
    assert kinds.count("failed") == 2
    assert kinds.count("run") == 2  # interrupted, and nothing measured
    assert kinds == sorted(kinds, key=KINDS.index)


def test_sweep_advice_names_best_throughput_and_growth_exponent():
    cells = []
    for bs in (16, 64, 256):
        size = f"small bs={bs}"
        cells.append(_cell("torch-eager", 0.001 * bs, size=size, batch_size=bs))  # linear
        cells.append(_cell("jax-jit", 0.004 * bs**0.5, compile_s=0.3, size=size, batch_size=bs))
    summary = _summary(cells)
    text = _text(summary, "sweep")
    assert "best throughput: jax-jit at the largest batch measured" in text
    assert "torch-eager step time ∝ batch^1.00" in text
    assert "jax-jit step time ∝ batch^0.50" in text
    assert "long-training" not in _kinds(summary)  # per-point advice is folded into the sweep


def _budget_summary(predicted: int, outcome: str) -> RunSummary:
    fit = {"workload": "mlp", "size": "small", "phase": "train", "mode": "jax-eager",
           "batch_sizes": [256, 1024], "predicted_batch": predicted,
           "measured_bytes": 300 * 2**20, "outcome": outcome}
    info = {"memory_budget": {"budget_bytes": 256 * 2**20, "fits": [fit]}}
    run = RunRecord(1, "2026-01-01T00:00:00+00:00", None, "finished", {}, {}, info)
    return summarize_run(run, [_cell("jax-eager", 0.01)], [])


def test_a_budget_prediction_far_past_the_sweep_is_cautioned_and_a_near_one_is_not():
    far = _text(_budget_summary(47_496, "over the budget"), "memory")
    assert "largest batch predicted 47,496" in far and "over the budget" in far
    assert "46× past the largest batch swept (1,024)" in far
    near = _text(_budget_summary(3_000, "fits the budget"), "memory")
    assert "largest batch predicted 3,000" in near and "past the largest batch" not in near
