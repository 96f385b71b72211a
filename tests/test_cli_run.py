"""`twinbench run` and `twinbench report` end to end, through the real console entry point."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from twinbench.store import DB_NAME, ResultStore


def twinbench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "twinbench", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_tiny_suite_two_modes_writes_database_and_markdown(tmp_path):
    out = tmp_path / "results"  # the seeds' examples; the zoo's run: tests/workloads
    done = twinbench("run", "--suite", "tiny", "--workload", "linreg", "--workload", "mlp",
                     "--workload", "xor", "--mode", "jax-jit", "--mode", "torch-eager",
                     "--budget", "0.5", "--out", str(out))
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
        (w, m) for w in ("linreg", "mlp", "xor") for m in ("jax-jit", "torch-eager")}
    for cell in cells:
        assert cell.status == "ok", cell.error
        assert cell.samples and cell.metrics["n_samples"] == len(cell.samples)
        assert cell.metrics["ci_low_s"] <= cell.metrics["median_s"] <= cell.metrics["ci_high_s"]
        assert cell.metrics["params"] > 0 and cell.metrics["twin_loc"] > 0
        assert cell.metrics["flops_per_step"] > 0
    assert all(p["passed"] for p in parity)

    report = (out / f"report-run{run_id}.md").read_text()
    for workload in ("linreg", "mlp", "xor"):
        assert f"| {workload} | tiny | train | best vs best |" in report
    assert "verdicts" in done.stdout and "best vs best" in done.stdout


def test_ctrl_c_keeps_finished_cells_and_a_readable_database(tmp_path):
    out = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "twinbench", "run", "--suite", "tiny", "--workload", "linreg",
         "--workload", "xor", "--mode", "jax-jit", "--mode", "torch-eager", "--budget", "1",
         "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
        assert store.run(run_id).status == "interrupted"
        cells = store.cells(run_id)
    assert 1 <= len(cells) < 4
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
def test_bad_run_options_give_one_line_and_exit_2(tmp_path, args, named):
    done = twinbench("run", *args, "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert named in done.stderr and "valid" in done.stderr or "give seconds" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / DB_NAME).exists()  # refused before any work


def test_cuda_without_a_gpu_is_refused(tmp_path):
    if subprocess.run(["sh", "-c", "command -v nvidia-smi"], capture_output=True).returncode == 0:
        pytest.skip("this machine has nvidia-smi; the refusal is for machines without a GPU")
    done = twinbench("run", "--device", "cuda", "--out", str(tmp_path / "out"))
    assert done.returncode == 2 and "no NVIDIA GPU" in done.stderr


def test_unwritable_out_is_refused(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    done = twinbench("run", "--suite", "tiny", "--out", str(blocker / "results"))
    assert done.returncode == 2 and "cannot write results" in done.stderr
    assert "Traceback" not in done.stderr


def test_corrupted_database_is_reported_and_left_untouched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    garbage = b"this is not a database" * 100
    (out / DB_NAME).write_bytes(garbage)
    done = twinbench("run", "--suite", "tiny", "--out", str(out))
    assert done.returncode == 2 and DB_NAME in done.stderr
    assert (out / DB_NAME).read_bytes() == garbage


def test_newer_schema_is_refused(tmp_path):
    out = tmp_path / "out"
    ResultStore(out / DB_NAME).close()
    with sqlite3.connect(out / DB_NAME) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    done = twinbench("run", "--suite", "tiny", "--out", str(out))
    assert done.returncode == 2 and "newer" in done.stderr


def test_report_of_an_empty_store_or_bad_run_id(tmp_path):
    done = twinbench("report", "--results", str(tmp_path / "none"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    done = twinbench("report", "abc", "--results", str(tmp_path))
    assert done.returncode == 2 and "abc" in done.stderr
