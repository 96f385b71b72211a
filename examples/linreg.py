"""Linear regression, trained the same way in both frameworks.

Both twins fit y = wx + b + noise on 64 points — not a single point, which any line through it
fits exactly — with the same optimizer (SGD with momentum) from the same canonical init.

Exits non-zero unless both reach a final loss below a tenth of the initial one.
"""

import sys
from itertools import islice

import twinbench
from twinbench.backends import initial_weights, make_runner

STEPS = 200


def main() -> int:
    workload = twinbench.builtin("linreg")
    size = workload.size("tiny")  # one feature, 64 points, full batch
    config = workload.optimizers[workload.train_optimizer]
    weights = initial_weights(workload, size, seed=0)
    batches = list(islice(workload.batches(size, seed=0), STEPS))
    target_met = True
    print(f"linreg: {STEPS} {config.name} steps (lr {config.lr}, momentum {config.momentum})")
    for framework in ("torch", "jax"):
        runner = make_runner(framework, workload, size)
        runner.load(weights)
        losses = runner.train_curve(batches, config)
        final_loss, _ = runner.loss_and_grads(batches[0])
        fitted = runner.weights()
        target_met &= final_loss < losses[0] / 10
        print(f"{framework:<6} initial loss {losses[0]:.6f}  final loss {final_loss:.6f}  "
              f"w {fitted['linear.kernel'].item():+.4f}  b {fitted['linear.bias'].item():+.4f}")
    print("target met: loss down tenfold in both" if target_met else "target missed")
    return 0 if target_met else 1


if __name__ == "__main__":
    sys.exit(main())
