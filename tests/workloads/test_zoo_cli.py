"""The zoo through the command line: listing, and configs that cannot work refused in one line."""

import pytest

import helpers
from twinbench.registry import ZOO


def run_main(monkeypatch, capsys, *args, columns=None):
    done = helpers.run_main(monkeypatch, capsys, *args, columns=columns)
    return done.returncode, done.stdout, done.stderr


def test_list_shows_every_zoo_workload_at_three_sizes(monkeypatch, capsys):
    code, out, err = run_main(monkeypatch, capsys, "list", columns=240)  # a row per workload
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
