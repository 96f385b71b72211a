"""Bad input to `twinbench parallel` is refused before any process starts, in one line, exit 2;
an unreachable coordinator is an error after a bounded wait, not a hang.

Three checks: `validate` (the settings alone), `check_workload` (the workload's shapes) and
`check_environment` (this machine's cores and GPUs)."""

import socket
import sys

import pytest

from twinbench.cli import main
from twinbench.errors import TwinbenchError
from twinbench.parallel import MultiNode, ParallelSettings, cells, tp_plan
from twinbench.parallel.scaling import summarised

MLP_TINY = {"layers.0.kernel": (1, 10), "layers.0.bias": (10,),
            "layers.1.kernel": (10, 1), "layers.1.bias": (1,)}  # fmt: skip
MLP_SMALL = {f"layers.{i}.kernel": shape
             for i, shape in enumerate([(784, 512), (512, 512), (512, 10)])}  # fmt: skip


def run_cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["twinbench", "parallel", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr().err


def closed_port() -> int:
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        (ParallelSettings(devices=(16,)), "16 devices requested; valid on cpu: 1..8 simulated"),
        (ParallelSettings(devices=(0,)), "--devices 0 is invalid; valid: an integer ≥ 1"),
        (ParallelSettings(devices=()), "no device count given; valid: counts ≥ 1"),
        (ParallelSettings(strategies=("pp",)), "unknown strategy 'pp'; valid: dp, tp"),
        (ParallelSettings(strategies=()), "no strategy given; valid: dp, tp"),
        (ParallelSettings(frameworks=("tf",)), "unknown framework 'tf'; valid: torch, jax"),
        (ParallelSettings(scalings=("big",)), "unknown scaling 'big'; valid: weak, strong"),
        (ParallelSettings(jax_launch=("pmap",)), "unknown JAX launch 'pmap'; valid: mesh, proc"),
        (ParallelSettings(parity_optimizers=("lion",)), "unknown parity optimizer 'lion'"),
        (ParallelSettings(device="tpu"), "unknown device 'tpu'; valid: cpu, cuda"),
        (ParallelSettings(parity_steps=-1), "--steps -1 is invalid; valid: an integer ≥ 0"),
        (ParallelSettings(warmup=-1), "--warmup -1 is invalid; valid: an integer ≥ 0"),
        (ParallelSettings(repeats=0), "--repeats 0 is invalid; valid: an integer > 0"),
        (ParallelSettings(block=0), "--block 0 is invalid; valid: an integer > 0"),
        (ParallelSettings(threads=0), "--threads 0 is invalid; valid: an integer > 0"),
        (ParallelSettings(global_batch=0), "--global-batch 0 is invalid; valid: an integer > 0"),
        (ParallelSettings(per_device_batch=-4), "--per-device-batch -4 is invalid"),
        (ParallelSettings(timeout_s=float("nan")), "--timeout nan is invalid; valid: a finite"),
        (ParallelSettings(timeout_s=float("inf")), "--timeout inf is invalid; valid: a finite"),
        (ParallelSettings(timeout_s=0.0), "--timeout 0.0 is invalid; valid: a finite number > 0"),
        (
            ParallelSettings(multinode=MultiNode(connect_timeout_s=float("nan"))),
            "--connect-timeout nan is invalid",
        ),
        (ParallelSettings(multinode=MultiNode(nnodes=0)), "--nnodes 0 is invalid; valid: an int"),
        (ParallelSettings(multinode=MultiNode(nnodes=2, node_rank=2)), "--node-rank 2"),
        (
            ParallelSettings(frameworks=("torch",), multinode=MultiNode(nnodes=2)),
            "needs --rdzv-endpoint",
        ),
        (
            ParallelSettings(frameworks=("jax",), multinode=MultiNode(coordinator_address="h:1")),
            "needs --num-processes",
        ),
        (ParallelSettings(multinode=MultiNode(coordinator_address="nohost")), "HOST:PORT"),
    ],
)
def test_bad_settings_are_refused_with_what_is_valid(settings, says):
    with pytest.raises(TwinbenchError) as error:
        settings.validate()
    assert says in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        (ParallelSettings(strategies=("dp",), devices=(3,)), "global batch 32 does not divide"),
        (ParallelSettings(strategies=("tp",), devices=(4,)), "valid --devices here: 1, 2, 5"),
    ],
)
def test_counts_the_workload_cannot_split_are_refused(settings, says):
    settings.validate()  # good settings: only the workload's shapes refuse them
    with pytest.raises(TwinbenchError) as error:
        settings.check_workload(MLP_TINY, 32)
    assert says in str(error.value)


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        (ParallelSettings(device="cuda", devices=(2,)), "2 devices requested; valid on cuda: none"),
        (ParallelSettings(threads=3), "--threads 3 is invalid; valid: an integer from 1 to 2"),
    ],
)
def test_what_this_machine_cannot_run_is_refused(settings, says):
    settings.validate()  # good settings: only the machine refuses them
    with pytest.raises(TwinbenchError) as error:
        settings.check_environment(cores=2, gpus=0)
    assert says in str(error.value)


def test_validate_reads_only_the_settings(monkeypatch):
    """No hardware probe: a CUDA run with more devices than any GPU passes `validate`."""
    import twinbench.harness.environment as environment

    def no_probe() -> None:
        raise AssertionError("validate probed the machine")

    monkeypatch.setattr(environment, "fingerprint", no_probe)
    monkeypatch.setattr(environment, "usable_cores", no_probe)
    ParallelSettings(device="cuda", devices=(64,), threads=512).validate()


def test_a_cells_step_time_has_a_ci_around_its_median():
    step = summarised([0.010, 0.012, 0.011, 0.013, 0.009, 0.011])
    assert step["ci_low_s"] <= step["median_s"] <= step["ci_high_s"]
    assert step["ci_low_s"] < step["ci_high_s"]
    assert step["median_s"] == pytest.approx(0.011) and len(step["samples"]) == 6


def test_tp_pairs_linear_layers_and_leaves_the_classifier_whole():
    assert tp_plan("mlp", MLP_SMALL) == {"layers.0": "colwise", "layers.1": "rowwise"}
    assert tp_plan("gpt", {"h.0.mlp.c_fc.kernel": (4, 16), "h.0.mlp.c_proj.kernel": (16, 4)}) == {
        "h.0.mlp.c_fc": "colwise", "h.0.mlp.c_proj": "rowwise"}  # fmt: skip


def test_one_device_cell_serves_weak_and_strong_scaling():
    found = cells(ParallelSettings(frameworks=("torch",), strategies=("dp",), devices=(1, 2)), 32)
    assert [(c.devices, c.global_batch, c.scalings) for c in found] == [
        (1, 32, ("weak", "strong")), (2, 64, ("weak",)), (2, 32, ("strong",))]  # fmt: skip


def test_cli_refuses_too_many_devices_in_one_line(monkeypatch, capsys, tmp_path):
    code, err = run_cli(monkeypatch, capsys, "--devices", "1,2,64", "--out", str(tmp_path))
    assert code == 2
    assert "64 devices requested; valid on cpu: 1..8" in err and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_cli_refuses_a_batch_that_does_not_divide(monkeypatch, capsys, tmp_path):
    code, err = run_cli(monkeypatch, capsys, "--strategy", "dp", "--global-batch", "30",
                        "--devices", "4", "--out", str(tmp_path))  # fmt: skip
    assert code == 2 and "global batch 30 does not divide over 4 devices" in err


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_cli_refuses_a_timeout_that_is_not_finite(monkeypatch, capsys, tmp_path, value):
    code, err = run_cli(monkeypatch, capsys, "--timeout", value, "--out", str(tmp_path))
    assert code == 2 and "Traceback" not in err
    assert f"--timeout {value} is invalid; valid: a finite number > 0" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--framework", "jax", "--num-processes", "2", "--process-id", "1",
         "--coordinator-address"],
        ["--framework", "torch", "--nnodes", "2", "--node-rank", "1", "--rdzv-endpoint"],
    ],
)  # fmt: skip
def test_unreachable_coordinator_is_a_one_line_error(monkeypatch, capsys, tmp_path, args):
    address = f"127.0.0.1:{closed_port()}"
    code, err = run_cli(monkeypatch, capsys, *args, address, "--devices", "2", "--strategy",
                        "dp", "--connect-timeout", "1", "--out", str(tmp_path))  # fmt: skip
    assert code == 2
    assert "cannot reach the" in err and address in err and "within 1 s" in err
