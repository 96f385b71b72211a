"""Parity at the default run's size: slower, so CI runs it in its own step (pytest -m slow)."""

import pytest

import twinbench
from twinbench.registry import BUILTIN


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILTIN)
def test_twins_agree_at_small_size(name):
    result = twinbench.parity([name], size="small").results[0]
    assert result.passed, result.failures()
    assert {c.name for c in result.checks} == {
        "outputs", "loss", "gradients", "curve[sgd]", "curve[adam]"}
