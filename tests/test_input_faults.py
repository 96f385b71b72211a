"""Faults in inputs: workload files that exit or lie, names that break tables and files, twins
that die during parity, and numbers outside what an option's help says.

Each fault is a copy of the ln_gelu fixture with one edit (``fixtures/faulty/input_cases.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import Result, add_run, assert_one_line_error, cell

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "faulty"))
from input_cases import make  # noqa: E402

Cli = Callable[..., Result]


@pytest.fixture
def faulty(tmp_path: Path) -> Callable[[str], Path]:
    """``faulty(kind)``: the workload.py of a fresh copy of ln_gelu with that fault."""
    return lambda kind: make(kind, tmp_path)


# --- loading a workload file --------------------------------------------------------------------


@pytest.mark.parametrize("command", ["parity", "list"])
def test_a_workload_file_that_calls_sys_exit_is_a_one_line_error(
    cli: Cli, faulty: Callable[[str], Path], command: str
) -> None:
    path = faulty("workload_exit0")
    assert_one_line_error(cli(command, "--workload-file", path), str(path.resolve()), "SystemExit")


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("slash_name", "'a/b'"),
        ("empty_name", "''"),
        ("newline_name", "'two\\nlines'"),
        ("garbage_sizes", "size 'tiny' (int) is invalid"),
        ("builtin_name", "'mlp', the name of a built-in workload"),
    ],
)
def test_a_bad_workload_file_is_refused_at_load_time(
    cli: Cli, faulty: Callable[[str], Path], kind: str, fragment: str
) -> None:
    path = faulty(kind)
    assert_one_line_error(cli("list", "--workload-file", path), fragment)


def test_two_workload_files_with_one_name_are_refused(cli: Cli, tmp_path: Path) -> None:
    first, second = make("plain", tmp_path / "a"), make("plain", tmp_path / "b")
    result = cli("parity", "--workload-file", first, "--workload-file", second)
    assert_one_line_error(result, str(first), str(second), "'ln_gelu'")


# --- names in tables, reports and file names ---------------------------------------------------

MARKUP = "[/bold]evil[red] <script>alert(1)</script>"


def test_a_name_with_markup_is_listed_as_written(cli: Cli, faulty: Callable[[str], Path]) -> None:
    result = cli("list", "--workload-file", faulty("markup_name"), columns=250)
    assert result.returncode == 0, result.stderr
    assert "[bold]evil[red] <script>alert(1)<script>" in result.stdout


def _run_named(results: Path, name: str) -> None:
    cells = [cell(mode, [0.01, 0.011, 0.012], workload=name) for mode in ("torch-eager", "jax-jit")]
    for one in cells:
        one.metrics.update(time_to_first_step_s=0.5, converged=True)
    add_run(
        results,
        cells,
        parity=[{"workload": name, "size": "tiny", "passed": True, "summary": {"checks": []}}],
    )


def test_report_of_a_markup_name_renders_in_every_format(cli: Cli, tmp_path: Path) -> None:
    _run_named(tmp_path, MARKUP + "\nsecond line")
    result = cli("report", "--results", tmp_path, "--format", "md", columns=250)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[/bold]evil[red]" in result.stdout  # the terminal table shows it, not rich
    markdown = (tmp_path / "report-run1.md").read_text()
    assert "<script>" not in markdown and "&lt;script&gt;" in markdown
    headings = [line for line in markdown.splitlines() if line.startswith("### ")]
    assert headings and all("second line" in h for h in headings)  # the newline is folded
    assert cli("report", "--results", tmp_path, "--format", "terminal").returncode == 0


def test_a_260_character_name_gets_reports_and_plots(cli: Cli, tmp_path: Path) -> None:
    _run_named(tmp_path, "n" * 260)
    result = cli("report", "--results", tmp_path, "--format", "md")
    assert result.returncode == 0, result.stdout + result.stderr
    plots = list((tmp_path / "report-run1-plots").iterdir())
    assert plots and all(len(p.name) < 255 for p in plots)
    assert cli("report", "--results", tmp_path, "--format", "html").returncode == 0


def test_anchors_of_long_names_differ() -> None:
    from twinbench.report.html import anchor

    a, b = anchor("n" * 300 + "a", "tiny", "train"), anchor("n" * 300 + "b", "tiny", "train")
    assert a != b and len(a) <= 100 and len(b) <= 100
    assert anchor("mlp", "tiny", "train") == "w-mlp-tiny-train"


# --- parity in its own process -----------------------------------------------------------------


def test_a_twin_that_segfaults_fails_its_check_and_the_others_are_checked(
    cli: Cli, faulty: Callable[[str], Path]
) -> None:
    result = cli("parity", "xor", "--workload-file", faulty("forward_segfault"), "--steps", "2",
                 columns=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "SIGSEGV" in result.stdout
    assert "│ xor" in result.stdout and "pass" in result.stdout  # xor was still checked


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [
        ("forward_exit0", "worker exited with status 0"),
        # the same path with other endings; each starts a parity worker: CI's slow step
        pytest.param("forward_os_exit3", "worker exited with status 3", marks=pytest.mark.slow),
        pytest.param("build_raises", "RuntimeError: build broken on purpose",
                     marks=pytest.mark.slow),
        pytest.param("data_raises", "RuntimeError: no data", marks=pytest.mark.slow),
        pytest.param("one_batch", "gave 1 batches; parity needs 2", marks=pytest.mark.slow),
    ],
)
def test_a_twin_that_dies_fails_its_check(
    cli: Cli, faulty: Callable[[str], Path], kind: str, fragment: str
) -> None:
    # alone: that the other workloads are still checked is the segfault's test above (each
    # workload checked is a parity worker that imports both frameworks)
    result = cli("parity", "--workload-file", faulty(kind), "--steps", "2", columns=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert fragment in result.stdout


def test_a_build_that_hangs_is_stopped_by_the_timeout(
    cli: Cli, faulty: Callable[[str], Path]
) -> None:
    result = cli(
        "parity",
        "--workload-file",
        faulty("build_hangs"),
        "--steps",
        "2",
        "--timeout",
        "4",  # the only workload, and it hangs: no healthy check needs the time
        columns=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "parity check timeout: no answer within 4 s" in result.stdout


def test_the_library_parity_call_still_runs_in_process(faulty: Callable[[str], Path]) -> None:
    import twinbench

    report = twinbench.parity(workload_files=[str(faulty("build_raises"))], steps=2)
    assert not report.passed
    assert report.results[0].error == "RuntimeError: build broken on purpose"


# --- numbers: every numeric option refuses what its help does not promise ----------------------

NUMERIC = [
    ("run", "--budget", "nan"),
    ("run", "--budget", "inf"),
    ("run", "--budget", "0"),
    ("run", "--timeout", "inf"),
    ("run", "--timeout", "nan"),
    ("run", "--timeout", "-1"),
    ("run", "--repeats", "0"),
    ("run", "--repeats", "999"),
    ("run", "--threads", "0"),
    ("run", "--threads", "999"),
    ("run", "--seed", "-1"),
    ("run", "--seed", str(2**32)),
    ("sweep mlp --batch-sizes 1", "--budget", "nan"),
    ("sweep mlp --batch-sizes 1", "--timeout", "inf"),
    ("sweep mlp", "--batch-sizes", "0"),
    ("sweep mlp", "--seq-lens", "-1"),
    ("parity xor", "--steps", "0"),
    ("parity xor", "--seed", "-1"),
    ("parity xor", "--timeout", "nan"),
    ("parity xor", "--timeout", "inf"),
    ("parity xor", "--timeout", "0"),
    ("compare 1 2", "--threshold", "nan"),
    ("compare 1 2", "--threshold", "inf"),
    ("compare 1 2", "--threshold", "-1"),
    ("compare 1 2", "--fail-on-regression", "nan"),
    ("compare 1 2", "--fail-on-regression", "-1"),
    ("report", "", "²"),
    ("report", "", "٣"),
    ("report", "", "-1"),
    ("compare 1", "", "²"),
    ("optim", "--dim", "0"),
    ("optim", "--gtol", "nan"),
    ("optim", "--gtol", "0"),
    ("optim", "--max-iter", "0"),
    ("optim", "--repeats", "0"),
    ("optim", "--steps", "0"),
    ("optim", "--seed", "-1"),
    ("autodiff", "--dim", "0"),
    ("autodiff", "--hidden", "0"),
    ("autodiff", "--batch", "0"),
    ("autodiff", "--batch-sizes", "0"),
    ("autodiff", "--threads", "999"),
    ("autodiff", "--threads", "0"),
    ("autodiff", "--budget", "nan"),
    ("autodiff", "--budget", "0"),
    ("autodiff", "--seed", "-1"),
    ("parallel", "--steps", "-1"),
    ("parallel", "--warmup", "-1"),
    ("parallel", "--repeats", "0"),
    ("parallel", "--block", "0"),
    ("parallel", "--threads", "999"),
    ("parallel", "--threads", "0"),
    ("parallel", "--timeout", "nan"),
    ("parallel", "--timeout", "inf"),
    ("parallel", "--nnodes", "0"),
    ("parallel", "--node-rank", "-1"),
    ("parallel", "--connect-timeout", "nan"),
    ("parallel", "--per-device-batch", "0"),
    ("parallel", "--global-batch", "0"),
    ("parallel", "--devices", "0"),
    ("parallel", "--seed", "-1"),
]


@pytest.mark.parametrize(("command", "option", "value"), NUMERIC)
def test_every_numeric_option_refuses_a_bad_value(
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    option: str,
    value: str,
) -> None:
    from twinbench.harness import process

    def no_worker(*_: object, **__: object) -> None:
        raise AssertionError(f"{command} {option} {value} started a worker")

    monkeypatch.setattr(process.WorkerProcess, "__init__", no_worker)
    for _ in range(2):
        add_run(tmp_path, [cell("torch-eager", [0.01, 0.02])])
    words = command.split() + ([option] if option else []) + [value]
    head = words[0]
    out = (
        ["--results", str(tmp_path)]
        if head in ("report", "compare")
        else ([] if head == "parity" else ["--out", str(tmp_path / "out")])
    )
    result = cli(*words, *out, columns=250)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert value in result.stderr


def test_plot_links_survive_a_report_name_with_brackets(cli: Cli, tmp_path: Path) -> None:
    _run_named(tmp_path, "mlp")
    target = tmp_path / "my (report].md"
    result = cli("report", "--results", tmp_path, "--out", target)
    assert result.returncode == 0, result.stdout + result.stderr
    links = [line for line in target.read_text().splitlines() if line.startswith("![")]
    assert links and all("](my%20%28report%5D-plots/" in line for line in links)


def test_compare_markdown_escapes_names(cli: Cli, tmp_path: Path) -> None:
    _run_named(tmp_path, "<script>x")
    _run_named(tmp_path, "<script>x")
    result = cli("compare", "1", "2", "--results", tmp_path, "--format", "md")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "&lt;script&gt;x" in result.stdout and "<script>" not in result.stdout
