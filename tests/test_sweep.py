"""`twinbench sweep`: one measured point per batch size, parity checked once at the base size.

The command runs in this process (``cli``); its cells run in their own subprocesses.
"""

import pytest

from helpers import assert_one_line_error
from twinbench.harness.runner import Point
from twinbench.registry import builtin
from twinbench.store import DB_NAME, ResultStore


def test_point_overrides_batch_size_and_labels_itself():
    mlp = builtin("mlp")
    base = mlp.size("tiny")
    point = Point(mlp, None, "tiny", batch_size=3 * base.batch_size)
    assert point.size.batch_size == 3 * base.batch_size
    assert point.size.config == base.config
    assert point.label == f"tiny bs={3 * base.batch_size}"
    assert Point(mlp, None, "tiny").label == "tiny"
    batch = next(mlp.batches(point.size, 0))  # the data generator follows the override
    assert batch["x"].shape[0] == 3 * base.batch_size


def test_sweep_measures_each_batch_size(cli, tmp_path, unprobed):
    out = tmp_path / "results"
    # one process per cell: pooling a cell's processes is tests/harness/test_repeats.py's subject;
    # one mode: every mode of a point is timed is tests/test_cli_run.py's tiny_run's subject
    done = cli("sweep", "mlp", "--size", "tiny", "--batch-sizes", "2,16", "--mode", "torch-eager",
               "--budget", "0.3", "--repeats", "1", "--out", out)
    assert done.returncode == 0, done.stderr
    with ResultStore(out / DB_NAME) as store:
        run_id = store.latest_run_id()
        cells = store.cells(run_id)
        parity = store.parity(run_id)
        info = store.run(run_id).info
    assert info["thread_environment"]["OMP_NUM_THREADS"] == info["thread_environment"][
        "TWINBENCH_THREADS"]
    assert "donate_argnums=0" in info["compile_options"]["jax-jit"]
    assert set(info["twin_sources"]["mlp"]) == {"torch", "jax"}
    assert "nnx.Module" in info["twin_sources"]["mlp"]["jax"]
    assert {(c.size, c.mode) for c in cells} == {
        (f"tiny bs={n}", "torch-eager") for n in (2, 16)}
    for cell in cells:
        assert cell.status == "ok", cell.error
        assert cell.metrics["batch_size"] == int(cell.size.split("=")[1])
        expected = cell.metrics["batch_size"] / cell.metrics["median_s"]
        assert cell.metrics["samples_per_s"] == pytest.approx(expected)
    assert [(p["workload"], p["size"]) for p in parity] == [("mlp", "tiny")]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--batch-sizes", "0,2"], "0"),
        (["--batch-sizes", "two"], "two"),
        (["--seq-lens", "8"], "seq_len"),
        ([], "--batch-sizes"),
    ],
)
def test_bad_sweep_values_give_one_line_and_exit_2(cli, tmp_path, args, named):
    assert_one_line_error(cli("sweep", "mlp", *args, "--out", tmp_path / "out"), named)
    assert not (tmp_path / "out" / DB_NAME).exists()
