"""Helpers the zoo's workload tests share."""

import pytest

from twinbench.backends import initial_weights, make_runner


def _loaded_runners(workload, size):
    weights = initial_weights(workload, size, seed=0)
    runners = [make_runner(fw, workload, size) for fw in ("torch", "jax")]
    for runner in runners:
        runner.load(weights)
    return runners


@pytest.fixture
def loaded_runners():
    """``loaded_runners(workload, size)``: the torch and JAX parity runners, loaded with the one
    canonical init."""
    return _loaded_runners


@pytest.fixture
def one_torch_thread():
    """Tiny matmuls gain nothing from a second thread, and lose a lot on a busy machine."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
