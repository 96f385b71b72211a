"""Cells that raise, abort (SIGABRT) or hang are recorded; the run goes on."""

from pathlib import Path
from typing import Any

import pytest

from helpers import write_planted
from twinbench.harness import runner
from twinbench.harness.environment import COMPILE_CACHE_VARIABLE
from twinbench.harness.process import CellFailed
from twinbench.harness.runner import RunSettings
from twinbench.store import DB_NAME, ResultStore

TORCH_TWIN = '''
import os
import time

import torch.nn.functional as F
from torch import nn


def build(config):
    fault = "{fault}"
    if fault == "raise":
        raise RuntimeError("planted failure in the torch twin")
    if fault == "abort":
        os.abort()
    if "{cache_variable}" not in os.environ:  # the parity check: fail it fast, the
        raise RuntimeError("planted failure: hangs in a timed cell")  # hang costs a timeout
    time.sleep(3600)  # a timed cell (its worker has a compile cache)


def forward(model, batch):
    return model(batch["x"])


def loss_fn(model, batch):
    return F.mse_loss(model(batch["x"]), batch["y"])
'''

def write_faulty(root: Path, fault: str) -> Path:
    twin = TORCH_TWIN.format(fault=fault, cache_variable=COMPILE_CACHE_VARIABLE)
    return write_planted(root / fault, f"faulty_{fault}", twin,
                         f"a linear model whose PyTorch twin {fault}s when built")


def test_raise_abort_and_hang_are_recorded_and_the_run_continues(tmp_path, unprobed):
    files = tuple(str(write_faulty(tmp_path, fault)) for fault in ("raise", "abort", "hang"))
    settings = RunSettings(workload_files=files, sizes=("tiny",), modes=("torch-eager", "jax-jit"),
                           budget=0.3, repeats=1, out=tmp_path / "out",
                           timeout=15)  # a hang costs this; healthy cells need it on a busy machine
    run_id = runner.run(settings)

    with ResultStore(tmp_path / "out" / DB_NAME) as store:
        assert store.run(run_id).status == "finished"
        cells = {(c.workload, c.mode): c for c in store.cells(run_id)}
        parity = {p["workload"]: p for p in store.parity(run_id)}

    expected = {"faulty_raise": "error", "faulty_abort": "crashed", "faulty_hang": "timeout"}
    for workload, status in expected.items():
        torch_cell = cells[(workload, "torch-eager")]
        assert torch_cell.status == status, torch_cell.error
        assert torch_cell.samples == []
        jax_cell = cells[(workload, "jax-jit")]  # the other framework's cell still ran
        assert jax_cell.status == "ok" and jax_cell.samples, jax_cell.error
        assert parity[workload]["passed"] is False
    assert "planted failure" in cells[("faulty_raise", "torch-eager")].error
    assert "SIGABRT" in cells[("faulty_abort", "torch-eager")].error


def test_a_cell_whose_build_raises_and_a_parity_worker_that_fails_are_recorded(
    tmp_path: Path, unprobed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the short version of the test above: one cell, a real worker whose build raises, and the
    # parity worker's failure planted in this process (each real one imports both frameworks)
    def failed_parity(request: dict[str, Any], **_limits: Any) -> Any:
        assert request["kind"] == "parity"
        raise CellFailed("crashed", "worker died from SIGSEGV")

    monkeypatch.setattr(runner, "one_shot", failed_parity)
    file = str(write_faulty(tmp_path, "raise"))
    settings = RunSettings(workload_files=(file,), sizes=("tiny",), modes=("torch-eager",),
                           budget=0.3, repeats=1, out=tmp_path / "out")
    run_id = runner.run(settings)

    with ResultStore(tmp_path / "out" / DB_NAME) as store:
        assert store.run(run_id).status == "finished"
        [cell] = store.cells(run_id)
        [parity] = store.parity(run_id)
    assert (cell.workload, cell.status, cell.samples) == ("faulty_raise", "error", [])
    assert cell.error.startswith("process 1 of 1: ")
    assert "planted failure in the torch twin" in cell.error
    assert parity["passed"] is False
    assert parity["summary"] == {"error": "parity check crashed: worker died from SIGSEGV"}
