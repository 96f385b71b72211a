"""The ``twinbench`` command end to end: list, parity, and the errors users meet.

Exit codes are the contract (0 agree, 1 parity failed, 2 user error). The commands run in this
process through the console script's ``main`` (``cli``), one through the real entry point in a
fresh interpreter. Errors must be one line on stderr, never a traceback — checked at 80 columns
(rich's default for a narrow terminal), where long lines would wrap.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

import pytest

from helpers import Result, assert_one_line_error
from twinbench import builtin
from twinbench.registry import BUILTIN, EXAMPLES

Cli = Callable[..., Result]
CHECKS = ["outputs", "loss", "gradients", "curve[sgd]", "curve[adam]"]
LN_GELU = Path(__file__).parent / "fixtures" / "ln_gelu" / "workload.py"


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


def test_list_shows_every_workload_with_parameter_counts(cli: Cli) -> None:
    assert expected_counts("mlp")["small"] == 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10
    result = cli("list", columns=250)
    assert result.returncode == 0, result.stderr
    for name in EXAMPLES:  # the zoo's counts are checked in tests/workloads
        row = row_of(result.stdout, name)
        for size, count in expected_counts(name).items():
            assert f"{size} ({count:,})" in row
    for name in BUILTIN:
        assert re.search(r"tiny \([\d,]+\)", row_of(result.stdout, name))


def test_list_includes_a_workload_file(cli: Cli) -> None:
    d = 8  # tiny: LayerNorm(d) scale and bias, Linear d->d, Linear d->1
    result = cli("list", "--workload-file", LN_GELU, columns=250)
    assert result.returncode == 0, result.stderr
    assert f"tiny ({2 * d + dense_count((d, d, 1))})" in row_of(result.stdout, "ln_gelu")
    for name in BUILTIN:
        row_of(result.stdout, name)


# --- parity -------------------------------------------------------------------------------------


@pytest.mark.usefixtures("parity_in_process")
def test_parity_passes_and_says_so(cli: Cli) -> None:
    result = cli("parity", "xor", "--size", "tiny", "--steps", "5", columns=200)
    assert result.returncode == 0, result.stdout + result.stderr
    for check in CHECKS:
        row = [line for line in result.stdout.splitlines() if f" {check} " in line]
        assert len(row) == 1 and "xor" in row[0] and "pass" in row[0], check
    assert "FAIL" not in result.stdout
    assert "all twins agree" in result.stdout


@pytest.mark.usefixtures("parity_in_process")
def test_parity_json_is_machine_readable_and_a_broken_file_leaves_the_builtins_working(
        cli: Cli, tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import this_module_does_not_exist\n")
    assert_one_line_error(cli("parity", "--workload-file", broken), "ModuleNotFoundError")
    # the failed import left no half-made module behind (other tests' files may be loaded)
    assert not [m for m in sys.modules if m.startswith("twinbench_user_") and m.endswith("_broken")]

    # a builtin still checks after it, in this same process
    result = cli("parity", "mlp", "--json", "--steps", "5")
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


@pytest.mark.usefixtures("parity_in_process")
def test_failing_parity_exits_1_and_names_the_layer(
        cli: Cli, ln_gelu_variant: Callable[..., Path]) -> None:
    tanh_gelu = ln_gelu_variant("jax", "approximate=False", "approximate=True")
    result = cli("parity", "--workload-file", tanh_gelu, "--steps", "3", columns=250)
    assert "first divergent layer: 'fc2'" in result.stdout
    assert "FAIL" in result.stdout
    assert "parity failed" in result.stdout
    assert result.returncode == 1, result.stderr


# --- user errors: exit 2, one line --------------------------------------------------------------


def test_unknown_workload(cli: Cli) -> None:
    result = cli("parity", "resnet9000", columns=80)
    line = assert_one_line_error(result, "resnet9000", "linreg, mlp, xor")
    assert result.stdout == ""
    assert line.startswith("error:")


def test_unknown_size(cli: Cli) -> None:
    assert_one_line_error(cli("parity", "xor", "--size", "huge", columns=80), "huge",
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
def test_broken_workload_file(cli: Cli, kind: str, tmp_path: Path,
                              ln_gelu_variant: Callable[..., Path]) -> None:
    path, fragments = _bad_workload_file(kind, tmp_path, ln_gelu_variant)
    assert_one_line_error(cli("parity", "--workload-file", path, "--steps", "2", columns=80),
                          *fragments)


# --- the entry point after an error, and a missing framework ------------------------------------


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
def test_parity_without_jax_says_what_to_install(cli: Cli) -> None:
    assert_one_line_error(cli("parity", "xor", "--steps", "2", columns=80), "'jax'",
                          "pip install jax")


@pytest.mark.usefixtures("without_jax")
def test_list_works_with_torch_alone(cli: Cli) -> None:
    result = cli("list")
    assert result.returncode == 0, result.stderr
    for name in BUILTIN:
        assert name in result.stdout
    assert f"{expected_counts('mlp')['tiny']}" in result.stdout
