"""``lstm`` — a stacked LSTM forecasting the next steps of noisy sums of sines.

Input: a window of ``seq_len`` steps of ``features`` channels; target: the next ``horizon`` clean
values of channel 0 (see `twinbench.workloads._timeseries`); the head reads the top layer's last
hidden state; mean squared error.
"""

from twinbench.spec import OptimizerConfig, WorkloadSpec
from twinbench.workloads._timeseries import data, flop_counter, sizes, validator

__all__ = ["WORKLOAD", "data"]

WORKLOAD = WorkloadSpec(
    name="lstm",
    description="stacked LSTM forecasting noisy sums of sines (last hidden state -> Linear)",
    sizes=sizes(),
    data=data,
    loss="mse",
    twins={
        "torch": "twinbench.workloads.lstm.torch_twin",
        "jax": "twinbench.workloads.lstm.jax_twin",
    },
    optimizers={
        "sgd": OptimizerConfig("sgd", lr=0.05, momentum=0.9),
        "adam": OptimizerConfig("adam", lr=5e-3),
    },
    flops=flop_counter(gates=4),
    validate=validator("lstm"),
)
