"""Does the same measurement give the same verdict twice?

Runs the tiny suite twice (all four modes unless ``--mode`` narrows it) and compares the
verdicts cell group by cell group. A flip is a comparison whose CI excludes 1 in both runs but
names a different winner; a comparison significant in one run only is counted apart ("wavers").
Target: no flips.
Usage: ``python benchmarks/reproducibility.py [--budget SECONDS] [--mode MODE ...]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from twinbench.harness.runner import MODES, RunSettings, run
from twinbench.report.verdict import Verdict, verdicts_for_run
from twinbench.store import DB_NAME, ResultStore


def verdicts(out: Path, settings: RunSettings) -> dict[tuple[str, ...], Verdict]:
    run_id = run(settings)
    with ResultStore(out / DB_NAME) as store:
        found = verdicts_for_run(store.cells(run_id), store.parity(run_id))
    return {(v.workload, v.size, v.phase, v.comparison): v for v in found if v.ratio}


def winner(verdict: Verdict) -> str:
    assert verdict.ratio is not None
    if not verdict.ratio.significant:
        return "none"
    return "jax" if verdict.ratio.ratio > 1 else "torch"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=3.0)
    parser.add_argument("--mode", action="append", choices=MODES)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        settings = RunSettings(sizes=("tiny",), modes=tuple(args.mode or MODES),
                               budget=args.budget, out=Path(out))
        first, second = verdicts(Path(out), settings), verdicts(Path(out), settings)
    flips = wavers = significant = 0
    print(f"{'workload/size phase comparison':<42} {'run 1':>14} {'run 2':>14}  flip")
    for key in sorted(first.keys() & second.keys()):
        a, b = first[key], second[key]
        assert a.ratio is not None and b.ratio is not None
        both = a.ratio.significant and b.ratio.significant
        flip = both and winner(a) != winner(b)
        significant += both
        flips += flip
        wavers += a.ratio.significant != b.ratio.significant
        label = f"{key[0]}/{key[1]} {key[2]} {key[3]}"
        print(f"{label:<42} {a.ratio.ratio:>8.2f} ({winner(a):>5}) {b.ratio.ratio:>8.2f} "
              f"({winner(b):>5})  {'FLIP' if flip else ''}")
    print(f"{flips} flips among {significant} comparisons significant in both runs "
          f"(target: 0) -> {'OK' if flips == 0 else 'MISSED'}; "
          f"{wavers} significant in one run only")


if __name__ == "__main__":
    main()
