"""The ``twinbench`` command end to end: list, parity, and the errors users meet.

Exit codes are the contract (0 agree, 1 parity failed, 2 user error), so most tests run the real
entry point in a subprocess. Errors must be one line on stderr, never a traceback — checked at
the width of a non-terminal (rich's default of 80 columns), where long lines would wrap.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

import pytest

from twinbench import builtin
from twinbench.registry import BUILTIN, EXAMPLES

Runs = dict[str, subprocess.CompletedProcess[str]]
CHECKS = ["outputs", "loss", "gradients", "curve[sgd]", "curve[adam]"]


def start(*args: str | Path, columns: int | None = None) -> subprocess.Popen[str]:
    """Start ``python -m twinbench ARGS``; ``columns`` widens rich's tables for parsing."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    if columns:
        env["COLUMNS"] = str(columns)
    return subprocess.Popen([sys.executable, "-m", "twinbench", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    try:
        out, err = process.communicate(timeout=300)
    finally:
        process.kill()  # no-op once it has exited; never leave one behind on a timeout
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def twinbench(*args: str | Path, columns: int | None = None) -> subprocess.CompletedProcess[str]:
    return finish(start(*args, columns=columns))


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def dense_count(dims: Sequence[int]) -> int:
    """Parameters of a chain of Linear layers with biases."""
    return sum(d_in * d_out + d_out for d_in, d_out in zip(dims[:-1], dims[1:], strict=False))


def expected_counts(name: str) -> dict[str, int]:
    sizes = builtin(name).sizes
    if name == "linreg":
        return {s: dense_count((sizes[s].config["features"], 1)) for s in sizes}
    if name == "mlp":
        return {s: dense_count(sizes[s].config["features"]) for s in sizes}
    return {s: dense_count((2, sizes[s].config["hidden"], 1)) for s in sizes}


def row_of(output: str, workload: str) -> str:
    rows = [line for line in output.splitlines() if re.search(rf"\b{workload}\b", line)]
    assert len(rows) == 1, f"one table row for {workload} expected in:\n{output}"
    return rows[0]


# --- list ---------------------------------------------------------------------------------------


def test_list_shows_every_workload_with_parameter_counts(runs: Runs) -> None:
    assert expected_counts("mlp")["small"] == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10
    result = runs["list"]
    assert result.returncode == 0, result.stderr
    for name in EXAMPLES:  # the zoo's counts are checked in tests/workloads
        row = row_of(result.stdout, name)
        for size, count in expected_counts(name).items():
            assert f"{size} ({count:,})" in row
    for name in BUILTIN:
        assert re.search(r"tiny \([\d,]+\)", row_of(result.stdout, name))


def test_list_includes_a_workload_file(runs: Runs) -> None:
    d = 8  # tiny: LayerNorm(d) scale and bias, Linear d->d, Linear d->1
    result = runs["list-file"]
    assert result.returncode == 0, result.stderr
    assert f"tiny ({2 * d + dense_count((d, d, 1))})" in row_of(result.stdout, "ln_gelu")
    for name in BUILTIN:
        row_of(result.stdout, name)


# --- parity -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(ln_gelu_variant: Callable[..., Path]) -> Runs:
    """The commands that import both frameworks, run side by side to save time."""
    tanh_gelu = ln_gelu_variant("jax", "approximate=False", "approximate=True")
    ln_gelu = Path(__file__).parent / "fixtures" / "ln_gelu" / "workload.py"
    started = {
        "list": start("list", columns=250),
        "list-file": start("list", "--workload-file", ln_gelu, columns=250),
        "pass": start("parity", "xor", "--size", "tiny", "--steps", "5", columns=200),
        "json": start("parity", "mlp", "--json", "--steps", "5"),
        "fail": start("parity", "--workload-file", tanh_gelu, "--steps", "3", columns=250),
    }
    return {name: finish(process) for name, process in started.items()}


def test_parity_passes_and_says_so(runs: Runs) -> None:
    result = runs["pass"]
    assert result.returncode == 0, result.stdout + result.stderr
    for check in CHECKS:
        row = [line for line in result.stdout.splitlines() if f" {check} " in line]
        assert len(row) == 1 and "xor" in row[0] and "pass" in row[0], check
    assert "FAIL" not in result.stdout
    assert "all twins agree" in result.stdout


def test_parity_json_is_machine_readable(runs: Runs) -> None:
    result = runs["json"]
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] is True
    [mlp] = report["results"]
    assert (mlp["workload"], mlp["size"], mlp["steps"]) == ("mlp", "tiny", 5)
    assert [c["name"] for c in mlp["checks"]] == CHECKS
    for check in mlp["checks"]:
        assert check["passed"] is True
        assert isinstance(check["max_abs"], float)
        assert 0.0 <= check["max_abs"] <= check["atol"] + check["rtol"] * 100


def test_failing_parity_exits_1_and_names_the_layer(runs: Runs) -> None:
    result = runs["fail"]
    assert "first divergent layer: 'fc2'" in result.stdout
    assert "FAIL" in result.stdout
    assert "parity failed" in result.stdout
    assert result.returncode == 1


# --- user errors: exit 2, one line --------------------------------------------------------------


def test_unknown_workload() -> None:
    result = twinbench("parity", "resnet9000")
    line = assert_one_line_error(result, "resnet9000", "linreg, mlp, xor")
    assert result.stdout == ""
    assert line.startswith("error:")


def test_unknown_size() -> None:
    assert_one_line_error(twinbench("parity", "xor", "--size", "huge"), "huge",
                          "tiny, small, full")


def _bad_workload_file(kind: str, tmp_path: Path,
                       ln_gelu_variant: Callable[..., Path]) -> tuple[Path, list[str]]:
    """A broken --workload-file of the given kind and what its error must say."""
    if kind == "missing":
        path = tmp_path / "no_such_workload.py"
        return path, [str(path), "does not exist"]
    if kind == "brackets-in-path":  # rich markup must not eat "[bold]" out of the path
        path = tmp_path / "run[bold]" / "workload.py"
        return path, [str(path)]
    path = tmp_path / f"{kind}.py"
    if kind == "raises":
        path.write_text('raise RuntimeError("broken on purpose")\n')
        return path, [str(path), "RuntimeError", "broken on purpose"]
    if kind == "no-workload":
        path.write_text("NOT_A_WORKLOAD = 1\n")
        return path, [str(path), "no WORKLOAD"]
    path = ln_gelu_variant("jax", "def loss_fn(", "def loss(")
    return path, ["jax twin", "jax_twin.py", "lacks loss_fn"]


@pytest.mark.parametrize("kind", ["missing", "brackets-in-path", "raises", "no-workload",
                                  "twin-without-loss_fn"])
def test_broken_workload_file(kind: str, tmp_path: Path,
                              ln_gelu_variant: Callable[..., Path]) -> None:
    path, fragments = _bad_workload_file(kind, tmp_path, ln_gelu_variant)
    assert_one_line_error(twinbench("parity", "--workload-file", path, "--steps", "2"),
                          *fragments)


# --- in process: the entry point after an error, and a missing framework ------------------------


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             *args: str) -> tuple[int, str, str]:
    """Call ``twinbench.cli.main`` as the console script would; (exit code, stdout, stderr)."""
    from twinbench.cli import main

    monkeypatch.setattr(sys, "argv", ["twinbench", *args])
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_broken_file_leaves_the_builtins_working(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import this_module_does_not_exist\n")
    code, _, err = run_main(monkeypatch, capsys, "parity", "--workload-file", str(broken))
    assert code == 2
    assert "ModuleNotFoundError" in err and "Traceback" not in err
    assert not [m for m in sys.modules if m.startswith("twinbench_user_") and "broken" in m]

    code, out, err = run_main(monkeypatch, capsys, "parity", "mlp", "--steps", "3")
    assert code == 0, out + err
    assert "all twins agree" in out


@pytest.fixture
def without_jax(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make jax, flax and optax look uninstalled to twinbench's framework probe."""
    import twinbench.spec

    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        if name.partition(".")[0] in ("jax", "flax", "optax"):
            return None
        return real_find_spec(name, package)

    monkeypatch.setattr(twinbench.spec.importlib.util, "find_spec", find_spec)
    # list must not reach for the JAX backend at all when torch can answer
    jax_backend: ModuleType = importlib.import_module("twinbench.backends.jax_backend")

    def no_jax(*_: object, **__: object) -> None:
        raise AssertionError("the JAX backend was used although jax is 'missing'")

    monkeypatch.setattr(jax_backend, "build_abstract", no_jax)
    monkeypatch.setattr(jax_backend, "JaxRunner", no_jax)


@pytest.mark.usefixtures("without_jax")
def test_parity_without_jax_says_what_to_install(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(monkeypatch, capsys, "parity", "xor", "--steps", "2")
    assert code == 2
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "'jax'" in lines[0] and "pip install jax" in lines[0]


@pytest.mark.usefixtures("without_jax")
def test_list_works_with_torch_alone(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(monkeypatch, capsys, "list")
    assert code == 0, err
    for name in BUILTIN:
        assert name in out
    assert f"{expected_counts('mlp')['tiny']}" in out
