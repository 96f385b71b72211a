"""``xor`` — a binary classifier of the four XOR points.

XOR is not linearly separable, so a linear model cannot learn it: this is a 2-H-1 network with a
tanh hidden layer and a sigmoid output trained with binary cross-entropy (on the logits, the
numerically stable form). tiny is the four points themselves; small and full add
Gaussian jitter (σ = 0.1) around the four corners, labels unchanged.
"""

from collections.abc import Iterator

import numpy as np

from twinbench.spec import Batch, Size, package_workload, sgd_and_adam

POINTS = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], dtype=np.float32)
LABELS = np.array([[0.0], [1.0], [1.0], [0.0]], dtype=np.float32)

SIZES = {
    "tiny": Size("tiny", {"hidden": 8}, batch_size=4),
    "small": Size("small", {"hidden": 64}, batch_size=4096),
    "full": Size("full", {"hidden": 512}, batch_size=65536),
}


def data(size: Size, rng: np.random.Generator) -> Iterator[Batch]:
    """The four XOR points (tiny), or jittered copies of them."""
    if size.batch_size == len(POINTS):
        while True:
            yield {"x": POINTS, "y": LABELS}
    while True:
        corner = rng.integers(0, len(POINTS), size.batch_size)
        x = POINTS[corner] + 0.1 * rng.standard_normal((size.batch_size, 2))
        yield {"x": x.astype(np.float32), "y": LABELS[corner]}


WORKLOAD = package_workload(
    __name__,
    description="XOR classifier 2-8-1, tanh hidden layer, sigmoid output with BCE",
    loss="binary cross-entropy on logits",
    optimizers=sgd_and_adam(sgd_lr=0.5, adam_lr=0.05),
)
