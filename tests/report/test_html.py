"""The HTML report: self-contained, escaped, and complete for whatever the run holds."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from helpers import cell
from twinbench.report import html
from twinbench.report.summary import RunSummary, load_summary
from twinbench.store import CellRecord, ResultStore

HOSTILE = "<script>alert(1)</script>"


def _ok(workload: str, mode: str, median: float, size: str = "tiny", bs: int = 8) -> CellRecord:
    samples = list(median * (1 + 0.02 * np.linspace(-1, 1, 41)))
    metrics = {
        "median_s": median,
        "iqr_s": 0.01 * median,
        "ci_low_s": 0.99 * median,
        "ci_high_s": 1.01 * median,
        "noisy": False,
        "converged": True,
        "time_to_first_step_s": 0.3 if mode == "jax-jit" else 0.01,
        "compile_s": 0.3 if mode == "jax-jit" else None,
        "batch_size": bs,
        "samples_per_s": bs / median,
        "process_peak_memory_bytes": 300 * 2**20,
        "achieved_flops_per_s": 1e9,
        "flops_per_step": 1e9 * median,
    }
    return cell(mode, samples, metrics=metrics, workload=workload, size=size)


def _failed(workload: str, mode: str, error: str) -> CellRecord:
    return cell(mode, status="crashed", error=error, workload=workload)


def _parity(workload: str, passed: bool = True) -> dict:
    curve = [1.0, 0.5, 0.25, 0.125]
    return {
        "checks": [
            {
                "name": "gradients",
                "passed": passed,
                "max_abs": 3.5e-7,
                "max_rel": 1e-6,
                "atol": 1e-5,
                "rtol": 1e-4,
                "detail": "" if passed else "<b>off</b>",
            },
            {
                "name": "curve[adam]",
                "passed": True,
                "max_abs": 2e-7,
                "max_rel": 1e-6,
                "atol": 1e-6,
                "rtol": 1e-5,
                "curves": {"torch": curve, "jax": curve},
            },
        ],
        "error": None,
    }


def _store(
    tmp_path: Path,
    cells: list[CellRecord],
    *,
    parity: bool = True,
    sources: bool = True,
    status: str | None = "finished",
) -> RunSummary:
    with ResultStore(tmp_path / "results.sqlite") as store:
        run_id = store.start_run(
            environment={
                "cpu_model": "Test CPU <i>",
                "usable_cores": 2,
                "versions": {"torch": "2.13.0"},
            },
            settings={"threads": 2, "dtype": "float32", "modes": ["torch-eager", "jax-jit"]},
        )
        store.set_run_info(run_id, "peak_flops", {"torch": 1e11, "jax": 2e11})
        workloads = sorted({c.workload for c in cells})
        if sources:
            store.set_run_info(
                run_id,
                "twin_sources",
                {
                    w: {
                        "torch": "import torch\nx = '<script>alert(2)</script>'\n",
                        "jax": "import jax\n\n\ny = 1\n",
                    }
                    for w in workloads
                },
            )
        if parity:
            for w in workloads:
                store.record_parity(
                    run_id, workload=w, size="tiny", passed=True, summary=_parity(w)
                )
        for cell in cells:
            store.record_cell(run_id, cell)
        if status is not None:
            store.finish_run(run_id, status=status)
    return load_summary(tmp_path)


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The page of a run with a hostile workload name, made once: the tests only read it."""
    tmp_path = tmp_path_factory.mktemp("full")
    cells = [
        _ok("mlp", "torch-eager", 0.004),
        _ok("mlp", "jax-jit", 0.002),
        _ok(HOSTILE, "torch-eager", 0.003),
        _failed(HOSTILE, "jax-jit", f"boom {HOSTILE}"),
    ]
    return html.render(_store(tmp_path, cells))


def test_report_is_one_self_contained_page(full: str):
    assert full.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", full)  # nothing fetched
    assert "<link" not in full and "@import" not in full
    assert not re.search(r"url\((?!#)", full)  # only references inside the page, url(#clip)
    assert full.count("<svg") >= 3  # step-time figure and loss curves for mlp, one for HOSTILE


def test_outside_strings_are_escaped(full: str):
    assert "<script>alert" not in full
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in full  # the workload name, shown escaped
    assert "boom &lt;script&gt;" in full  # the error text
    assert "Test CPU &lt;i&gt;" in full  # environment strings too


def test_sections_show_verdict_break_even_parity_and_sources(full: str):
    assert "jax-jit" in full and "2.00×" in full  # the verdict's factor
    assert "Break-even" in full
    assert "150" in full  # 0.3 s compile / (4 ms − 2 ms) = 150 steps
    assert "max abs error" in full and "3.5e-07" in full
    assert "PyTorch twin — 2 lines" in full and "JAX twin — 4 lines" in full
    assert "Recommendations" in full and "for long training use jax-jit" in full


def test_only_failed_cells_render(tmp_path: Path):
    page = html.render(
        _store(
            tmp_path, [_failed("mlp", "torch-eager", "OOM"), _failed("mlp", "jax-jit", "segfault")]
        )
    )
    assert "OOM" in page and "segfault" in page
    assert "0 of 2 cells measured" in page
    assert "No measured cell to plot" in page


def test_interrupted_run_without_parity_or_sources_renders(tmp_path: Path):
    summary = _store(
        tmp_path,
        [_ok("mlp", "torch-eager", 0.004)],
        parity=False,
        sources=False,
        status="interrupted",
    )
    page = html.render(summary)
    assert "interrupted" in page
    assert "No parity record" in page
    assert "Twin sources" not in page


def test_still_running_run_renders(tmp_path: Path):
    page = html.render(_store(tmp_path, [_ok("mlp", "jax-jit", 0.002)], status=None))
    assert "running" in page


def test_sweep_gets_one_section_with_its_growth_exponent(tmp_path: Path):
    cells = []
    for bs in (4, 16, 64):
        cells.append(_ok("mlp", "torch-eager", 1e-4 * bs, size=f"tiny bs={bs}", bs=bs))
        cells.append(_ok("mlp", "jax-jit", 1e-4 * bs**0.5, size=f"tiny bs={bs}", bs=bs))
    page = html.render(_store(tmp_path, cells))
    assert page.count("batch-size sweep</h3>") == 1
    assert "Growth exponent" in page
    assert ">1.00<" in page and ">0.50<" in page


def test_write_returns_the_path(tmp_path: Path):
    summary = _store(tmp_path, [_ok("mlp", "torch-eager", 0.004)])
    path = html.write(summary, tmp_path / "report.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
