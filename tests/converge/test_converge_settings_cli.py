"""Bad input is one line and exit code 2 before anything runs; ``list`` shows the datasets."""

from __future__ import annotations

import importlib.util

import pytest

from helpers import assert_one_line_error, run_main
from twinbench.converge import ConvergeSettings, suite
from twinbench.errors import TwinbenchError


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--seeds", "0"], ["--seeds 0", "≥ 1"]),
        (["--max-steps", "0"], ["--max-steps 0", "> 0"]),
        (["--eval-every", "-5"], ["--eval-every -5"]),
        (["--workload", "cancer", "--target", "1.5"], ["--target 1.5", "accuracy", "(0, 1]"]),
        (["--workload", "text", "--target", "0"], ["--target 0", "bits per character"]),
        (["--target", "0.9"], ["exactly one --workload"]),
        (["--workload", "mnist"], ["unknown workload 'mnist'", "cancer"]),
        (["--mode", "jax-fast"], ["unknown mode 'jax-fast'", "jax-jit"]),
        (["--seed", "4294967295", "--seeds", "2"], ["runs past the last seed"]),
        (["--workload", "macro", "--target", "nan"], ["--target nan", "(0, ∞)"]),
    ],
)
def test_bad_input_is_one_line_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    fragments: list[str],
) -> None:
    def never(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a worker started despite bad input")

    monkeypatch.setattr(suite, "one_shot", never)
    assert_one_line_error(run_main(monkeypatch, capsys, "converge", *args), *fragments)


def test_missing_dataset_package_names_the_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name)
    )
    monkeypatch.setattr(suite, "one_shot", lambda *a, **k: pytest.fail("a worker started"))
    result = run_main(monkeypatch, capsys, "converge", "--workload", "digits")
    assert_one_line_error(result, "scikit-learn", "pip install")


def test_target_at_the_edge_of_the_range_is_accepted() -> None:
    ConvergeSettings(workloads=("cancer",), target=1.0).validate()
    ConvergeSettings(workloads=("sunspots",), target=5.0).validate()  # worse than persistence
    with pytest.raises(TwinbenchError, match="outside the range"):
        ConvergeSettings(workloads=("sunspots",), target=-0.1).validate()


def test_list_shows_each_dataset_with_size_and_target() -> None:
    from rich.console import Console

    from twinbench.cli.converge import print_datasets

    console = Console(width=250, record=True)
    print_datasets(console)
    text = console.export_text()
    assert "455 train / 114 validation" in text  # cancer's split
    assert "validation accuracy ≥ 0.96" in text
    assert "bits per character ≤ 3" in text


def test_an_interrupted_run_stores_the_seeds_that_finished(tmp_path, monkeypatch, capsys) -> None:
    from twinbench.store import DB_NAME, ResultStore

    real_train, calls = suite._train, []

    def train_then_stop(*args, **kwargs):  # Ctrl-C while the second seed trains
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_train(*args, **kwargs)

    monkeypatch.setattr(suite, "_train", train_then_stop)
    out = tmp_path / "out"
    result = run_main(monkeypatch, capsys, "converge", "--workload", "cancer-logreg", "--mode",
                      "torch-eager", "--seeds", "3", "--max-steps", "40", "--eval-every", "20",
                      "--threads", "1", "--out", str(out))
    assert result.returncode == 130, result.stderr
    assert "interrupted (SIGINT): what finished is stored" in result.stderr
    assert "Interrupted" in result.stdout  # the partial report is shown
    with ResultStore(out / DB_NAME) as store:
        run = store.run(store.latest_run_id())
    assert run.status == "interrupted"
    stored = run.info["converge"]
    assert stored["interrupted"] is True
    assert [(r["mode"], r["seed"]) for r in stored["runs"]] == [("torch-eager", 0)]
    assert stored["runs"][0]["status"] in ("converged", "not converged")
    assert stored["summaries"][0]["seeds"] == 1  # scored from what finished
