"""The 1-10-1 regression MLP (ReLU), trained the same way in both frameworks.

Both twins fit y = sin(3x) + noise on fresh batches of 32 points with Adam, from the same
canonical init and the same data stream, and are judged on a batch neither trained on.

Exits non-zero unless both reach a final loss below a tenth of the initial one.
"""

import sys
from itertools import islice

import twinbench
from twinbench.backends import initial_weights, make_runner
from twinbench.spec import OptimizerConfig

STEPS = 1000
ADAM = OptimizerConfig("adam", lr=0.01)


def main() -> int:
    workload = twinbench.builtin("mlp")
    size = workload.size("tiny")  # 1-10-1, regression on a noisy sine
    weights = initial_weights(workload, size, seed=0)
    batches = list(islice(workload.batches(size, seed=0), STEPS))
    held_out = next(workload.batches(size, seed=1))  # points neither twin trained on
    target_met = True
    print(f"mlp: {STEPS} Adam steps (lr {ADAM.lr}) from the same init")
    for framework in ("torch", "jax"):
        runner = make_runner(framework, workload, size)
        runner.load(weights)
        initial_loss, _ = runner.loss_and_grads(held_out)
        runner.train_curve(batches, ADAM)
        final_loss, _ = runner.loss_and_grads(held_out)
        target_met &= final_loss < initial_loss / 10
        print(f"{framework:<6} initial loss {initial_loss:.6f}  final loss {final_loss:.6f}  "
              "(held-out batch)")
    print("target met: loss down tenfold in both" if target_met else "target missed")
    return 0 if target_met else 1


if __name__ == "__main__":
    sys.exit(main())
