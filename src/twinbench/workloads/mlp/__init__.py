"""``mlp`` — a ReLU multilayer perceptron: a 1-10-1 regression MLP, then MNIST-sized classifiers.

tiny is the 1-10-1 regression MLP fitting y = sin(3x) + noise with mean squared error;
small and full classify synthetic 784-pixel "digits" (ten fixed prototypes plus noise) with
cross-entropy.
"""

from collections.abc import Iterator

import numpy as np

from twinbench.spec import Batch, Size, package_workload

SIZES = {
    "tiny": Size("tiny", {"features": (1, 10, 1), "task": "regress"}, batch_size=32),
    "small": Size("small", {"features": (784, 512, 512, 10), "task": "classify"}, batch_size=256),
    "full": Size("full", {"features": (784, 4096, 4096, 10), "task": "classify"}, batch_size=1024),
}


def data(size: Size, rng: np.random.Generator) -> Iterator[Batch]:
    """Regression on a noisy sine, or classification of noisy class prototypes."""
    features = size.config["features"]
    n, d_in, d_out = size.batch_size, features[0], features[-1]
    if size.config["task"] == "regress":
        while True:
            x = rng.uniform(-1.0, 1.0, (n, d_in))
            y = np.sin(3.0 * x) + 0.05 * rng.standard_normal((n, d_out))
            yield {"x": x.astype(np.float32), "y": y.astype(np.float32)}
    prototypes = rng.standard_normal((d_out, d_in))
    while True:
        labels = rng.integers(0, d_out, n)
        x = prototypes[labels] + 2.0 * rng.standard_normal((n, d_in))
        yield {"x": x.astype(np.float32), "y": labels.astype(np.int32)}


WORKLOAD = package_workload(
    __name__,
    description="ReLU MLP: a 1-10-1 regression MLP (tiny), a 784-512-512-10 classifier",
    loss="mse (tiny), cross-entropy (small, full)",
)
