"""Does the same suite give the same verdicts when it is run again on the same machine?

Runs a named suite several times (default: ``examples`` three times, with the default repeats)
and prints each verdict's ratio and the interval it states (the 95 % rerun interval) in every
run, then two figures:

- flips: verdicts that are significant in one run whose rerun's point estimate lies outside
  that run's interval, or whose rerun is significant the other way (every ordered pair of runs);
- coverage: the share of the reruns' point estimates (runs 2…N) inside the first run's
  interval.

Targets: 0 flips, coverage ≥ 90 %. Run it alone on the machine: anything else running moves the
figures it is meant to judge. Usage:
``python benchmarks/reproducibility.py [--suite NAME] [--runs N] [--repeats R] [--budget S]
[--keep DIR]``; ``--judge DIR`` judges the runs kept in DIR again without measuring.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path

from twinbench.harness.runner import SUITES, RunSettings, run, suite_budget, suite_selection
from twinbench.report.verdict import Verdict, verdicts_for_run
from twinbench.store import DB_NAME, ResultStore

Key = tuple[str, str, str, str]


def judged(out: Path, run_id: int) -> dict[Key, Verdict]:
    """The verdicts of a stored run that carry a ratio, by what they compare."""
    with ResultStore(out / DB_NAME) as store:
        found = verdicts_for_run(store.cells(run_id), store.parity(run_id))
    return {(v.workload, v.size, v.phase, v.comparison): v for v in found if v.ratio}


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
    parser.add_argument("--budget", type=float, help="seconds per cell (default: the suite's)")
    parser.add_argument("--keep", type=Path, help="store the runs in this directory")
    parser.add_argument("--judge", type=Path, help="measure nothing: judge the runs stored here")
    args = parser.parse_args()
    runs: list[dict[Key, Verdict]] = []
    budget = suite_budget(args.suite) if args.budget is None else args.budget
    if args.judge is not None:  # judge stored runs again (e.g. after a change to the statistics)
        with ResultStore(args.judge / DB_NAME) as store:
            run_ids = [r.id for r in store.runs() if r.status == "finished"]
        runs = [judged(args.judge, run_id) for run_id in run_ids]
        print(f"{len(runs)} finished runs stored in {args.judge}")
    else:
        workloads, size = suite_selection(args.suite)
        with contextlib.ExitStack() as stack:
            out = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory()))
            settings = RunSettings(workloads=workloads, sizes=(size,), repeats=args.repeats,
                                   budget=budget, out=out)  # fmt: skip
            for i in range(args.runs):
                started = time.monotonic()
                runs.append(judged(out, run(settings)))
                seconds = time.monotonic() - started
                print(f"run {i + 1}: {len(runs[-1])} verdicts in {seconds:.0f} s", flush=True)
    keys = sorted(set.intersection(*(set(r) for r in runs)))
    flips = covered = reruns = 0
    print(
        f"\n{'workload/size phase comparison':<46} "
        + " ".join(f"{'run ' + str(i + 1) + ' ratio [interval]':>26}" for i in range(len(runs)))
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
        f"\n{args.judge or args.suite}, {len(runs)} runs, repeats {args.repeats}, "
        f"budget {budget} s: "
        f"{flips} flips among {len(keys)} verdicts (target 0); coverage {coverage:.0%} of "
        f"{reruns} rerun estimates inside the first run's interval (target ≥ 90%) -> "
        f"{'OK' if flips == 0 and coverage >= 0.9 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
