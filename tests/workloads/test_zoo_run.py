"""A zoo run end to end: BatchNorm's train and eval modes, NHWC images reaching torch as NCHW, and
the analytic FLOPs, through the worker processes and the store. (A recurrent net's withheld XLA
count is checked in test_flops.py.)"""

import subprocess
import sys

import pytest

from twinbench.store import DB_NAME, ResultStore


@pytest.mark.slow  # a whole run (parity, probes, four cells): about a minute
def test_tiny_resnet_run_measures_both_phases_and_records_analytic_flops(tmp_path):
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "twinbench", "run", "--suite", "tiny", "--workload", "resnet",
         "--mode", "jax-jit", "--mode", "torch-eager", "--phase", "train",
         "--phase", "infer", "--budget", "0.3", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with ResultStore(out / DB_NAME) as store:
        run_id = store.latest_run_id()
        cells = store.cells(run_id)
        parity = store.parity(run_id)
    assert {(c.mode, c.phase) for c in cells} == {
        (m, p) for m in ("jax-jit", "torch-eager") for p in ("train", "infer")
    }
    for cell in cells:
        assert cell.status == "ok", (cell.workload, cell.mode, cell.phase, cell.error)
        analytic = cell.metrics["analytic_flops_per_step"]
        assert analytic > 0
        counted = cell.metrics["flops_per_step"]
        if cell.phase == "train":
            assert abs(counted / analytic - 1) < 0.1, cell.mode
    train = {c.metrics["analytic_flops_per_step"] for c in cells if c.phase == "train"}
    infer = {c.metrics["analytic_flops_per_step"] for c in cells if c.phase == "infer"}
    assert len(train) == len(infer) == 1 and infer.pop() * 3 == train.pop()
    assert all(p["passed"] for p in parity), parity
