"""The Markdown report: the same tables and advice as the HTML page, plots as files beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from helpers import cell
from twinbench.report import markdown
from twinbench.report.summary import summarize_run
from twinbench.store import RunRecord


def _summary():
    cells = [
        cell(
            mode,
            median * (1 + 0.01 * np.linspace(-1, 1, 21)),
            metrics={
                "median_s": median,
                "ci_low_s": median,
                "ci_high_s": median,
                "iqr_s": 0.0,
                "converged": True,
                "time_to_first_step_s": 0.2,
                "compile_s": 0.2 if mode == "jax-jit" else None,
            },
        )
        for mode, median in (("torch-eager", 0.004), ("jax-jit", 0.002))
    ]
    cells.append(cell("jax-eager", status="error", error="ValueError: a | b"))
    parity = [
        {
            "workload": "mlp",
            "size": "tiny",
            "passed": True,
            "summary": {
                "checks": [
                    {
                        "name": "curve[sgd]",
                        "passed": True,
                        "max_abs": 1e-7,
                        "max_rel": 1e-6,
                        "atol": 1e-6,
                        "rtol": 1e-5,
                        "curves": {"torch": [1.0, 0.5], "jax": [1.0, 0.5]},
                    }
                ]
            },
        }
    ]
    run = RunRecord(3, "2026-01-01T00:00:00+00:00", None, "finished", {}, {}, {})
    return summarize_run(run, cells, parity)


def test_render_has_summary_recommendations_and_break_even():
    text = markdown.render(_summary())
    assert "| mlp | tiny | train | jax-jit | 2.00× |" in text
    assert "## Recommendations" in text and "for long training use jax-jit" in text
    assert (
        "| tiny | jax-jit | torch-eager (across frameworks) | 200 ms | 100 |" in text
    )  # 0.2 s / 2 ms
    assert "a \\| b" in text  # the error text cannot break the table


def test_write_keeps_its_signature_and_links_plot_files_beside_it(tmp_path: Path):
    path = markdown.write(_summary(), tmp_path / "report-run3.md")
    assert path == tmp_path / "report-run3.md"
    text = path.read_text(encoding="utf-8")
    links = [line[line.index("(") + 1 : -1] for line in text.splitlines() if line.startswith("![")]
    assert len(links) == 2  # step-time panels and loss curves
    for link in links:
        assert (tmp_path / link).read_text().lstrip().startswith(("<?xml", "<svg"))
