"""Data and tensor parallelism on N = 2 simulated devices end where one device ends, in both
frameworks; a worker that dies is a failed cell with its error, and leaves no process behind."""

import subprocess
import sys

import psutil
import pytest

from twinbench.cli import main
from twinbench.parallel import ParallelSettings, run_parallel_suite
from twinbench.store import DB_NAME, ResultStore

QUICK = {"devices": (2,), "scalings": ("strong",), "timing": False}


@pytest.fixture(scope="module")
def report():
    """torch DDP and DTensor, JAX Mesh dp and tp: four launches, parity only."""
    return run_parallel_suite(ParallelSettings(**QUICK))


def no_children_left() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.is_running()]


@pytest.mark.slow  # the parity run of every implementation; CI's slow step runs it
def test_every_implementation_ran(report):
    assert [(c.framework, c.impl, c.strategy, c.status) for c in report.cells] == [
        ("torch", "ddp", "dp", "ok"), ("torch", "dtensor", "tp", "ok"),
        ("jax", "mesh", "dp", "ok"), ("jax", "mesh", "tp", "ok")]  # fmt: skip


@pytest.mark.slow  # the parity run of every implementation; CI's slow step runs it
def test_two_devices_match_one_device_after_sgd_and_adam(report):
    for cell in report.cells:
        assert {p["optimizer"] for p in cell.parity} == {"sgd", "adam"}, cell.label
        for check in cell.parity:
            assert check["passed"], (cell.label, check)
            assert check["steps"] == 5
            assert check["max_abs"] < 1e-6, (cell.label, check)  # fp32 rounding, nothing more
            assert check["floor"] < 1e-6  # one device against itself, samples reordered


@pytest.mark.slow  # the parity run of every implementation; CI's slow step runs it
def test_the_frameworks_agree_with_each_other_on_two_devices(report):
    assert {(r["strategy"], r["optimizer"]) for r in report.cross} == {
        ("dp", "sgd"), ("dp", "adam"), ("tp", "sgd"), ("tp", "adam")}  # fmt: skip
    assert all(r["passed"] for r in report.cross)


@pytest.mark.slow  # the parity run of every implementation; CI's slow step runs it
def test_tensor_parallel_really_shards_the_weights(report):
    torch_tp, jax_tp = (c for c in report.cells if c.strategy == "tp")
    assert torch_tp.param_specs["layers.0.weight"] == "(Shard(dim=0),)"  # torch (out, in)
    assert torch_tp.param_specs["layers.1.weight"] == "(Shard(dim=1),)"
    assert jax_tp.param_specs["layers.0.kernel"] == "P(None, 'model')"  # canonical (in, out)
    assert jax_tp.param_specs["layers.1.kernel"] == "P('model',)"
    jax_dp = next(c for c in report.cells if (c.framework, c.strategy) == ("jax", "dp"))
    assert set(jax_dp.param_specs.values()) == {"P()"}  # data parallel: replicated


@pytest.mark.parametrize("framework", ["torch", pytest.param("jax", marks=pytest.mark.slow)])
def test_a_planted_bug_fails_parity(framework):
    """Data parallelism without its gradient all-reduce: each device trains on its own shard."""
    settings = ParallelSettings(frameworks=(framework,), strategies=("dp",),
                                fault={"kind": "no_allreduce"}, **QUICK)  # fmt: skip
    report = run_parallel_suite(settings)
    (cell,) = report.cells
    assert cell.status == "ok", cell.error
    assert not report.parity_passed
    for check in cell.parity:
        assert not check["passed"], check
        assert check["max_abs"] > 100 * max(check["floor"], 1e-5), check


@pytest.mark.parametrize("kind", ["kill", pytest.param("raise", marks=pytest.mark.slow)])
def test_a_dead_worker_fails_its_cell_and_leaves_no_process(kind):
    fault = {"rank": 1, "step": 2, "kind": kind}
    settings = ParallelSettings(frameworks=("torch",), strategies=("dp",), fault=fault, **QUICK)
    (cell,) = run_parallel_suite(settings).cells
    assert cell.status == ("crashed" if kind == "kill" else "error")
    if kind == "kill":
        assert "rank 1: worker died from SIGKILL" in cell.error
    else:
        assert "rank 1: RuntimeError: injected fault at step 2" in cell.error
    assert no_children_left() == []


@pytest.mark.slow  # JAX processes started through jax.distributed; CI's slow step runs it
def test_jax_processes_time_store_and_report(tmp_path, monkeypatch):
    """N local processes through jax.distributed, timed, stored and reported from the CLI."""
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "twinbench", "parallel", "--framework", "jax", "--strategy", "dp",
         "--jax-launch", "processes", "--size", "tiny", "--devices", "1,2", "--scaling", "strong",
         "--steps", "2",
         "--optimizer", "sgd", "--warmup", "1", "--repeats", "2", "--block", "1",
         "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with ResultStore(out / DB_NAME) as store:
        run = store.run(store.latest_run_id())
    assert run.settings["kind"] == "parallel"
    data = run.info["parallel"]
    assert [c["processes"] for c in data["cells"]] == [1, 2]
    assert [r["devices"] for r in data["scaling"]] == [1, 2]
    assert data["scaling"][0]["efficiency"] == 1.0
    assert data["scaling"][1]["comm_share"] is not None
    for cell, row in zip(data["cells"], data["scaling"], strict=True):
        step = cell["timing"]["step"]  # the median with its bootstrap CI beside it
        assert step["ci_low_s"] <= step["median_s"] <= step["ci_high_s"]
        assert (row["step_ci_low_s"], row["step_ci_high_s"]) == (
            step["ci_low_s"],
            step["ci_high_s"],
        )
    monkeypatch.setattr(sys, "argv", ["twinbench", "report", "--results", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    markdown = (out / f"report-run{run.id}.md").read_text()
    assert "## The parallel suite" in markdown and "simulated" in markdown
    assert (out / f"report-run{run.id}-plots" / "suite-scaling.svg").is_file()


@pytest.mark.slow
def test_gpt_mlp_block_tensor_parallel_matches_one_device():
    """gpt's c_fc column-wise / c_proj row-wise; under Adam the attention key bias, whose
    gradient is zero in exact arithmetic, drifts by rounding even on one device."""
    settings = ParallelSettings(workload="gpt", strategies=("tp",), **QUICK)
    report = run_parallel_suite(settings)
    assert all(c.status == "ok" for c in report.cells)
    assert report.parity_passed
    adam = [p for c in report.cells for p in c.parity if p["optimizer"] == "adam"]
    assert all(p["floor"] > 1e-4 for p in adam)


def two_nodes(*per_node_args, out):
    """Two `twinbench parallel` processes on this machine, as two nodes would run them."""
    base = [sys.executable, "-m", "twinbench", "parallel", "--size", "tiny", "--strategy", "dp",
            "--devices", "2", "--scaling", "strong", "--steps", "2", "--optimizer", "sgd",
            "--no-timing"]  # fmt: skip
    nodes = [
        subprocess.Popen(
            [*base, *args, "--out", str(out / f"node{i}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i, args in enumerate(per_node_args)
    ]
    return [(node.wait(timeout=600), node.communicate()[1]) for node in nodes]


@pytest.mark.slow
@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_two_nodes_on_localhost_use_the_multi_node_flags(tmp_path, framework):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    if framework == "torch":
        flags = [["--nnodes", "2", "--node-rank", str(r), "--rdzv-endpoint", address]
                 for r in (0, 1)]  # fmt: skip
    else:
        flags = [["--coordinator-address", address, "--num-processes", "2", "--process-id",
                  str(r)] for r in (0, 1)]  # fmt: skip
    ended = two_nodes(*[["--framework", framework, *f] for f in flags], out=tmp_path)
    assert [code for code, _ in ended] == [0, 0], ended
    stored = [n for n in ("node0", "node1") if (tmp_path / n / DB_NAME).exists()]
    assert len(stored) == 2
    cells = []
    for node in stored:
        with ResultStore(tmp_path / node / DB_NAME) as store:
            cells += store.run(store.latest_run_id()).info["parallel"]["cells"]
    ok = [c for c in cells if c["status"] == "ok"]
    assert len(ok) == 1 and all(p["passed"] for p in ok[0]["parity"])


def test_a_cell_past_its_timeout_is_stopped_with_its_processes():
    settings = ParallelSettings(frameworks=("jax",), strategies=("dp",), jax_launch=("processes",),
                                timeout_s=1.0, **QUICK)  # fmt: skip
    (cell,) = run_parallel_suite(settings).cells
    assert cell.status == "timeout" and "no result within 1 s" in cell.error
    assert no_children_left() == []


@pytest.mark.slow
def test_a_dead_jax_process_stops_the_other():
    """jax.distributed processes are started by the launcher itself, not torchrun."""
    settings = ParallelSettings(frameworks=("jax",), strategies=("dp",), jax_launch=("processes",),
                                fault={"rank": 1, "step": 2, "kind": "kill"}, **QUICK)  # fmt: skip
    (cell,) = run_parallel_suite(settings).cells
    assert cell.status == "crashed" and "rank 1: worker died from SIGKILL" in cell.error
    assert no_children_left() == []
