"""Does twinbench measure what an independent stopwatch measures?

Times the ``mlp`` small train step twice per framework: once through ``twinbench run``
(subprocess per cell, blocked timing, interleaved rounds) and once independently —
PyTorch with ``torch.utils.benchmark.Timer.blocked_autorange``, JAX with a plain loop over the
``nnx.jit`` train step from the Flax tutorials and ``block_until_ready`` after every step. Both
sides use the same thread budget. Prints both medians and their ratio; the target is agreement
within 5 %. Usage: ``python benchmarks/harness_accuracy.py [--budget SECONDS]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from twinbench.harness.environment import thread_environment, usable_cores
from twinbench.harness.runner import RunSettings, run
from twinbench.store import DB_NAME, ResultStore

INDEPENDENT_TORCH = """
import json, torch
from torch.utils.benchmark import Timer
from twinbench.registry import builtin
workload = builtin("mlp"); size = workload.size("small"); twin = workload.twin("torch")
torch.set_num_threads({threads})
model = twin.build(size.config)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
raw = next(workload.batches(size, 0))
batch = {{"x": torch.from_numpy(raw["x"]), "y": torch.from_numpy(raw["y"]).long()}}
def step():
    optimizer.zero_grad(set_to_none=True)
    loss = twin.loss_fn(model, batch)
    loss.backward()
    optimizer.step()
for _ in range(20):
    step()
timer = Timer("step()", globals={{"step": step}}, num_threads={threads})
print(json.dumps(timer.blocked_autorange(min_run_time={seconds}).median))
"""

INDEPENDENT_JAX = """
import json, time
import jax, jax.numpy as jnp, numpy as np, optax
from flax import nnx
from twinbench.registry import builtin
workload = builtin("mlp"); size = workload.size("small"); twin = workload.twin("jax")
model = twin.build(size.config)
optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
batch = {{k: jnp.asarray(v) for k, v in next(workload.batches(size, 0)).items()}}
@nnx.jit
def step(model, optimizer, batch):
    loss, grads = nnx.value_and_grad(twin.loss_fn)(model, batch)
    optimizer.update(model, grads)
    return loss
for _ in range(20):
    step(model, optimizer, batch).block_until_ready()
times = []
end = time.perf_counter() + {seconds}
while time.perf_counter() < end:
    start = time.perf_counter()
    step(model, optimizer, batch).block_until_ready()
    times.append(time.perf_counter() - start)
print(json.dumps(float(np.median(times))))
"""


def independent(script: str, threads: int, seconds: float) -> float:
    env = {**__import__("os").environ, **thread_environment(threads)}
    done = subprocess.run([sys.executable, "-c", script.format(threads=threads, seconds=seconds)],
                          capture_output=True, text=True, env=env, check=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=10.0)
    args = parser.parse_args()
    threads = usable_cores()
    with tempfile.TemporaryDirectory() as out:
        settings = RunSettings(workloads=("mlp",), sizes=("small",), budget=args.budget,
                               modes=("torch-eager", "jax-jit"), threads=threads, out=Path(out))
        run_id = run(settings)
        with ResultStore(Path(out) / DB_NAME) as store:
            ours = {c.mode: c.metrics["median_s"] for c in store.cells(run_id)}
    theirs = {"torch-eager": independent(INDEPENDENT_TORCH, threads, args.budget),
              "jax-jit": independent(INDEPENDENT_JAX, threads, args.budget)}
    print(f"mlp small train step, {threads} threads")
    print(f"{'mode':<12} {'twinbench ms':>13} {'independent ms':>15} {'ratio':>7}")
    worst = 0.0
    for mode in ("torch-eager", "jax-jit"):
        ratio = ours[mode] / theirs[mode]
        worst = max(worst, abs(ratio - 1))
        print(f"{mode:<12} {ours[mode] * 1e3:>13.3f} {theirs[mode] * 1e3:>15.3f} {ratio:>7.3f}")
    print(f"largest disagreement {worst:.1%} (target: within 5%) -> "
          f"{'OK' if worst <= 0.05 else 'MISSED'}")


if __name__ == "__main__":
    main()
