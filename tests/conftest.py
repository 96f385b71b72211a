"""Strict settings for every test, and fixtures shared by the parity, canonical and CLI tests."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

if importlib.util.find_spec("jax") is not None:  # strict as equinox: no silent broadcasting
    import jax

    jax.config.update("jax_numpy_rank_promotion", "raise")

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

