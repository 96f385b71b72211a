"""A memory verdict does not tell apart figures closer than the measurement resolves: at tiny
sizes every model needs a few KB and two figures a page apart are no verdict."""

from helpers import cell as synthetic_cell
from twinbench.report.memory import RESOLUTION_BYTES, memory_verdicts

KB = 2**10


def cell(mode, *by_process):
    metrics = {
        "median_s": 1e-3,
        "attributable_peak_bytes": sorted(by_process)[len(by_process) // 2],
        "attributable_peak_bytes_by_process": list(by_process),
        "model_state_bytes": 0,  # the figure as measured now
    }
    return synthetic_cell(mode, [1e-3] * 5, metrics=metrics)


def test_figures_pages_apart_are_no_significant_difference_however_steady():
    # linreg tiny as measured: one page (4 KiB) against none, the same in both processes
    cells = [cell("torch-compile", 4532, 4532), cell("jax-jit", 532, 532)]
    (best, *_) = memory_verdicts(cells, parity_passed=True)
    assert best.ratio.ratio > 8  # the processes alone would call it certain
    assert not best.ratio.significant
    assert best.text.startswith("no significant difference") and "resolves" in best.text


def test_a_difference_past_the_resolution_is_still_a_verdict():
    lean, heavy = 3 * RESOLUTION_BYTES, 3 * RESOLUTION_BYTES + RESOLUTION_BYTES + 4 * KB
    cells = [cell("torch-eager", heavy, heavy + KB), cell("jax-jit", lean, lean + KB)]
    (best, *_) = memory_verdicts(cells, parity_passed=True)
    assert best.ratio.significant and best.text.startswith("jax-jit needs")
