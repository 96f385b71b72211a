"""Each zoo workload's analytic FLOPs per training step against both frameworks' own counters.

The formulas count matrix products and convolutions (2 FLOPs per multiply-add, backward twice the
forward); `torch.utils.flop_counter` counts the same kinds of operation, XLA's ``cost_analysis()``
counts every operation of the compiled step (elementwise work and the optimizer update too).
Agreeing within 10 % with both shows the formula, and each counter, measure what they claim.

XLA counts a loop's body once rather than once per iteration, so for the recurrent twins (their
recurrence is a ``lax.scan``) the harness withholds XLA's figure; the test checks that it does.
"""

import pytest

from twinbench.backends.jax_timed import JaxBench
from twinbench.backends.torch_timed import TorchBench
from twinbench.registry import ZOO, builtin

TOLERANCE = 0.10
# Where each workload is checked: tiny unless elementwise work (counted by XLA only) still
# weighs more than the tolerance there.
CHECK_SIZE = {"resnet": "tiny", "bert": "small", "gpt": "tiny", "lstm": "tiny", "gru": "tiny"}
SCAN_BASED = {"lstm", "gru"}
COMMON = {"phase": "train", "dtype": "float32", "device": "cpu", "seed": 0, "allow_tf32": False}


# resnet's counters take ~35 s (two full traced steps of a conv net), bert's (at small) and gpt's
# tens of seconds: CI's slow step checks them.
SLOW_COUNTERS = {"resnet", "bert", "gpt"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_COUNTERS else n for n in ZOO]
)
def test_analytic_flops_match_both_framework_counters(name):
    workload = builtin(name)
    size = workload.size(CHECK_SIZE[name])
    analytic = workload.flops_per_step(size)
    assert analytic is not None and analytic > 0
    counted = {
        "torch": TorchBench(
            workload, size, mode="torch-eager", compile_mode="default", **COMMON
        ).flops_per_step(),
        "xla": JaxBench(workload, size, mode="jax-jit", **COMMON).flops_per_step(),
    }
    if name in SCAN_BASED:
        assert counted.pop("xla") is None, "XLA's count of a scan must be withheld"
    for counter, flops in counted.items():
        assert flops is not None, counter
        assert abs(flops / analytic - 1) <= TOLERANCE, (
            f"{name}/{size.name}: {counter} counts {flops:.4g} FLOPs per step, "
            f"the formula {analytic:.4g} ({flops / analytic:.3f}x)"
        )
