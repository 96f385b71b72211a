"""``lstm`` — a stacked LSTM forecasting the next steps of noisy sums of sines.

Input: a window of ``seq_len`` steps of ``features`` channels; target: the next ``horizon`` clean
values of channel 0 (see `twinbench.workloads._timeseries`); the head reads the top layer's last
hidden state; mean squared error.
"""

from twinbench.workloads._timeseries import forecasting_workload

WORKLOAD = forecasting_workload(__name__, cell="LSTM", gates=4)
