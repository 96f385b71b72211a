"""``linreg`` — linear regression y = Xw + b + noise, trained by full-batch gradient descent.

The data set is drawn once from the seed (X ~ N(0, 1), true w ~ N(0, 1), b = 0.5, noise σ = 0.1)
and every step sees all of it.
"""

from collections.abc import Iterator

import numpy as np

from twinbench.spec import Batch, Size, package_workload, sgd_and_adam

SIZES = {
    "tiny": Size("tiny", {"features": 1}, batch_size=64),
    "small": Size("small", {"features": 256}, batch_size=8192),
    "full": Size("full", {"features": 1024}, batch_size=65536),
}


def data(size: Size, rng: np.random.Generator) -> Iterator[Batch]:
    """The same full batch, forever: full-batch gradient descent."""
    n, d = size.batch_size, size.config["features"]
    x = rng.standard_normal((n, d))
    w = rng.standard_normal((d, 1))
    y = x @ w + 0.5 + 0.1 * rng.standard_normal((n, 1))
    batch = {"x": x.astype(np.float32), "y": y.astype(np.float32)}
    while True:
        yield batch


WORKLOAD = package_workload(
    __name__,
    description="Linear regression y = Xw + b + noise, full-batch, mean squared error",
    loss="mse",
    optimizers=sgd_and_adam(sgd_lr=0.02, adam_lr=0.05),
    train_optimizer="sgd",
)
