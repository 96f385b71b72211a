"""Verdicts from synthetic cells with known answers."""

import re

import numpy as np

from helpers import cell as synthetic_cell
from twinbench.report.verdict import flops_disagreement, group_verdicts
from twinbench.store import CellRecord


def cell(
    mode: str, median: float, *, spread: float = 0.01, seed: int = 0, flops=None, ttfs: float = 1.0
) -> CellRecord:
    rng = np.random.default_rng(seed)
    samples = list(median * (1 + spread * rng.standard_normal(200)))
    metrics = {
        "median_s": float(np.median(samples)),
        "time_to_first_step_s": ttfs,
        "flops_per_step": flops,
    }
    return synthetic_cell(mode, samples, metrics=metrics, workload="w")


def by_comparison(verdicts):
    return {v.comparison: v for v in verdicts}


def test_jax_twice_as_fast_is_a_significant_verdict_for_jax():
    cells = [cell("torch-eager", 2e-3, seed=1), cell("jax-jit", 1e-3, seed=2)]
    best = by_comparison(group_verdicts(cells, parity_passed=True))["best vs best"]
    assert best.ratio is not None and best.ratio.significant
    assert 1.9 < best.ratio.ratio < 2.1
    assert best.text.startswith("jax-jit 2.0")


def test_torch_faster_names_torch():
    cells = [
        cell("torch-compile", 1e-3, seed=1),
        cell("torch-eager", 3e-3, seed=3),
        cell("jax-jit", 1.5e-3, seed=2),
    ]
    verdicts = by_comparison(group_verdicts(cells, parity_passed=True))
    assert verdicts["best vs best"].torch_mode == "torch-compile"
    assert verdicts["best vs best"].text.startswith("torch-compile 1.5")
    # the interval is stated for the claimed factor (≈1.5×), not for its inverse
    low, high = map(
        float,
        re.search(r"95% rerun interval ([\d.]+)–([\d.]+)×", verdicts["best vs best"].text).groups(),
    )
    factor = 1 / verdicts["best vs best"].ratio.ratio
    assert low <= round(factor, 2) <= high and low > 1.4
    assert "compiled vs compiled" in verdicts and "eager vs eager" not in verdicts


def test_same_distribution_is_no_significant_difference():
    cells = [
        cell("torch-eager", 1e-3, spread=0.05, seed=1),
        cell("jax-eager", 1e-3, spread=0.05, seed=2),
    ]
    best = by_comparison(group_verdicts(cells, parity_passed=True))["best vs best"]
    assert best.ratio is not None and not best.ratio.significant
    assert best.text.startswith("no significant difference")


def test_failed_parity_gives_no_speed_verdict():
    cells = [cell("torch-eager", 2e-3), cell("jax-jit", 1e-3)]
    verdicts = group_verdicts(cells, parity_passed=False, parity_reason="failed: outputs")
    assert len(verdicts) == 1 and verdicts[0].ratio is None
    assert "failed parity" in verdicts[0].text and "outputs" in verdicts[0].text


def test_failed_cells_are_left_out_of_verdicts():
    broken = CellRecord(
        "w",
        "tiny",
        "jax",
        "jax-jit",
        "train",
        "float32",
        "cpu",
        "crashed",
        error="worker died from SIGABRT",
    )
    verdicts = group_verdicts([cell("torch-eager", 1e-3), broken], parity_passed=True)
    assert verdicts == []


def test_time_to_first_step_verdict_picks_the_quicker_start():
    cells = [cell("torch-eager", 2e-3, ttfs=0.01), cell("jax-jit", 1e-3, ttfs=0.5)]
    ttfs = by_comparison(group_verdicts(cells, parity_passed=True))["time to first step"]
    assert ttfs.text.startswith("torch-eager starts first")


def test_flops_disagreement_is_relative_to_the_larger_count():
    cells = [cell("torch-eager", 1e-3, flops=80.0), cell("jax-jit", 1e-3, flops=100.0)]
    assert flops_disagreement(cells) == 0.2
    assert flops_disagreement([cell("torch-eager", 1e-3, flops=80.0)]) is None


def test_the_cell_tables_speedup_compares_round_by_round_like_the_verdicts():
    from twinbench.report.summary import summarize_run
    from twinbench.store import RunRecord

    # the machine slowed 2x between the rounds and the rounds took unequal sample counts:
    # pooled, both cells' medians are 10 ms (1.00x); in each round torch-compile is 2x faster
    def two_rounds(mode, first, second):
        samples = (
            [*[first] * 100, *[second] * 10]
            if mode == "torch-eager"
            else [*[first] * 10, *[second] * 100]
        )
        made = synthetic_cell(mode, samples)
        counts = [100, 10] if mode == "torch-eager" else [10, 100]
        made.metrics |= {
            "process_sample_counts": counts,
            "time_to_first_step_s": 0.1,
            "process_medians_s": [first, second],
        }
        return made

    eager, compiled = (
        two_rounds("torch-eager", 0.010, 0.020),
        two_rounds("torch-compile", 0.005, 0.010),
    )
    assert eager.metrics["median_s"] == compiled.metrics["median_s"] == 0.010  # the premise
    run = RunRecord(1, "now", None, "finished", {}, {}, {})
    rows = summarize_run(run, [eager, compiled], []).rows
    row = next(r for r in rows if r["mode"] == "torch-compile")
    assert row["vs torch-eager"] == "2.00×"
