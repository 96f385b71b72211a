"""XOR, a binary classifier of four points, trained in both frameworks.

Three things a first attempt tends to get wrong:

* a linear model (``nn.Linear(2, 1)`` then a sigmoid) cannot learn XOR, which is not linearly
  separable: no amount of training gets more than 3 of the 4 points, so the twins add a tanh
  hidden layer;
* ``jnp.sigmoid`` does not exist (it is ``jax.nn.sigmoid``);
* ``nn.BCELoss`` on the integer tensors ``torch.tensor([[0], [1], [1], [0]])`` fails: the labels
  must be floats. The twins take float labels and use BCE on the logits, the stable form.

Both twins start from one canonical init and train with Adam on the four points. Exits non-zero
unless both classify all four correctly.
"""

import sys
from itertools import islice

import twinbench
from twinbench.backends import initial_weights, make_runner
from twinbench.spec import OptimizerConfig

STEPS = 300
ADAM = OptimizerConfig("adam", lr=0.05)


def main() -> int:
    workload = twinbench.builtin("xor")
    size = workload.size("tiny")  # the four points, a 2-8-1 network
    weights = initial_weights(workload, size, seed=0)
    batches = list(islice(workload.batches(size, seed=0), STEPS))
    points = batches[0]
    all_correct = True
    print(f"xor: {STEPS} Adam steps (lr {ADAM.lr}) from the same init")
    for framework in ("torch", "jax"):
        runner = make_runner(framework, workload, size)
        runner.load(weights)
        losses = runner.train_curve(batches, ADAM)
        final_loss, _ = runner.loss_and_grads(points)
        predicted = runner.outputs(points) > 0.0  # sigmoid(logit) > 0.5
        accuracy = 100.0 * float((predicted == (points["y"] > 0.5)).mean())
        all_correct &= accuracy == 100.0
        print(f"{framework:<6} initial loss {losses[0]:.6f}  final loss {final_loss:.6f}  "
              f"accuracy {accuracy:.0f}%")
    print("target met: 100% accuracy in both" if all_correct else "target missed")
    return 0 if all_correct else 1


if __name__ == "__main__":
    sys.exit(main())
