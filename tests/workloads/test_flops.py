"""Each zoo workload's analytic FLOPs per training step against both frameworks' own counters.

The formulas count matrix products and convolutions (2 FLOPs per multiply-add, backward twice the
forward); `torch.utils.flop_counter` counts the same kinds of operation, XLA's ``cost_analysis()``
counts every operation of the compiled step (elementwise work and the optimizer update too).
Agreeing within 10 % with both shows the formula, and each counter, measure what they claim.
"""

import pytest

from twinbench.backends.jax_timed import JaxBench
from twinbench.backends.torch_timed import TorchBench
from twinbench.registry import ZOO, builtin

TOLERANCE = 0.10
# The size at which each workload is checked: tiny unless elementwise work still matters there.
CHECK_SIZE = {"resnet": "tiny", "bert": "tiny", "gpt": "tiny", "lstm": "tiny", "gru": "tiny"}
COMMON = {"phase": "train", "dtype": "float32", "device": "cpu", "seed": 0, "allow_tf32": False}


@pytest.mark.parametrize("name", ZOO)
def test_analytic_flops_match_both_framework_counters(name):
    workload = builtin(name)
    size = workload.size(CHECK_SIZE[name])
    analytic = workload.flops_per_step(size)
    assert analytic is not None and analytic > 0
    counted = {
        "torch": TorchBench(workload, size, mode="torch-eager", compile_mode="default", **COMMON),
        "xla": JaxBench(workload, size, mode="jax-jit", **COMMON),
    }
    for counter, bench in counted.items():
        flops = bench.flops_per_step()
        assert flops is not None, counter
        assert abs(flops / analytic - 1) <= TOLERANCE, (
            f"{name}/{size.name}: {counter} counts {flops:.4g} FLOPs per step, "
            f"the formula {analytic:.4g} ({flops / analytic:.3f}x)"
        )
