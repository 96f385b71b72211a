"""The paths that compile for minutes at tiny: AOTInductor (C++) for ``mlp`` and ``gpt``,
jax2onnx for both, and ``gpt`` along every path — with verdicts and the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_deploy_suite import assert_round_trip

from twinbench.deploy import PATHS, DeployResult, DeploySettings, run_deploy
from twinbench.deploy.inputs import read_by_batch
from twinbench.deploy.worker import outputs_file
from twinbench.store import DB_NAME, ResultStore

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory: pytest.TempPathFactory) -> DeployResult:
    out = tmp_path_factory.mktemp("deploy-gpt")
    settings = DeploySettings(workloads=("gpt",), size="tiny", repeats=1, budget_s=0.02, out=out)
    return run_deploy(settings)


@pytest.mark.parametrize("path", tuple(PATHS))
def test_gpt_round_trips_along_every_path(gpt_run: DeployResult, path: str) -> None:
    (cell,) = [c for c in gpt_run.cells if c["path"] == path]
    assert_round_trip(cell)
    assert cell["dynamic_batch"] == "yes"


def test_gpt_artefacts_of_both_frameworks_agree(gpt_run: DeployResult) -> None:
    assert {c["group"] for c in gpt_run.comparisons} == {"native", "onnx"}
    assert all(c["passed"] for c in gpt_run.comparisons)
    folder = Path(gpt_run.cells[0]["folder"])
    for torch_path, jax_path in (("torch-aoti", "jax-stablehlo"), ("torch-onnx", "jax-onnx")):
        torch_out = read_by_batch(outputs_file(folder, torch_path))
        jax_out = read_by_batch(outputs_file(folder, jax_path))
        assert torch_out.keys() == jax_out.keys()
        for b in torch_out:
            np.testing.assert_allclose(torch_out[b], jax_out[b], atol=1e-4, rtol=1e-3)


def test_gpt_verdicts_cover_cold_start_and_both_batch_sizes(gpt_run: DeployResult) -> None:
    for group in ("native", "onnx"):
        measures = {v["what"] for v in gpt_run.verdicts if v["group"] == group}
        assert measures == {"cold start", "latency at batch 1", "latency at batch 8"}
    for v in gpt_run.verdicts:
        assert v["ci_low"] <= v["ratio_torch_over_jax"] <= v["ci_high"]


def test_cli_runs_mlp_along_aoti_and_jax2onnx_and_stores_it(tmp_path: Path) -> None:
    from helpers import twinbench

    out, cwd = tmp_path / "out", tmp_path / "cwd"
    cwd.mkdir()
    done = twinbench(
        "deploy", "--workload", "mlp", "--size", "tiny", "--path", "torch-aoti",
        "--path", "jax-onnx", "--batch-sizes", "1,4", "--repeats", "1", "--budget", "0.02",
        "--out", out, cwd=cwd,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "| mlp | torch-aoti | yes | yes | pass |" in done.stdout
    assert "| mlp | jax-onnx | yes | yes | pass |" in done.stdout
    with ResultStore(out / DB_NAME) as store:
        (run,) = store.runs()
        data = store.run(run.id).info["deploy"]
    assert {c["path"] for c in data["cells"]} == {"torch-aoti", "jax-onnx"}
    for cell in data["cells"]:
        assert_round_trip(cell)
        assert cell["dynamic_checked_at"] == [1, 4]
    assert not list(cwd.iterdir())  # artefacts go under --out, never the working directory
