"""``gru`` — the ``lstm`` forecasting task (same sizes, data and loss) with a stacked GRU.

The JAX twin writes its own GRU cell: ``nnx.GRUCell`` has no hidden bias, so it cannot hold
torch's ``b_hn`` inside ``r ⊙ (W_hn h + b_hn)``.
"""

from twinbench.spec import OptimizerConfig, WorkloadSpec
from twinbench.workloads._timeseries import data, flop_counter, sizes, validator

__all__ = ["WORKLOAD", "data"]

WORKLOAD = WorkloadSpec(
    name="gru",
    description="stacked GRU forecasting noisy sums of sines (last hidden state -> Linear)",
    sizes=sizes(),
    data=data,
    loss="mse",
    twins={
        "torch": "twinbench.workloads.gru.torch_twin",
        "jax": "twinbench.workloads.gru.jax_twin",
    },
    optimizers={
        "sgd": OptimizerConfig("sgd", lr=0.05, momentum=0.9),
        "adam": OptimizerConfig("adam", lr=5e-3),
    },
    flops=flop_counter(gates=3),
    validate=validator("gru"),
)
