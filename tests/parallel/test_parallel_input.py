"""Bad input to `twinbench parallel` is refused before any process starts, in one line, exit 2;
an unreachable coordinator is an error after a bounded wait, not a hang."""

import socket
import sys

import pytest

from twinbench.cli import main
from twinbench.errors import TwinbenchError
from twinbench.parallel import MultiNode, ParallelSettings, cells, tp_plan, validate

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
        (ParallelSettings(devices=(16,)), "valid on cpu: 1..8 simulated"),
        (ParallelSettings(devices=(0,)), "≥ 1"),
        (ParallelSettings(strategies=("dp",), devices=(3,)), "global batch 32 does not divide"),
        (ParallelSettings(strategies=("tp",), devices=(4,)), "valid --devices here: 1, 2, 5"),
        (ParallelSettings(strategies=("pp",)), "unknown strategy 'pp'"),
        (ParallelSettings(device="cuda", devices=(2,)), "no GPU found"),
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
        (ParallelSettings(repeats=0), "repeats must be > 0"),
    ],
)
def test_bad_settings_are_refused_with_what_is_valid(settings, says):
    with pytest.raises(TwinbenchError, match=None) as error:
        validate(settings, MLP_TINY, 32, gpus=0)
    assert says in str(error.value)


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
