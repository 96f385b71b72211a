"""Does the same suite give the same verdicts when it is run again on the same machine?

Runs a named suite several times (default: ``examples`` three times, with the default repeats)
and prints each verdict's ratio and 95 % CI in every run, then two figures:

- flips: verdicts that are significant in one run whose rerun's point estimate lies outside
  that run's CI, or whose rerun is significant the other way (every ordered pair of runs);
- coverage: the share of the reruns' point estimates (runs 2…N) inside the first run's CI.

Targets: 0 flips, coverage ≥ 90 %. Run it alone on the machine: anything else running moves the
figures it is meant to judge. Usage:
``python benchmarks/reproducibility.py [--suite NAME] [--runs N] [--repeats R] [--budget S]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from twinbench.harness.runner import SUITES, RunSettings, run, suite_selection
from twinbench.report.verdict import Verdict, verdicts_for_run
from twinbench.store import DB_NAME, ResultStore

Key = tuple[str, str, str, str]


def measure(settings: RunSettings) -> tuple[dict[Key, Verdict], float]:
    started = time.monotonic()
    run_id = run(settings)
    with ResultStore(settings.out / DB_NAME) as store:
        found = verdicts_for_run(store.cells(run_id), store.parity(run_id))
    verdicts = {(v.workload, v.size, v.phase, v.comparison): v for v in found if v.ratio}
    return verdicts, time.monotonic() - started


def flipped(reference: Verdict, rerun: Verdict) -> bool:
    a, b = reference.ratio, rerun.ratio
    assert a is not None and b is not None
    if not a.significant:
        return False
    outside = not a.ci_low <= b.ratio <= a.ci_high
    other_way = b.significant and (a.ratio > 1) != (b.ratio > 1)
    return outside or other_way


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--suite", default="examples", choices=tuple(SUITES))
    parser.add_argument("--runs", type=int, default=3)
    defaults = RunSettings()
    parser.add_argument("--repeats", type=int, default=defaults.repeats)
    parser.add_argument("--budget", type=float, default=defaults.budget)
    args = parser.parse_args()
    workloads, size = suite_selection(args.suite)
    runs: list[dict[Key, Verdict]] = []
    with tempfile.TemporaryDirectory() as out:
        settings = RunSettings(workloads=workloads, sizes=(size,), repeats=args.repeats,
                               budget=args.budget, out=Path(out))  # fmt: skip
        for i in range(args.runs):
            verdicts, seconds = measure(settings)
            runs.append(verdicts)
            print(f"run {i + 1}: {len(verdicts)} verdicts in {seconds:.0f} s", flush=True)
    keys = sorted(set.intersection(*(set(r) for r in runs)))
    flips = covered = reruns = 0
    print(
        f"\n{'workload/size phase comparison':<46} "
        + " ".join(f"{'run ' + str(i + 1) + ' ratio [95% CI]':>26}" for i in range(args.runs))
        + "  flip"
    )
    for key in keys:
        verdicts = [r[key] for r in runs]
        flip = any(flipped(a, b) for a in verdicts for b in verdicts if a is not b)
        flips += flip
        first = verdicts[0].ratio
        assert first is not None
        for rerun in verdicts[1:]:
            assert rerun.ratio is not None
            reruns += 1
            covered += first.ci_low <= rerun.ratio.ratio <= first.ci_high
        cells = " ".join(
            f"{v.ratio.ratio:>8.3f} [{v.ratio.ci_low:.3f}, {v.ratio.ci_high:.3f}]"
            for v in verdicts
            if v.ratio is not None
        )
        print(
            f"{key[0] + '/' + key[1] + ' ' + key[2] + ' ' + key[3]:<46} {cells}  "
            f"{'FLIP' if flip else ''}"
        )
    coverage = covered / reruns if reruns else float("nan")
    print(
        f"\n{args.suite}, {args.runs} runs, repeats {args.repeats}, budget {args.budget} s: "
        f"{flips} flips among {len(keys)} verdicts (target 0); coverage {coverage:.0%} of "
        f"{reruns} rerun estimates inside the first run's CI (target ≥ 90%) -> "
        f"{'OK' if flips == 0 and coverage >= 0.9 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
