"""The feature table: every cell backed by a check that ran; a check made to fail flips it."""

from __future__ import annotations

import pytest

from twinbench.dynamic import jax_checks, torch_checks
from twinbench.dynamic.features import FeatureCell, run_checks

IF = "python if on a tensor value"
PRINT = "print a value inside the step"
ERROR = "shape error names the user's line"


def _table(cells: list[FeatureCell]) -> dict[tuple[str, str], FeatureCell]:
    return {(c.feature, c.mode): c for c in cells}


@pytest.fixture(scope="module")
def torch_table() -> dict[tuple[str, str], FeatureCell]:
    return _table(run_checks(torch_checks.checks("eager")))


@pytest.fixture(scope="module")
def jax_table() -> dict[tuple[str, str], FeatureCell]:
    return _table(run_checks(jax_checks.checks("")))


def test_torch_runs_a_python_branch_eagerly_and_compiled_with_a_graph_break(
    torch_table: dict[tuple[str, str], FeatureCell],
) -> None:
    assert torch_table[(IF, "eager")].status == "works"
    compiled = torch_table[(IF, "torch.compile")]
    assert compiled.status == "works"
    assert compiled.facts["graph_breaks"] >= 1  # explain saw the branch split the graph
    assert compiled.facts["graphs"] == compiled.facts["graph_breaks"] + 1
    assert compiled.facts["reasons"]


def test_jax_jit_refuses_a_python_branch_and_takes_lax_cond(
    jax_table: dict[tuple[str, str], FeatureCell],
) -> None:
    assert jax_table[(IF, "op by op")].status == "works"
    refused = jax_table[(IF, "jax.jit")]
    assert refused.status == "fails"
    assert refused.detail.startswith("TracerBoolConversionError")
    assert jax_table[(IF, "jax.jit + lax.cond")].status == "works"


def test_print_under_jit_shows_a_tracer_and_debug_print_the_values(
    jax_table: dict[tuple[str, str], FeatureCell],
) -> None:
    assert jax_table[(PRINT, "jax.jit")].status == "fails"
    assert "Tracer" in jax_table[(PRINT, "jax.jit")].detail
    assert jax_table[(PRINT, "jax.jit + jax.debug.print")].status == "works"


def test_shape_errors_name_the_planted_line(
    torch_table: dict[tuple[str, str], FeatureCell],
    jax_table: dict[tuple[str, str], FeatureCell],
) -> None:
    for table in (torch_table, jax_table):
        for (feature, _mode), cell in table.items():
            if feature == ERROR:
                assert cell.status == "works", cell.detail
                assert "planted.py:" in cell.detail
                assert cell.facts["seconds_to_error"] >= 0


@pytest.mark.parametrize(
    ("module", "key", "backend"),
    [
        (jax_checks, f"jax:{IF}:jax.jit + lax.cond", ""),
        (jax_checks, f"jax:{PRINT}:jax.jit + jax.debug.print", ""),
        (jax_checks, f"jax:{ERROR}:jax.jit", ""),
        (torch_checks, f"torch:{IF}:torch.compile", "eager"),
    ],
)
def test_a_check_made_to_fail_flips_its_cell(module: object, key: str, backend: str) -> None:
    checks = module.checks(backend)  # type: ignore[attr-defined]
    chosen = [c for c in checks if c.key == key]
    assert chosen, key
    honest, sabotaged = run_checks(chosen)[0], run_checks(chosen, [key])[0]
    assert honest.status == "works"
    assert sabotaged.status == "fails"
    assert sabotaged.detail.startswith("AssertionError")
