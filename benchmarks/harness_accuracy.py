"""Does twinbench measure what an independent stopwatch measures?

Times the ``mlp`` small train step per framework twice: through twinbench's own cell worker
(the subprocess, blocked timing and synchronisation that ``twinbench run`` uses) and
independently — PyTorch with ``torch.utils.benchmark.Timer.blocked_autorange``, JAX with a plain
``perf_counter`` loop around the same jitted, buffer-donating train step and ``block_until_ready``
after every step. Neither independent side uses twinbench's timing code. Each side runs in
several processes (a process's median strays from another's by several per cent on a 2-core
machine, more than the harnesses differ), all measured in alternating rounds (twinbench,
independent, twinbench, …) so that drift of a shared machine hits both alike. Prints each side's
median of process medians, their ratio and every process's median; the target is agreement within
5 %. Usage: ``python benchmarks/harness_accuracy.py [--rounds N] [--seconds S] [--processes P]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from twinbench.harness.environment import usable_cores, worker_environment
from twinbench.harness.process import WorkerProcess

INDEPENDENT_TORCH = """
import json, sys, torch
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
print("ready", flush=True)
for line in sys.stdin:
    print(json.dumps(timer.blocked_autorange(min_run_time=float(line)).times), flush=True)
"""

INDEPENDENT_JAX = """
import json, sys, time
import jax, jax.numpy as jnp, optax
from flax import nnx
from twinbench.registry import builtin
workload = builtin("mlp"); size = workload.size("small"); twin = workload.twin("jax")
model = twin.build(size.config)
optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
graphdef, state = nnx.split((model, optimizer))
batch = {{k: jnp.asarray(v) for k, v in next(workload.batches(size, 0)).items()}}
def train_step(state, batch):
    model, optimizer = nnx.merge(graphdef, state)
    loss, grads = nnx.value_and_grad(twin.loss_fn)(model, batch)
    optimizer.update(model, grads)
    return nnx.state((model, optimizer)), loss
step = jax.jit(train_step, donate_argnums=0)
for _ in range(20):
    state, loss = step(state, batch)
    loss.block_until_ready()
print("ready", flush=True)
for line in sys.stdin:
    times, end = [], time.perf_counter() + float(line)
    while time.perf_counter() < end:
        start = time.perf_counter()
        state, loss = step(state, batch)
        loss.block_until_ready()
        times.append(time.perf_counter() - start)
    print(json.dumps(times), flush=True)
"""


class Independent:
    """A long-lived subprocess that times the step on request, without twinbench's harness."""

    def __init__(self, script: str, threads: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script.format(threads=threads)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env={**os.environ, **worker_environment(threads)})
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    def measure(self, seconds: float) -> list[float]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{seconds}\n")
        self.proc.stdin.flush()
        return [float(t) for t in json.loads(self.proc.stdout.readline())]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def minor_faults(pid: int) -> int:
    """Minor page faults of a process so far (Linux; 0 elsewhere): the allocator's cost that
    varies with a process's history, shown beside the times."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[7])
    except OSError:
        return 0


def twinbench_worker(mode: str, threads: int) -> WorkerProcess:
    request = {"kind": "cell", "workload": "mlp", "workload_file": None, "size": "small",
               "mode": mode, "phase": "train", "dtype": "float32", "device": "cpu", "seed": 0,
               "allow_tf32": False, "compile_mode": "default"}
    worker = WorkerProcess(request, threads=threads)
    worker.receive(600, "set_up")
    worker.send({"cmd": "compile"})
    worker.receive(600, "ready")  # set up, compiled, warmed up, block size calibrated
    return worker


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--processes", type=int, default=3)
    args = parser.parse_args()
    threads = usable_cores()
    print(f"mlp small train step, {threads} threads, {args.processes} processes per side, "
          f"{args.rounds} alternating rounds of {args.seconds} s per process")
    print(f"{'mode':<12} {'twinbench ms':>13} {'independent ms':>15} {'ratio':>7}   "
          "process medians ms (twinbench | independent)")
    worst = 0.0
    for mode, script in (("torch-eager", INDEPENDENT_TORCH), ("jax-jit", INDEPENDENT_JAX)):
        ours = [twinbench_worker(mode, threads) for _ in range(args.processes)]
        theirs = [Independent(script, threads) for _ in range(args.processes)]
        our_samples: list[list[float]] = [[] for _ in ours]
        their_samples: list[list[float]] = [[] for _ in theirs]
        faults = [0, 0]  # minor page faults while timing: twinbench's processes, independent's
        for _ in range(args.rounds):  # every process of both sides in turn, round after round
            for i in range(args.processes):
                before = minor_faults(ours[i].proc.pid)
                ours[i].send({"cmd": "measure", "seconds": args.seconds})
                our_samples[i] += ours[i].receive(600, "samples")
                faults[0] += minor_faults(ours[i].proc.pid) - before
                before = minor_faults(theirs[i].proc.pid)
                their_samples[i] += theirs[i].measure(args.seconds)
                faults[1] += minor_faults(theirs[i].proc.pid) - before
        for process in [*ours, *theirs]:
            process.close()
        # The median of the per-process medians: each process counts once, whatever its rate.
        a = statistics.median(statistics.median(g) for g in our_samples)
        b = statistics.median(statistics.median(g) for g in their_samples)
        worst = max(worst, abs(a / b - 1))
        spread = " ".join(f"{statistics.median(g) * 1e3:.3f}" for g in our_samples) + " | " + (
            " ".join(f"{statistics.median(g) * 1e3:.3f}" for g in their_samples))
        print(f"{mode:<12} {a * 1e3:>13.3f} {b * 1e3:>15.3f} {a / b:>7.3f}   {spread}")
        steps = (sum(map(len, our_samples)), sum(map(len, their_samples)))
        print(f"{'':<12} minor page faults per timed sample: twinbench {faults[0] / steps[0]:.1f}, "
              f"independent {faults[1] / steps[1]:.1f}")
    verdict = "OK" if worst <= 0.05 else "MISSED"
    print(f"largest disagreement {worst:.1%} (target: within 5%) -> {verdict}")


if __name__ == "__main__":
    main()
