"""Parity of the example workloads (linear regression, the MLP, XOR) at the default run's size:
slower, so CI runs it in its own step (pytest -m slow). The zoo's have theirs in tests/workloads."""

import pytest

import twinbench
from twinbench.registry import EXAMPLES


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)  # the zoo's: tests/workloads
def test_twins_agree_at_small_size(name):
    result = twinbench.parity([name], size="small").results[0]
    assert result.passed, result.failures()
    assert {c.name for c in result.checks} == {
        "outputs", "loss", "gradients", "curve[sgd]", "curve[adam]"}  # no running statistics
