"""`twinbench report` and `twinbench compare` end to end on synthetic stores.

The commands run in this process through the console script's ``main`` (exit codes and stderr
as a shell sees them); one test runs the real entry point in a fresh interpreter.
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from helpers import ENVIRONMENT, add_run, assert_one_line_error, cell, noisy, twinbench
from twinbench.parity import Check, ParityResult
from twinbench.store import DB_NAME, CellRecord, ResultStore

CURVES = {"torch": [1.0, 0.75, 0.5], "jax": [1.0, 0.75, 0.5000001]}
FAILED = "RuntimeError: the twin raised"


def _cell(mode: str, samples: Any, status: str = "ok") -> CellRecord:
    if status != "ok":
        return cell(mode, status=status, error=FAILED)
    one = cell(mode, samples)
    one.metrics.update(time_to_first_step_s=0.25, compile_s=None, converged=True, noisy=False,
                       iqr_s=0.0)
    return one


def _add_run(results: Path, cells: list[CellRecord],
             environment: dict[str, Any] | None = None) -> int:
    checks = [Check("curve[sgd]", True, 1e-7, 1e-7, 1e-6, 1e-5, curves=CURVES)]
    summary = ParityResult("mlp", "tiny", "float32", 3, checks=checks).to_dict()
    return add_run(results, cells, environment=environment,
                   parity=[{"workload": "mlp", "size": "tiny", "passed": True,
                            "summary": summary}])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run 1, then run 2 on another machine with torch-eager 1.3× slower and jax-jit the same.

    Read-only: a test whose command writes beside the database takes ``two_runs_copy``.
    """
    results = tmp_path_factory.mktemp("results")
    _add_run(results, [_cell("torch-eager", noisy(2e-3, 30, 1)),
                       _cell("jax-jit", noisy(1e-3, 30, 2))])
    _add_run(results, [_cell("torch-eager", 1.3 * noisy(2e-3, 30, 3)),
                       _cell("jax-jit", noisy(1e-3, 30, 4))],
             environment={**ENVIRONMENT, "cpu_model": "Other CPU"})
    return results


@pytest.fixture
def two_runs_copy(two_runs: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(two_runs, tmp_path / "results"))


def test_markdown_is_the_default_and_lands_beside_the_database(two_runs_copy):
    # the console entry point in a fresh interpreter, once; the rest run in this process
    done = twinbench("report", "1", "--results", two_runs_copy)
    assert done.returncode == 0, done.stderr
    assert "twinbench run 1" in done.stdout and "torch-eager" in done.stdout  # terminal table
    report = (two_runs_copy / "report-run1.md").read_text()
    assert report.startswith("# twinbench run 1")
    assert "| mlp | tiny | train | best vs best |" in report


def test_csv_to_stdout_prints_only_the_csv(cli, two_runs):
    done = cli("report", "latest", "--results", two_runs, "--format", "csv", "--out", "-")
    assert done.returncode == 0, done.stderr
    frame = pd.read_csv(io.StringIO(done.stdout))
    assert list(frame["run_id"]) == [2, 2]
    assert set(frame["mode"]) == {"torch-eager", "jax-jit"}
    with ResultStore(two_runs / DB_NAME) as store:
        expected = {c.mode: c.metrics["median_s"] for c in store.cells(2)}
    for row in frame.to_dict("records"):
        assert row["median_s"] == pytest.approx(expected[row["mode"]])


def test_json_to_a_file_and_the_table_too(cli, two_runs, tmp_path):
    target = tmp_path / "run1.json"
    done = cli("report", "1", "--results", two_runs, "-f", "json", "--out", target)
    assert done.returncode == 0, done.stderr
    assert "twinbench run 1" in done.stdout and str(target) in done.stdout
    data = json.loads(target.read_text())
    with ResultStore(two_runs / DB_NAME) as store:
        stored = {c.mode: c.samples for c in store.cells(1)}
    assert {c["mode"]: c["samples"] for c in data["cells"]} == stored
    assert data["run"]["environment"]["cpu_model"] == "Test CPU"


def test_terminal_writes_no_file_and_refuses_out(cli, tmp_path):
    results = tmp_path / "results"
    _add_run(results, [_cell("jax-jit", [1e-3, 2e-3, 3e-3])])
    done = cli("report", "--results", results, "--format", "terminal")
    assert done.returncode == 0, done.stderr
    assert "twinbench run 1" in done.stdout
    assert sorted(p.name for p in results.iterdir() if p.name.startswith("report")) == []
    done = cli("report", "--results", results, "-f", "terminal", "--out", "x.txt")
    assert_one_line_error(done, "terminal")


@pytest.mark.skipif(importlib.util.find_spec("twinbench.report.html") is None,
                    reason="the HTML report is not part of this checkout yet")
def test_html_report(cli, two_runs, tmp_path):
    target = tmp_path / "run2.html"
    done = cli("report", "2", "--results", two_runs, "-f", "html", "--out", target)
    assert done.returncode == 0, done.stderr
    assert "<html" in target.read_text().lower()


def test_tensorboard_from_report(cli, two_runs, tmp_path):
    logs = tmp_path / "tb"
    done = cli("report", "1", "--results", two_runs, "-f", "terminal", "--tensorboard", logs)
    assert done.returncode == 0, done.stderr
    for framework in ("torch", "jax"):
        assert len(list((logs / "mlp-tiny" / framework).glob("events.out.tfevents.*"))) == 1


def test_the_report_after_a_run_writes_tensorboard_logs(two_runs_copy, tmp_path):
    from twinbench.cli.reports import write_run_reports

    # what `run --tensorboard` calls
    write_run_reports(two_runs_copy, 1, tensorboard=tmp_path / "tb")
    assert (two_runs_copy / "report-run1.md").is_file()
    assert list((tmp_path / "tb" / "mlp-tiny" / "jax").glob("events.out.tfevents.*"))


def test_a_run_with_only_failed_cells_still_reports(cli, tmp_path):
    results = tmp_path / "results"
    _add_run(results, [_cell("torch-eager", [], status="error"),
                       _cell("jax-jit", [], status="crashed")])
    done = cli("report", "--results", results)
    assert done.returncode == 0, done.stderr
    report = (results / "report-run1.md").read_text()
    assert f"ERROR: {FAILED}" in report and "CRASHED" in report


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("report", "7"), "no run 7"),
        (("report", "abc"), "run id 'abc' is invalid"),
        (("report", "-f", "pdf"), "unknown format 'pdf'"),
        (("compare", "1", "1"), "cannot compare run 1 with itself"),
        (("compare", "1", "9"), "no run 9"),
        (("compare", "1", "2", "-f", "html"), "unknown format 'html'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, two_runs, args, message):
    done = cli(*args, "--results", two_runs)
    assert_one_line_error(done, message)
    if message.startswith("no run"):
        assert "runs: 1..2" in done.stderr  # the valid ids are listed


def test_usage_errors_exit_2_without_a_traceback(cli, two_runs):
    for args in (("compare", "1"), ("compare", "1", "2", "--threshold", "-5"),
                 ("report", "--bogus")):
        done = cli(*args, "--results", two_runs)
        assert done.returncode == 2, args
        assert "rror:" in done.stderr and "Traceback" not in done.stderr  # usage or one line


def test_markdown_to_stdout_prints_only_the_markdown(cli, two_runs):
    done = cli("report", "1", "--results", two_runs, "--out", "-")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# twinbench run 1\n")
    assert not list(two_runs.glob("report-run1*"))  # nothing written beside the database


def test_missing_directory_and_empty_database(cli, tmp_path):
    missing = tmp_path / "missing"
    assert_one_line_error(cli("report", "--results", missing), "no results directory")
    assert not missing.exists()  # asking for a report creates nothing
    ResultStore(tmp_path / "empty" / DB_NAME).close()
    for args in (("report",), ("compare", "1", "2")):
        done = cli(*args, "--results", tmp_path / "empty")
        assert done.returncode == 2, args
        assert "no runs" in done.stderr or "no run 1" in done.stderr


def test_compare_names_the_regression_and_warns_about_the_machine(cli, two_runs):
    done = cli("compare", "1", "2", "--results", two_runs)
    assert done.returncode == 0, done.stderr
    first_line = done.stdout.splitlines()[0]
    assert "warning" in first_line and "different machines" in first_line
    assert "regressed" in done.stdout and "1 regressed, 1 unchanged" in done.stdout


def test_compare_json_and_markdown(cli, two_runs):
    done = cli("compare", "1", "latest", "--results", two_runs, "-f", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    rows = {row["mode"]: row for row in data["rows"]}
    assert rows["torch-eager"]["change"] == "regressed"
    assert rows["torch-eager"]["ratio"] == pytest.approx(1.3, abs=0.02)
    assert rows["jax-jit"]["change"] == "unchanged"
    assert "different machines" in data["warnings"][0]
    done = cli("compare", "1", "2", "--results", two_runs, "-f", "md")
    assert done.stdout.startswith("# twinbench: run 2 compared with run 1")
    assert "> **Warning:** the runs come from different machines" in done.stdout


@pytest.mark.parametrize(("limit", "code"), [("20", 1), ("40", 0)])
def test_fail_on_regression_gates_on_the_size_of_the_slowdown(cli, two_runs, limit, code):
    done = cli("compare", "1", "2", "--results", two_runs, "--fail-on-regression", limit)
    assert done.returncode == code, done.stderr
    assert ("mlp/tiny torch-eager train" in done.stderr) == (code == 1)


def test_improvements_never_fail_the_gate(cli, two_runs):
    done = cli("compare", "2", "1", "--results", two_runs, "--fail-on-regression", "0")
    assert done.returncode == 0, done.stderr
    assert "1 improved" in done.stdout
