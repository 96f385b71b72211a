"""Figures: labelled, with units, and drawn without pyplot or a GUI backend."""

from __future__ import annotations

import subprocess
import sys

from helpers import cell
from twinbench.report import plots
from twinbench.report.summary import SweepSeries
from twinbench.store import CellRecord


def _cell(mode: str, median: float) -> CellRecord:
    return cell(mode, metrics={
        "median_s": median,
        "ci_low_s": 0.9 * median,
        "ci_high_s": 1.1 * median,
        "compile_s": 0.5 if mode == "jax-jit" else None,
        "process_peak_memory_bytes": 2**28,
        "achieved_flops_per_s": 5e9,
    })


def test_workload_figure_has_labelled_panels_with_units():
    text = plots.svg(
        plots.workload_figure([_cell("torch-eager", 2e-3), _cell("jax-jit", 1e-3)], 1e11)
    )
    assert text.startswith("<svg")
    for label in (
        "median step time (ms), 95% CI",
        "total time (s)",
        "peak memory (MiB)",
        "achieved / measured peak (%)",
        "steps n",
    ):
        assert label in text


def test_parity_figure_overlays_both_curves_and_their_difference():
    checks = [{"name": "curve[$sgd$]", "curves": {"torch": [1.0, 0.5], "jax": [1.0, 0.4]}}]
    text = plots.svg(plots.parity_figure(checks))
    assert "PyTorch" in text and "JAX" in text and "|PyTorch − JAX|" in text
    assert plots.parity_figure([{"name": "loss", "curves": None}]) is None


def test_sweep_exponent_is_the_log_log_slope():
    series = SweepSeries(
        "mlp",
        "tiny",
        "train",
        "jax-jit",
        (8, 16, 32),
        (1.0, 2.0, 4.0),
        (1.0, 2.0, 4.0),
        (1.0, 2.0, 4.0),
        (8.0, 8.0, 8.0),
        (None, None, None),
    )
    assert abs(series.exponent - 1.0) < 1e-9
    flat = SweepSeries(
        "mlp",
        "tiny",
        "train",
        "jax-jit",
        (8, 32),
        (1.0, 1.0),
        (1.0, 1.0),
        (1.0, 1.0),
        (8.0, 32.0),
        (1.0, 1.0),
    )
    assert abs(flat.exponent) < 1e-9
    text = plots.svg(plots.sweep_figure([series]))
    assert "slope 1.00" in text and "batch size" in text


def test_plotting_uses_no_gui_backend_and_no_framework():
    code = (
        "import sys, twinbench.report.plots, twinbench.report.html; "
        "print(sorted(m for m in ('torch', 'jax', 'matplotlib.pyplot') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
