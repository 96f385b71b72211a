"""The zoo through the command line: listing, and configs that cannot work refused in one line."""

import sys

import pytest

from twinbench.registry import ZOO


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str):
    from twinbench.cli import main

    monkeypatch.setattr(sys, "argv", ["twinbench", *args])
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_list_shows_every_zoo_workload_at_three_sizes(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "240")  # one table row per workload
    code, out, err = run_main(monkeypatch, capsys, "list")
    assert code == 0, err
    for name in ZOO:
        row = next(line for line in out.splitlines() if f" {name} " in f" {line} ")
        for size in ("tiny", "small", "full"):
            assert f"{size} (" in row, row


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sweep", "gpt", "--seq-lens", "64,4096"], "max_positions"),
        (["sweep", "bert", "--seq-lens", "100000"], "max_positions"),
        (["run", "--workload", "resnet", "--size", "huge"], "no size 'huge'"),
        (["sweep", "lstm", "--batch-sizes", "0"], "--batch-sizes"),
    ],
)
def test_a_config_that_cannot_work_is_refused_before_any_work(
    monkeypatch, capsys, tmp_path, args, message
):
    code, out, err = run_main(monkeypatch, capsys, *args, "--out", str(tmp_path))
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "results.sqlite").exists()  # refused before a run was opened


def test_full_sizes_have_the_reference_models_parameter_counts():
    """Published counts: torchvision's resnet50 and Hugging Face's GPT-2 small (124M, tied head).
    BatchNorm running statistics are not parameters."""
    from twinbench.backends import parameter_counts
    from twinbench.registry import builtin

    assert parameter_counts(builtin("resnet"))["full"] == 25_557_032
    assert parameter_counts(builtin("gpt"))["full"] == 124_439_808
