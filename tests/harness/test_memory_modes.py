"""The attributable memory of one cell in every mode, from real worker processes: what the
model's step needs, compilers' resident state left out. Each worker compiles, warms up and
answers its final figures without timed steps, so the four processes cost their start-up."""

import pytest

from twinbench.harness.process import WorkerProcess
from twinbench.harness.runner import Cell, Point, RunSettings
from twinbench.modes import MODES
from twinbench.registry import builtin

MB = 2**20
TIMEOUT_S = 300


def _finals(batch_size, modes):
    """The final answers of one linreg tiny training cell per mode, at ``batch_size``."""
    settings = RunSettings(workloads=("linreg",), sizes=("tiny",), threads=1)
    point = Point(builtin("linreg"), None, "tiny", batch_size)
    workers = {
        mode: WorkerProcess(Cell(point, mode, "train").request(settings), threads=1)
        for mode in modes
    }
    finals = {}
    try:
        for worker in workers.values():  # set up side by side, then compile one at a time
            worker.receive(TIMEOUT_S, "set_up")
        for mode, worker in workers.items():
            worker.send({"cmd": "compile"})
            worker.receive(TIMEOUT_S, "ready")
            worker.send({"cmd": "finish"})
            finals[mode] = worker.receive(TIMEOUT_S, "final")
    finally:
        for worker in workers.values():
            worker.close()
    return finals


@pytest.fixture(scope="module")
def linreg_tiny():
    return _finals(None, MODES)


@pytest.mark.parametrize("mode", MODES)
def test_a_two_parameter_model_needs_almost_no_memory_in_any_mode(linreg_tiny, mode):
    figures = linreg_tiny[mode]
    # the process holds a few hundred MB of runtime (and, compiled, the compiler's state)
    assert figures["peak_rss_bytes"] > 150 * MB
    # 2 parameters and a batch of 64 samples: a few KB of arrays, whatever the compiler keeps
    assert figures["attributable_peak_bytes"] < 50 * MB, figures


def test_every_mode_reads_the_same_model_alike(linreg_tiny):
    peaks = {mode: figures["attributable_peak_bytes"] for mode, figures in linreg_tiny.items()}
    assert max(peaks.values()) - min(peaks.values()) < 2 * MB, peaks


@pytest.mark.parametrize("mode", ["torch-compile", "jax-jit"])
def test_what_a_compiler_keeps_resident_is_stored_apart(linreg_tiny, mode):
    figures = linreg_tiny[mode]
    # compiled code, caches and the modules compiling imported: well above the model's needs
    assert figures["compiler_resident_bytes"] > 10 * MB
    assert figures["compiler_resident_bytes"] > 100 * figures["attributable_peak_bytes"]
