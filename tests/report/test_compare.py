"""compare_runs: a cell is improved or regressed only when the change is large AND significant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import ENVIRONMENT, SETTINGS, add_run, cell, noisy
from twinbench.errors import TwinbenchError
from twinbench.report.compare import (
    CompareRow,
    compare_runs,
    environment_warnings,
    render_markdown,
)
from twinbench.store import DB_NAME, CellRecord, ResultStore, RunRecord, StoreError


def _store(
    tmp_path: Path,
    *runs: list[CellRecord],
    environments: list[dict[str, Any]] | None = None,
    settings: list[dict[str, Any]] | None = None,
) -> ResultStore:
    for i, cells in enumerate(runs):
        add_run(tmp_path, cells, environment=environments[i] if environments else None,
                settings=settings[i] if settings else None)
    return ResultStore(tmp_path / DB_NAME)


def _only_row(tmp_path: Path, a: np.ndarray, b: np.ndarray, **kwargs: Any) -> CompareRow:
    with _store(tmp_path, [cell("jax-jit", a)], [cell("jax-jit", b)]) as store:
        comparison = compare_runs(store, 1, 2, **kwargs)
    assert len(comparison.rows) == 1
    return comparison.rows[0]


def test_thirty_percent_slower_with_small_noise_is_a_regression(tmp_path):
    a = noisy(1e-3, 40, seed=1, noise=0.02)
    b = 1.3 * noisy(1e-3, 40, seed=2, noise=0.02)
    row = _only_row(tmp_path, a, b)
    assert row.change == "regressed"
    assert row.ratio == pytest.approx(np.median(b) / np.median(a))
    assert row.ratio == pytest.approx(1.3, abs=0.03)
    assert row.ci_low > 1.0 and row.ci_low <= row.ratio <= row.ci_high
    assert row.p_value < 1e-6  # 40 vs 40 fully separated samples
    assert (row.n_a, row.n_b) == (40, 40)
    assert row.median_a_s == pytest.approx(np.median(a))


def test_thirty_percent_faster_is_an_improvement(tmp_path):
    a = noisy(1e-3, 40, seed=3, noise=0.02)
    b = noisy(1e-3, 40, seed=4, noise=0.02) / 1.3
    row = _only_row(tmp_path, a, b)
    assert row.change == "improved"
    assert row.ratio == pytest.approx(1 / 1.3, abs=0.02)
    assert row.ci_high < 1.0


def test_a_significant_change_below_the_threshold_is_unchanged(tmp_path):
    a = noisy(1e-3, 60, seed=5, noise=0.005)
    b = 1.03 * noisy(1e-3, 60, seed=6, noise=0.005)
    row = _only_row(tmp_path, a, b)
    # 3 % slower, measured precisely enough to be significant, but under the 10 % threshold
    assert row.significant and row.ci_low > 1.0
    assert row.change == "unchanged"
    assert row.note == ""
    # the same data with a 1 % threshold is a regression: the threshold is what held it back
    assert _only_row(tmp_path / "again", a, b, threshold=0.01).change == "regressed"


def test_a_large_change_from_three_noisy_samples_is_not_significant(tmp_path):
    a = np.array([1.00, 1.25, 0.80]) * 1e-3
    b = np.array([1.30, 1.60, 1.26]) * 1e-3  # every B above every A, medians 1.3 apart
    row = _only_row(tmp_path, a, b)
    assert row.ratio == pytest.approx(1.3)
    # the smallest two-sided exact Mann-Whitney p for 3 vs 3 is 2 / C(6, 3) = 0.1
    assert row.p_value == pytest.approx(0.1)
    assert not row.significant
    assert row.change == "unchanged"
    assert "not significant" in row.note


def test_large_noise_hides_a_large_ratio(tmp_path):
    a = np.abs(noisy(1e-3, 8, seed=7, noise=0.6))
    b = np.abs(noisy(1.2e-3, 8, seed=8, noise=0.6))
    row = _only_row(tmp_path, a, b)
    assert row.ci_low < 1.0 < row.ci_high
    assert row.change == "unchanged"


def test_significance_needs_both_the_p_value_and_the_interval():
    base = dict(
        workload="w",
        size="s",
        framework="jax",
        mode="jax-jit",
        phase="train",
        dtype="float32",
        device="cpu",
        change="unchanged",
        ratio=1.4,
    )
    assert CompareRow(**base, p_value=0.01, ci_low=1.1, ci_high=1.6).significant
    assert not CompareRow(**base, p_value=0.01, ci_low=0.9, ci_high=1.6).significant
    assert not CompareRow(**base, p_value=0.2, ci_low=1.1, ci_high=1.6).significant
    row = CompareRow(**base, p_value=0.01, ci_low=1.1, ci_high=1.6)
    assert row.regressed_by_more_than(0.3) and not row.regressed_by_more_than(0.5)


def test_added_removed_and_failed_cells(tmp_path):
    samples = noisy(1e-3, 20, seed=9, noise=0.01)
    run_a = [
        cell("jax-jit", samples),
        cell("torch-eager", samples),
        cell("torch-compile", samples),
    ]
    run_b = [
        cell("jax-jit", samples),
        cell("torch-eager", [], status="crashed", error="Segmentation fault"),
        cell("jax-eager", samples),
    ]
    with _store(tmp_path, run_a, run_b) as store:
        comparison = compare_runs(store, 1, 2)
        reverse = compare_runs(store, 2, 1)
    by_mode = {row.mode: row for row in comparison.rows}
    assert by_mode["jax-jit"].change == "unchanged" and by_mode["jax-jit"].ratio == 1.0
    assert by_mode["torch-eager"].change == "failed"
    assert "B: crashed" in by_mode["torch-eager"].note
    assert by_mode["torch-eager"].ratio is None
    assert by_mode["torch-compile"].change == "removed"
    assert by_mode["jax-eager"].change == "added"
    assert by_mode["jax-eager"].median_b_s == pytest.approx(np.median(samples))
    counts = comparison.counts()
    assert counts == {
        "regressed": 0,
        "improved": 0,
        "unchanged": 1,
        "failed": 1,
        "added": 1,
        "removed": 1,
    }
    # a cell that worked in A and crashes in B fails a CI gate; the reverse is a repair
    assert [row.mode for row in comparison.regressions(0.0)] == ["torch-eager"]
    assert reverse.regressions(0.0) == []


def test_cells_are_matched_by_their_whole_key(tmp_path):
    samples = noisy(1e-3, 20, seed=10, noise=0.01)
    with _store(
        tmp_path, [cell("jax-jit", samples)], [cell("jax-jit", samples, phase="infer")]
    ) as store:
        changes = sorted(row.change for row in compare_runs(store, 1, 2).rows)
    assert changes == ["added", "removed"]


def test_same_environment_gives_no_warning(tmp_path):
    with _store(tmp_path, [], []) as store:
        assert compare_runs(store, 1, 2).warnings == []


def _run(environment: dict[str, Any], settings: dict[str, Any], status: str = "finished"):
    return RunRecord(1, "t0", "t1", status, environment, settings, {})


def test_environment_differences_are_named():
    other_machine = {**ENVIRONMENT, "cpu_model": "Other CPU", "usable_cores": 8}
    warnings = environment_warnings(_run(ENVIRONMENT, SETTINGS), _run(other_machine, SETTINGS))
    assert len(warnings) == 1
    assert "different machines" in warnings[0]
    assert "Test CPU → Other CPU" in warnings[0] and "usable_cores 2 → 8" in warnings[0]

    newer = {**ENVIRONMENT, "versions": {"torch": "2.14.0+cpu", "jax": "0.10.2"}}
    (warning,) = environment_warnings(_run(ENVIRONMENT, SETTINGS), _run(newer, SETTINGS))
    assert "library versions" in warning and "torch 2.13.0+cpu → 2.14.0+cpu" in warning
    assert "jax" not in warning

    tf32 = {**SETTINGS, "allow_tf32": True, "threads": 4}
    (warning,) = environment_warnings(_run(ENVIRONMENT, SETTINGS), _run(ENVIRONMENT, tf32))
    assert "different settings" in warning
    assert "allow_tf32 False → True" in warning and "threads 2 → 4" in warning

    (warning,) = environment_warnings(
        _run(ENVIRONMENT, SETTINGS), _run(ENVIRONMENT, SETTINGS, status="interrupted")
    )
    assert "interrupted" in warning


def test_warnings_come_first_in_markdown_and_json(tmp_path):
    samples = noisy(1e-3, 20, seed=11, noise=0.01)
    other = {**ENVIRONMENT, "gpus": ["NVIDIA H100"]}
    with _store(
        tmp_path,
        [cell("jax-jit", samples)],
        [cell("jax-jit", samples * 1.5)],
        environments=[ENVIRONMENT, other],
    ) as store:
        comparison = compare_runs(store, 1, 2)
    markdown = render_markdown(comparison)
    assert markdown.index("different machines") < markdown.index("| cell |")
    assert "| mlp/tiny jax-jit train |" in markdown and "| regressed |" in markdown
    data = json.loads(json.dumps(comparison.to_dict()))
    assert "different machines" in data["warnings"][0]
    assert data["rows"][0]["change"] == "regressed"
    assert data["rows"][0]["significant"] is True
    assert data["rows"][0]["ratio"] == pytest.approx(1.5)
    assert data["run_a"]["id"] == 1 and data["run_b"]["environment"]["gpus"] == ["NVIDIA H100"]
    assert data["counts"]["regressed"] == 1


def test_a_run_with_itself_or_an_unknown_run_is_refused(tmp_path):
    with _store(tmp_path, [], [], []) as store:
        with pytest.raises(TwinbenchError, match="with itself"):
            compare_runs(store, 2, 2)
        with pytest.raises(StoreError, match=r"no run 9 .*runs: 1\.\.3"):
            compare_runs(store, 1, 9)
        with pytest.raises(TwinbenchError, match="threshold"):
            compare_runs(store, 1, 2, threshold=-0.1)
