"""`twinbench run` and `twinbench report` end to end: through the console script's ``main`` in
this process (the cells still run in their own subprocesses), and Ctrl-C through the real entry
point in a fresh interpreter."""

import json
import os
import shutil
import signal
import sqlite3
import time

import pandas as pd
import pytest

from helpers import assert_one_line_error, start
from twinbench.registry import builtin
from twinbench.report.summary import ONE_PROCESS_NOTE, load_summary
from twinbench.store import DB_NAME, ResultStore


def test_tiny_suite_two_modes_writes_database_and_markdown(tiny_run):
    out, done = tiny_run  # two examples (conftest.py); the zoo's run: tests/workloads
    assert done.returncode == 0, done.stderr

    with ResultStore(out / DB_NAME) as store:
        run_id = store.latest_run_id()
        assert run_id is not None
        run = store.run(run_id)
        cells = store.cells(run_id)
        parity = store.parity(run_id)
    assert run.status == "finished"
    assert run.settings["modes"] == ["jax-jit", "torch-eager"]
    assert run.environment["versions"]["torch"] and run.environment["versions"]["jax"]
    assert set(run.info["peak_flops"]) == {"torch", "jax"}
    assert {(c.workload, c.mode) for c in cells} == {
        (w, m) for w in ("linreg", "xor") for m in ("jax-jit", "torch-eager")}
    for cell in cells:
        assert cell.status == "ok", cell.error
        assert cell.samples and cell.metrics["n_samples"] == len(cell.samples)
        assert cell.metrics["ci_low_s"] <= cell.metrics["median_s"] <= cell.metrics["ci_high_s"]
        assert cell.metrics["params"] > 0 and cell.metrics["twin_loc"] > 0
        assert cell.metrics["flops_per_step"] > 0
    assert all(p["passed"] for p in parity)
    for record in parity:  # the run checks the loss curve of the optimizer it times only
        curves = [c["name"] for c in record["summary"]["checks"] if c["name"].startswith("curve")]
        assert curves == [f"curve[{builtin(record['workload']).train_optimizer}]"]

    report = (out / f"report-run{run_id}.md").read_text()
    for workload in ("linreg", "xor"):
        assert f"| {workload} | tiny | train | best vs best |" in report
    assert "verdicts" in done.stdout and "best vs best" in done.stdout


def test_one_process_per_cell_works_and_the_report_says_what_its_ci_covers(tiny_run):
    out, _ = tiny_run  # --repeats 1: each cell measured in one worker process
    summary = load_summary(out)
    assert len(summary.cells) == 4
    for cell in summary.cells:
        assert cell.status == "ok" and cell.metrics["processes"] == 1, cell.error
    assert ONE_PROCESS_NOTE in summary.notes


@pytest.mark.parametrize("fmt", ["md", "html", "json", "csv"])
def test_every_format_of_a_real_run(cli, tiny_run, tmp_path, fmt):
    # here, not in test_cli_report.py: with --dist loadfile, a second file reading tiny_run
    # would keep the other xdist worker waiting on the fixture's lock while the run is made
    results, _ = tiny_run  # read-only: the document goes to tmp_path
    target = tmp_path / f"run.{fmt}"
    done = cli("report", "latest", "--results", results, "-f", fmt, "--out", target)
    assert done.returncode == 0, done.stderr
    text = target.read_text()
    for workload in ("linreg", "xor"):
        assert workload in text
    if fmt == "json":
        assert {c["status"] for c in json.loads(text)["cells"]} == {"ok"}
    if fmt == "csv":
        assert len(pd.read_csv(target)) == 4  # two workloads, two modes


@pytest.mark.slow  # a real run, interrupted (the SIGTERM test runs by default); CI's slow step
def test_ctrl_c_keeps_finished_cells_and_a_readable_database(tmp_path):
    out = tmp_path / "results"
    proc = start("run", "--suite", "tiny", "--workload", "linreg", "--workload", "xor",
                 "--mode", "jax-jit", "--mode", "torch-eager", "--budget", "1", "--out", out)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait for the first committed cell
        if (out / DB_NAME).exists():
            with sqlite3.connect(out / DB_NAME) as db:
                try:
                    if db.execute("SELECT COUNT(*) FROM cells").fetchone()[0] >= 1:
                        break
                except sqlite3.OperationalError:
                    pass
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)

    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    with ResultStore(out / DB_NAME) as store:
        run_id = store.latest_run_id()
        run_record = store.run(run_id)
        cells = store.cells(run_id)
    assert run_record.status == "interrupted"
    # a cell's processes lie a pass over the run apart, so the first cell recorded means every
    # other cell has had all but its last process: each is kept with those that finished, and
    # the run holds fewer processes than four cells ask for
    repeats = run_record.settings["repeats"]
    processes = [c.metrics["processes"] for c in cells]
    assert cells and all(1 <= n <= repeats for n in processes), processes
    assert sum(processes) < 4 * repeats
    assert "status: interrupted" in (out / f"report-run{run_id}.md").read_text()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--mode", "jax-fast"], "jax-fast"),
        (["--phase", "eval"], "eval"),
        (["--dtype", "float16"], "float16"),
        (["--device", "tpu"], "tpu"),
        (["--threads", "0"], "--threads 0"),
        (["--threads", str((os.cpu_count() or 1) + 64)], "--threads"),
        (["--budget", "0"], "--budget 0"),
        (["--suite", "huge"], "huge"),
        (["--workload", "resnet9000"], "resnet9000"),
        (["--size", "gigantic"], "gigantic"),
        (["--torch-compile-mode", "turbo"], "turbo"),
    ],
)
def test_bad_run_options_give_one_line_and_exit_2(cli, tmp_path, args, named):
    done = cli("run", *args, "--out", tmp_path / "out")
    assert_one_line_error(done, named)
    assert "valid" in done.stderr or "give seconds" in done.stderr
    assert not (tmp_path / "out" / DB_NAME).exists()  # refused before any work


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None,
                    reason="this machine has nvidia-smi; the refusal is for machines without a GPU")
def test_cuda_without_a_gpu_is_refused(cli, tmp_path):
    assert_one_line_error(cli("run", "--device", "cuda", "--out", tmp_path / "out"),
                          "no NVIDIA GPU")


def test_unwritable_out_is_refused(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    done = cli("run", "--suite", "tiny", "--out", blocker / "results")
    assert_one_line_error(done, "cannot write results")


def test_corrupted_database_is_reported_and_left_untouched(cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    garbage = b"this is not a database" * 100
    (out / DB_NAME).write_bytes(garbage)
    assert_one_line_error(cli("run", "--suite", "tiny", "--out", out), DB_NAME)
    assert (out / DB_NAME).read_bytes() == garbage


def test_newer_schema_is_refused(cli, tmp_path):
    out = tmp_path / "out"
    ResultStore(out / DB_NAME).close()
    with sqlite3.connect(out / DB_NAME) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    assert_one_line_error(cli("run", "--suite", "tiny", "--out", out), "newer")


def test_report_of_an_empty_store_or_bad_run_id(cli, tmp_path):
    assert_one_line_error(cli("report", "--results", tmp_path / "none"), "no results directory")
    assert_one_line_error(cli("report", "abc", "--results", tmp_path), "abc")


@pytest.mark.parametrize(
    ("args", "budget"),
    [
        (["--suite", "tiny"], 2.0),  # sub-millisecond steps: a shorter default
        (["--suite", "tiny", "--budget", "3.5"], 3.5),  # an explicit budget wins
        (["--suite", "examples"], 5.0),
        ([], 5.0),  # the default suite
    ],
)
def test_the_budget_follows_the_suite_unless_given(cli, monkeypatch, tmp_path, args, budget):
    from twinbench.errors import TwinbenchError
    from twinbench.harness import runner

    seen = []

    def measure_nothing(settings, progress):
        seen.append(settings)
        raise TwinbenchError("stopped before measuring")

    monkeypatch.setattr(runner, "run", measure_nothing)
    assert_one_line_error(cli("run", *args, "--out", tmp_path / "out"), "stopped before")
    assert [s.budget for s in seen] == [budget]
