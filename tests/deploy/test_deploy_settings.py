"""Bad input to the deploy suite is one line naming the value, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import assert_one_line_error, run_main
from twinbench.deploy.settings import GROUPS, PATHS, DeploySettings, paths_named
from twinbench.errors import TwinbenchError
from twinbench.store import DB_NAME


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (DeploySettings(workloads=("nope",)), "nope"),
        (DeploySettings(workloads=()), "no workload"),
        (DeploySettings(size="huge"), "huge"),
        (DeploySettings(paths=("tflite",)), "tflite"),
        (DeploySettings(batch_sizes=(1, 0)), "0"),
        (DeploySettings(batch_sizes=(-4,)), "-4"),
        (DeploySettings(repeats=0), "repeats 0"),
        (DeploySettings(budget_s=float("nan")), "nan"),
    ],
)
def test_validate_names_the_bad_value(settings: DeploySettings, named: str) -> None:
    with pytest.raises(TwinbenchError) as info:
        settings.validate()
    message = str(info.value)
    assert named in message and "\n" not in message


def test_groups_pick_paths_in_order() -> None:
    assert paths_named(["onnx"]) == GROUPS["onnx"]
    assert paths_named(["all"]) == tuple(PATHS)
    assert paths_named(["jax-onnx", "native"]) == ("torch-aoti", "jax-stablehlo", "jax-onnx")
    with pytest.raises(TwinbenchError, match="'cuda'"):
        paths_named(["cuda"])


def test_default_batch_sizes_are_one_and_the_sizes_batch() -> None:
    assert DeploySettings().batches_for(32) == (1, 32)
    assert DeploySettings(batch_sizes=(8, 2, 8)).batches_for(32) == (2, 8)


def test_an_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(TwinbenchError, match="writable"):
        DeploySettings(out=blocker / "out").check_environment()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--workload", "nope"], "nope"),
        (["--size", "huge"], "huge"),
        (["--path", "tflite"], "tflite"),
        (["--batch-sizes", "0,4"], "0"),
        (["--batch-sizes", "1,x"], "1,x"),
        (["--repeats", "0"], "0"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    args: list[str],
    named: str,
) -> None:
    result = run_main(monkeypatch, capsys, "deploy", *args, "--out", tmp_path / "out")
    assert_one_line_error(result, named)
    assert not (tmp_path / "out" / DB_NAME).exists()


def test_cli_unwritable_out_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_main(monkeypatch, capsys, "deploy", "--size", "tiny", "--out", blocker / "out")
    assert_one_line_error(result, str(blocker / "out"), "writable")


def test_an_interrupted_run_stores_the_workloads_that_finished(tmp_path, monkeypatch, capsys):
    from twinbench.deploy import suite
    from twinbench.store import ResultStore

    done: list[str] = []

    def deploy_then_stop(settings, name, root, progress):  # Ctrl-C during the second workload
        done.append(name)
        if len(done) == 2:
            raise KeyboardInterrupt
        cell = suite._new_cell(name, "jax-stablehlo", root / name)  # an export that failed
        return [{**cell, "status": "error", "error": "planted exporter failure"}]

    monkeypatch.setattr(suite, "_deploy_workload", deploy_then_stop)
    out = tmp_path / "out"
    result = run_main(monkeypatch, capsys, "deploy", "--workload", "xor", "--workload", "mlp",
                      "--size", "tiny", "--out", str(out))
    assert result.returncode == 130, result.stderr
    assert "interrupted (SIGINT): what finished is stored" in result.stderr
    with ResultStore(out / DB_NAME) as store:
        run = store.run(store.latest_run_id())
    assert run.status == "interrupted"
    assert run.info["deploy"]["interrupted"] is True
    assert [c["workload"] for c in run.info["deploy"]["cells"]] == ["xor"]
    assert "Interrupted" in run.info["suite_report"]
