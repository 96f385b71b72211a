"""Strict settings for every test, and fixtures shared by the parity, canonical and CLI tests.

Plain helpers (the subprocess runner, synthetic cells and stores) live in ``helpers.py``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

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
def cli(monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``cli(*args)``: the ``twinbench`` command in this process (see ``helpers.run_main``)."""

    def call(*args: str | Path, columns: int | None = None) -> Result:
        return run_main(monkeypatch, capsys, *args, columns=columns)

    return call
