"""The deploy suite at tiny: artefacts round-trip in fresh processes, planted faults are caught.

One run (module fixture) exports ``mlp`` along jax.export → StableHLO and torch.onnx → ONNX
Runtime and serves each in a process of its own; the tests read it. ``gpt``, the AOTInductor path
(a C++ compile) and jax2onnx (a plugin registry that compiles as it loads) take minutes on two
cores: they are in ``test_deploy_slow.py``.
"""

from __future__ import annotations

import copy
import csv
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from twinbench.deploy import DeployResult, DeploySettings, run_deploy, suite
from twinbench.deploy.inputs import ArtefactInfo, read_by_batch, read_inputs
from twinbench.deploy.worker import artefact_file, eval_runner, outputs_file
from twinbench.parity import tolerances_for
from twinbench.registry import builtin
from twinbench.report import export
from twinbench.report.summary import load_summary
from twinbench.store import DB_NAME, ResultStore
from twinbench.suite import no_progress, record, view_for

PATHS = ("jax-stablehlo", "torch-onnx")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[DeployResult, Path]:
    out = tmp_path_factory.mktemp("deploy")
    settings = DeploySettings(
        workloads=("mlp",), size="tiny", paths=PATHS, repeats=1, budget_s=0.02, out=out
    )
    return run_deploy(settings), out


def _cell(result: DeployResult, workload: str, path: str) -> dict[str, Any]:
    return next(c for c in result.cells if (c["workload"], c["path"]) == (workload, path))


def assert_round_trip(cell: dict[str, Any]) -> None:
    """Exported, served, and within tolerance of the eager twin at every batch size."""
    assert cell["status"] == "ok", cell["error"]
    assert cell["fidelity_passed"]
    assert set(cell["fidelity"]) == {str(b) for b in cell["batch_sizes"]}
    for check in cell["fidelity"].values():
        assert check["max_abs"] <= check["atol"] + check["rtol"] * 1e3  # a real comparison ran
    assert cell["size_bytes"] > 0 and cell["export_s"] > 0
    assert cell["pid"] not in cell["serve_pids"]


@pytest.mark.parametrize("path", PATHS)
def test_artefact_round_trips_within_tolerance(run: tuple[DeployResult, Path], path: str) -> None:
    assert_round_trip(_cell(run[0], "mlp", path))


def test_cold_start_is_measured_in_a_process_that_did_not_export(
    run: tuple[DeployResult, Path],
) -> None:
    for cell in run[0].cells:
        assert cell["serve_pids"], cell["path"]
        assert cell["pid"] not in cell["serve_pids"]
        assert os.getpid() not in cell["serve_pids"]
        cold = cell["cold_start"]
        assert cold["median_s"] >= cold["median_first_call_s"] > 0


def test_dynamic_batch_check_calls_two_batch_sizes(run: tuple[DeployResult, Path]) -> None:
    for cell in run[0].cells:
        folder = Path(cell["folder"])
        outputs = read_by_batch(outputs_file(folder, cell["path"]))
        assert len(outputs) >= 2
        for b, out in outputs.items():
            assert out.shape[0] == b
        assert ArtefactInfo.read(artefact_file(folder, cell["path"])).dynamic
        assert cell["dynamic_batch"] == "yes"
        assert set(cell["latency"]) == {str(b) for b in outputs}


def _copy(cell: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The cell as it was before judging, in a copy of its folder."""
    folder = tmp_path / "copy"
    shutil.copytree(cell["folder"], folder)
    copied = copy.deepcopy(cell)
    copied.update(folder=str(folder), serve=[], status="ok")
    outputs_file(folder, cell["path"]).unlink()
    return copied


def _serve_and_judge(cell: dict[str, Any], out: Path) -> None:
    settings = DeploySettings(size="tiny", repeats=1, budget_s=0.01, threads=1, out=out)
    suite._serve(settings, [cell], Path(cell["folder"]), no_progress)
    tol = tolerances_for(builtin("mlp"), builtin("mlp").size("tiny"), "float32")
    suite._judge(cell, Path(cell["folder"]), tol.outputs, cell["batch_sizes"])


def test_weights_changed_after_export_fail_fidelity(
    run: tuple[DeployResult, Path], tmp_path: Path
) -> None:
    from twinbench.backends import initial_weights
    from twinbench.deploy import jax_paths

    cell = _copy(_cell(run[0], "mlp", "jax-stablehlo"), tmp_path)
    workload = builtin("mlp")
    size = workload.size("tiny")
    weights = initial_weights(workload, size, 0, "jax")
    planted = {name: w * 1.01 for name, w in weights.items()}  # the weights change after export
    runner = eval_runner("jax", workload, size, planted)
    folder = Path(cell["folder"])
    file = artefact_file(folder, "jax-stablehlo")
    info = ArtefactInfo.read(file)
    largest = read_inputs(folder)[max(cell["batch_sizes"])]
    infer = jax_paths.inference(workload.twin("jax"), runner.model, info.keys)
    jax_paths.export_native(infer, jax_paths.arguments(largest, info.keys), file, dynamic=True)
    _serve_and_judge(cell, tmp_path)
    assert cell["status"] == "ok"
    assert not cell["fidelity_passed"]
    (row,) = suite.feature_table([cell])
    assert row["fidelity"] == "fail" and row["dynamic_batch"].startswith("no")


CRASHING_RUNTIME = "import ctypes\nctypes.string_at(0)  # a segfaulting runtime\n"


def test_a_segfaulting_runtime_is_recorded_crashed(
    run: tuple[DeployResult, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = tmp_path / "planted"
    (planted / "onnxruntime").mkdir(parents=True)
    (planted / "onnxruntime" / "__init__.py").write_text(CRASHING_RUNTIME)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(planted), os.environ.get("PYTHONPATH", "")])
    )
    cell = _copy(_cell(run[0], "mlp", "torch-onnx"), tmp_path)
    _serve_and_judge(cell, tmp_path)
    assert cell["status"] == "crashed"
    assert "SIGSEGV" in cell["error"]
    (row,) = suite.feature_table([cell])
    assert row["served"] == "crashed"


def test_run_is_stored_and_rendered(run: tuple[DeployResult, Path]) -> None:
    result, out = run
    run_id = record(result, out, text="as shown")
    with ResultStore(out / DB_NAME) as store:
        stored = store.run(run_id)
    assert stored.settings["kind"] == "deploy"
    data = stored.info["deploy"]
    view = view_for("deploy")
    assert view is not None and view.figures is not None
    text = view.markdown(data)
    for cell in result.cells:
        assert f"| {cell['workload']} | {cell['path']} | yes |" in text
    assert {name for name, _ in view.figures(data)} == {"latency", "cold-start", "size"}


def test_csv_export_has_a_row_per_path_and_batch_size_with_the_stored_figures(
    run: tuple[DeployResult, Path], tmp_path: Path
) -> None:
    result, out = run
    run_id = record(result, out)
    export.to_csv(load_summary(out, run_id), tmp_path / "deploy.csv")
    with (tmp_path / "deploy.csv").open(newline="") as file:
        table = {(r["path"], int(r["batch_size"])): r for r in csv.DictReader(file)}
    stored = load_summary(out, run_id).run.info["deploy"]
    expected = {(c["path"], b): c for c in stored["cells"] for b in c["batch_sizes"]}
    assert set(table) == set(expected) and len(expected) == len(PATHS) * 2
    for (path, b), cell in expected.items():
        row, key = table[(path, b)], str(b)
        assert row["run_id"] == str(run_id) and row["kind"] == "deploy"
        assert (row["workload"], row["exported"], row["error"]) == ("mlp", "True", "")
        assert int(row["artefact_bytes"]) == cell["size_bytes"]
        assert float(row["export_s"]) == pytest.approx(cell["export_s"])
        assert float(row["cold_start_median_s"]) == pytest.approx(cell["cold_start"]["median_s"])
        latency = cell["latency"][key]
        for q in (50, 95, 99):
            assert float(row[f"latency_p{q}_s"]) == pytest.approx(latency[f"p{q}_s"])
        assert float(row["latency_p50_ci_low_s"]) == pytest.approx(latency["ci_low_s"])
        assert float(row["latency_p50_ci_high_s"]) == pytest.approx(latency["ci_high_s"])
        assert float(row["throughput_rows_per_s"]) == pytest.approx(b / latency["median_s"])
        assert float(row["fidelity_max_abs"]) == pytest.approx(cell["fidelity"][key]["max_abs"])
        assert row["fidelity_passed"] == "True" and row["dynamic_batch"] == "yes"
