"""Strict settings for every test, and fixtures shared by the parity, canonical and CLI tests.

Plain helpers (the subprocess runner, synthetic cells and stores) live in ``helpers.py``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from helpers import Result, run_main

if importlib.util.find_spec("jax") is not None:  # strict as equinox: no silent broadcasting
    import jax

    jax.config.update("jax_numpy_rank_promotion", "raise")
    # Not jax_numpy_dtype_promotion="strict": optax's own Adam trips it (bias_correction computes
    # `decay ** count`, a Python float to the power of an int32 step count), so no training curve
    # with Adam could run. The twins' float32-only arithmetic is checked by parity instead.

MAX_WORKERS = 4  # every worker imports both frameworks (about 1.5 GB) and starts cell processes


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per usable core, at most MAX_WORKERS; PYTEST_XDIST_AUTO_NUM_WORKERS
    decides when set."""
    from twinbench.harness.environment import usable_cores

    given = os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS")
    return int(given) if given else max(1, min(MAX_WORKERS, usable_cores()))


# Files whose tests take 7 s or more in all, longest first (measured on a 2-core machine, under
# xdist). Under xdist (--dist loadfile --no-loadscope-reorder hands out files in collection
# order) they go first, so the many short files fill the end and no worker idles while another
# finishes a long one; xdist's own order (most tests first) would leave the one-test runs for last.
LONG_FILES = (
    "test_cli_run.py",
    "test_parity.py",
    "workloads/test_gru.py",
    "deploy/test_deploy_suite.py",
    "test_cli_suites.py",
    "autodiff/test_checks.py",
    "test_converters.py",
    "test_sweep.py",
    "optim_suite/test_second_order.py",
    "test_backend_layers.py",
    "dynamic/test_dynamic_counting.py",
    "test_input_faults.py",
    "converge/test_converge_suite.py",
    "optim_suite/test_first_order.py",
    "parallel/test_parallel_parity.py",
    "test_cli_core.py",
)


# Checks that each cost 5 s or more (most 10-70 s) of a 2-core machine and whose code the rest of
# the default run covers too, through cheaper in-process checks (measured with coverage's
# per-test contexts: of the lines these checks run, the default run misses 3): marked slow here,
# so that `python -m pytest` stays well under 5 minutes, and CI's slow step runs them. Node ids
# (a prefix takes every parameter), and fixtures whose every user is slow (the fixture is the
# cost).
SLOW_TESTS = (
    "harness/test_memory.py::test_every_worker_sees_the_temporaries_of_a_step_run_on_xlas_threads",
    "harness/test_runner_faults.py::test_raise_abort_and_hang_are_recorded_and_the_run_continues",
    "harness/test_signals.py::test_a_signalled_run_keeps_its_cells_and_leaves_no_worker",
    "harness/test_memory_eager_state.py::test_jax_eager_holds_no_copy_of_its_initial_state[train]",
    "harness/test_protocol_faults.py::test_junk_or_a_forged_answer_on_the_protocol_fails_that_cell",
    "autodiff/test_autodiff_suite.py::test_tiny_run_end_to_end_and_saved",
    "dynamic/test_dynamic_masking.py::test_padding_leaves_every_bert_gradient_unchanged",
    "dynamic/test_dynamic_masking.py::test_padded_bert_keeps_the_loss_sequence",
    "dynamic/test_dynamic_counting.py::test_serving_compiles_what_the_counters_count",
    "test_input_faults.py::test_a_twin_that_segfaults_fails_its_check",
    "test_input_faults.py::test_a_twin_that_dies_fails_its_check[forward_exit0",
    "workloads/test_lstm.py::test_parity_tiny",
    "workloads/test_bert.py::test_the_mask_keeps_right_padding_out_of_outputs_loss_and_gradients",
    "workloads/test_gru.py::test_parity_catches_a_misplaced_b_hn[b_hn dropped]",
    "workloads/test_gru.py::test_parity_catches_a_misplaced_b_hn[r outside the bracket]",
    "parallel/test_parallel_parity.py::test_a_dead_worker_fails_its_cell_and_leaves_no_process",
)
SLOW_FIXTURES = ("two_process_run", "linreg_tiny")  # test_repeats.py, test_memory_modes.py


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """SLOW_TESTS marked slow; under xdist, the LONG_FILES' tests first, in that order; the rest
    as collected."""
    nodes = [item.nodeid.removeprefix("tests/") for item in items]
    for item, node in zip(items, nodes, strict=True):
        uses = getattr(item, "fixturenames", ())
        if node.startswith(SLOW_TESTS) or any(name in uses for name in SLOW_FIXTURES):
            item.add_marker(pytest.mark.slow)
    # a renamed test would silently return to the default run; checked when every test is
    # collected (no paths or node ids given)
    stale = [prefix for prefix in SLOW_TESTS if not any(node.startswith(prefix) for node in nodes)]
    if stale and not config.option.file_or_dir:
        raise pytest.UsageError(f"SLOW_TESTS names no collected test: {', '.join(stale)}")
    if not hasattr(config, "workerinput"):
        return  # one process: the order changes nothing
    tests = Path(__file__).parent
    rank = {tests / name: place for place, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path, len(LONG_FILES)))  # stable: keeps the rest


FIXTURES = Path(__file__).parent / "fixtures"
LN_GELU = FIXTURES / "ln_gelu"


@pytest.fixture
def ln_gelu_file() -> Path:
    """The ``workload.py`` of the test-only LayerNorm → Linear → GELU → Linear workload."""
    return LN_GELU / "workload.py"


@pytest.fixture(scope="session")
def ln_gelu_variant(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Copy the ln_gelu fixture and edit one twin's source; returns the copy's ``workload.py``.

    ``variant("jax", "approximate=False", "approximate=True")`` plants a GELU tanh/erf slip.
    Each copy lives in its own folder, so it is imported as a module of its own.
    """

    def make(framework: str, old: str, new: str) -> Path:
        folder = tmp_path_factory.mktemp("variant") / "ln_gelu"
        shutil.copytree(LN_GELU, folder, ignore=shutil.ignore_patterns("__pycache__"))
        twin = folder / f"{framework}_twin.py"
        source = twin.read_text()
        assert source.count(old) == 1, f"{old!r} should occur exactly once in {twin.name}"
        twin.write_text(source.replace(old, new))
        return folder / "workload.py"

    return make



@pytest.fixture
def unprobed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs in this process skip the peak-FLOP/s probe: each framework's peak is stored as a
    failed probe, the way a probe that crashed is, and no probe worker starts (each imports its
    framework). For runs whose subject is something else; tiny_run and test_repeats.py probe."""
    from twinbench.harness import runner
    from twinbench.modes import FRAMEWORK_OF

    def skipped(store: Any, run_id: int, settings: Any, progress: Any) -> None:
        frameworks = sorted({FRAMEWORK_OF[mode] for mode in settings.modes})
        reason = "probe failed: not run by this test"
        store.set_run_info(run_id, "peak_flops", dict.fromkeys(frameworks, reason))

    monkeypatch.setattr(runner, "_probe_peaks", skipped)


@pytest.fixture
def parity_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """`twinbench parity` checks each workload in this process instead of a worker of its own:
    the request goes to the worker's own handler and its answer through JSON, as over the pipe.
    Saves each check a fresh interpreter that imports both frameworks; tests/test_input_faults.py
    crosses the process boundary for real."""
    from twinbench.harness import process, worker

    def in_process(request: dict[str, Any], **_limits: Any) -> Any:
        return json.loads(json.dumps(worker.run_parity(request), default=float))

    monkeypatch.setattr(process, "one_shot", in_process)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``cli(*args)``: the ``twinbench`` command in this process (see ``helpers.run_main``)."""

    def call(*args: str | Path, columns: int | None = None) -> Result:
        return run_main(monkeypatch, capsys, *args, columns=columns)

    return call


# Two examples, one per optimizer they train with (linreg SGD, xor Adam): each more costs a
# parity worker and two cells. Pooled processes are test_repeats' subject.
TINY_RUN = ("run", "--suite", "tiny", "--workload", "linreg", "--workload", "xor", "--mode",
            "jax-jit", "--mode", "torch-eager", "--budget", "0.5", "--repeats", "1")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> tuple[Path, Result]:
    """One real ``twinbench run`` of two examples at tiny, two modes: (results directory,
    the command's exit code and output). Read-only: copy the directory to write beside it.

    Made once per session: the xdist workers share it through a file lock in the session's
    temporary root (without xdist, in this session's own: the folder above it holds earlier
    sessions' runs too). Only tests/test_cli_run.py reads it, so no worker waits on the lock
    while another makes the run. It runs in the worker's process (its cells in their own
    subprocesses), so it counts towards coverage; the peak-FLOP/s probe is shortened, its value
    is not checked.
    """
    from twinbench.cli import main
    from twinbench.harness import runner

    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent  # one per session, above every worker's
    out, record = root / "tiny-run", root / "tiny-run.json"
    with FileLock(str(root / "tiny-run.lock")):
        if not record.exists():
            stdout, stderr = io.StringIO(), io.StringIO()
            code: object = 0
            with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(stdout), \
                    contextlib.redirect_stderr(stderr):
                patch.setattr(runner, "PROBE_SECONDS", 0.05)
                patch.setattr(sys, "argv", ["twinbench", *TINY_RUN, "--out", str(out)])
                try:
                    main()
                except SystemExit as exit_:
                    code = exit_.code
            record.write_text(json.dumps({"code": code, "out": stdout.getvalue(),
                                          "err": stderr.getvalue()}))
    done = json.loads(record.read_text())
    return out, subprocess.CompletedProcess(list(TINY_RUN), done["code"], done["out"],
                                            done["err"])
