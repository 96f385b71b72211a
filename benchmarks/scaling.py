"""Weak and strong scaling of data and tensor parallelism, PyTorch vs JAX, printed as tables.

Runs the parallel suite (`twinbench.parallel.run_parallel_suite`, the code behind
``twinbench parallel``) for N = 1, 2, 4 by default and prints the parity table, then one scaling
row per (implementation, strategy, scaling, N): median step time, throughput, speed-up, efficiency
against one device and, for data parallelism, the communication share (1 − t without the
gradient all-reduce / t). On a CPU the devices are simulated and share its cores, so expect
efficiencies well under 1: the numbers show each framework's parallel overhead.

Usage: ``python benchmarks/scaling.py [--workload mlp] [--size small] [--devices 1,2,4]
[--jax-launch mesh,processes] [--repeats 10] [--block 3] [--out DIR]`` (``--out`` also stores the
run, so ``twinbench report --results DIR`` draws the scaling plot).
"""

from __future__ import annotations

import argparse
import sys
import time

from twinbench.parallel import ParallelSettings, render_markdown, run_parallel_suite, save


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="mlp")
    parser.add_argument("--size", default="small")
    parser.add_argument("--devices", default="1,2,4")
    parser.add_argument("--framework", default="torch,jax")
    parser.add_argument("--strategy", default="dp,tp")
    parser.add_argument("--jax-launch", default="mesh")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--block", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="threads per device")
    parser.add_argument("--out", default=None, help="also store the run in this directory")
    args = parser.parse_args()
    settings = ParallelSettings(
        workload=args.workload,
        size=args.size,
        devices=tuple(int(n) for n in args.devices.split(",")),
        frameworks=tuple(args.framework.split(",")),
        strategies=tuple(args.strategy.split(",")),
        jax_launch=tuple(args.jax_launch.split(",")),
        device=args.device,
        repeats=args.repeats,
        block=args.block,
        threads=args.threads,
    )
    start = time.perf_counter()
    report = run_parallel_suite(settings, progress=lambda line: print(line, file=sys.stderr))
    print(render_markdown(report))
    print(f"({len(report.cells)} launches in {time.perf_counter() - start:.0f} s)")
    if args.out:
        print(f"stored as run {save(report, args.out)} in {args.out}")


if __name__ == "__main__":
    main()
