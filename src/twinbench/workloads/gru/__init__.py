"""``gru`` — the ``lstm`` forecasting task (same sizes, data and loss) with a stacked GRU.

The JAX twin writes its own GRU cell: ``nnx.GRUCell`` has no hidden bias, so it cannot hold
torch's ``b_hn`` inside ``r ⊙ (W_hn h + b_hn)``.
"""

from twinbench.workloads._timeseries import forecasting_workload

WORKLOAD = forecasting_workload(__name__, cell="GRU", gates=3)
