"""CSV and JSON exports of a run: every metric, the environment and the raw samples."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from helpers import ENVIRONMENT, SETTINGS, add_run, cell
from twinbench.report import export
from twinbench.report.summary import load_summary
from twinbench.store import DB_NAME, CellRecord, ResultStore, load_results


def _ok_cell(mode: str, samples: list[float], **metrics: object) -> CellRecord:
    ok = cell(mode, samples)
    ok.metrics.update(time_to_first_step_s=0.5, compile_s=None, converged=True, **metrics)
    return ok


def _failed_cell(mode: str) -> CellRecord:
    return cell(mode, status="error", error="RuntimeError: boom\nline two")


def _results(tmp_path: Path, cells: list[CellRecord]) -> Path:
    add_run(tmp_path, cells, info={"peak_flops": {"torch": 1e10}})
    return tmp_path


CELLS = [
    _ok_cell("torch-eager", [0.003, 0.001, 0.002], process_peak_memory_bytes=2**20),
    _ok_cell("jax-jit", [0.0005, 0.0007, 0.0006, 0.0004], flops={"xla": 10.0}),
    _failed_cell("jax-eager"),
]


def test_csv_has_one_row_per_cell_with_every_metric(tmp_path):
    summary = load_summary(_results(tmp_path, CELLS))
    path = export.to_csv(summary, tmp_path / "cells.csv")
    assert path == tmp_path / "cells.csv"
    frame = pd.read_csv(path)
    assert len(frame) == 3
    assert list(frame.columns[:10]) == [
        "run_id",
        "workload",
        "size",
        "framework",
        "mode",
        "phase",
        "dtype",
        "device",
        "status",
        "error",
    ]
    rows = {row["mode"]: row for row in frame.to_dict("records")}
    assert rows["torch-eager"]["median_s"] == pytest.approx(0.002)
    assert rows["torch-eager"]["process_peak_memory_bytes"] == 2**20
    assert rows["jax-jit"]["n_samples"] == 4
    assert rows["jax-jit"]["flops.xla"] == 10.0  # nested metrics flattened as outer.inner
    assert rows["jax-eager"]["status"] == "error"
    assert rows["jax-eager"]["error"] == "RuntimeError: boom\nline two"
    assert pd.isna(rows["jax-eager"]["median_s"])
    assert set(frame["run_id"]) == {summary.run.id}


def test_csv_matches_load_results(tmp_path):
    results = _results(tmp_path, CELLS)
    summary = load_summary(results)
    ours = export.cells_frame(summary).sort_values("mode").reset_index(drop=True)
    theirs = load_results(results, run_id=summary.run.id).sort_values("mode")
    theirs = theirs.reset_index(drop=True)
    assert list(ours.columns) == list(theirs.columns)
    pd.testing.assert_frame_equal(ours, theirs)


def test_json_keeps_run_environment_samples_and_parity(tmp_path):
    results = _results(tmp_path, CELLS)
    with ResultStore(results / DB_NAME) as store:
        store.record_parity(
            1,
            workload="mlp",
            size="tiny",
            passed=True,
            summary={"checks": [{"name": "curve[sgd]", "curves": {"torch": [1.0, 0.5]}}]},
        )
    summary = load_summary(results)
    data = json.loads((export.to_json(summary, tmp_path / "run.json")).read_text())
    assert data["format"] == "twinbench-export" and data["version"] == 1
    assert data["run"]["id"] == 1 and data["run"]["status"] == "finished"
    assert data["run"]["environment"] == ENVIRONMENT
    assert data["run"]["settings"] == SETTINGS
    assert data["run"]["info"] == {"peak_flops": {"torch": 1e10}}
    cells = {cell["mode"]: cell for cell in data["cells"]}
    assert cells["jax-jit"]["samples"] == [0.0005, 0.0007, 0.0006, 0.0004]
    assert cells["jax-jit"]["metrics"]["flops"] == {"xla": 10.0}
    assert cells["jax-eager"]["samples"] == [] and cells["jax-eager"]["status"] == "error"
    assert data["parity"][0]["summary"]["checks"][0]["curves"]["torch"] == [1.0, 0.5]
    (verdict,) = [v for v in data["verdicts"] if v["comparison"] == "best vs best"]
    # medians of the raw samples: torch-eager 2 ms, jax-jit (0.5 + 0.6) / 2 ms
    assert verdict["ratio_torch_over_jax"] == pytest.approx(0.002 / 0.00055)


def test_json_is_strict_about_non_finite_numbers(tmp_path):
    cells = [
        _ok_cell("jax-jit", [1e-3, 2e-3], achieved_flops_per_s=float("nan"), share=float("inf"))
    ]
    text = io.StringIO()
    assert export.to_json(cells, text) is None
    data = json.loads(text.getvalue())  # json.loads accepts NaN; check the text itself too
    assert "NaN" not in text.getvalue() and "Infinity" not in text.getvalue()
    assert data["run"] is None
    assert data["cells"][0]["metrics"]["achieved_flops_per_s"] is None
    assert data["cells"][0]["metrics"]["share"] is None
    assert data["cells"][0]["run_id"] is None


def test_bare_cells_and_a_run_of_only_failed_cells(tmp_path):
    summary = load_summary(_results(tmp_path, [_failed_cell("jax-jit"), _failed_cell("jax-eager")]))
    buffer = io.StringIO()
    export.to_csv(summary, buffer)
    frame = pd.read_csv(io.StringIO(buffer.getvalue()))
    assert list(frame["status"]) == ["error", "error"]
    assert export.export_dict(summary)["verdicts"] == []
    empty = export.cells_frame([])
    assert list(empty.columns) == list(export.BASE_COLUMNS) and empty.empty


def test_dash_writes_to_stdout(tmp_path, capsys):
    assert export.to_csv([CELLS[0]], "-") is None
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("run_id,workload,size,framework,mode")
    assert len(out.splitlines()) == 2
