"""The fault campaign: every planted fault against the real ``twinbench`` command.

    python benchmarks/faults.py            # every case
    python benchmarks/faults.py -k parity  # the cases whose name holds "parity"

Each case runs ``python -m twinbench ...`` in a subprocess, in a fresh temporary folder, and
checks what a user must see: the exit code, a phrase, no traceback, files left as they were.
The table lists case, expected, observed and whether the expectation holds. Faulty workloads
are copies of the ln_gelu fixture with one edit (``tests/fixtures/faulty/input_cases.py``).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "faulty"))
from input_cases import make  # noqa: E402

QUICK_RUN = (
    "--size",
    "tiny",
    "--mode",
    "torch-eager",
    "--mode",
    "jax-jit",
    "--budget",
    "0.2",
    "--repeats",
    "1",
)


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    def line(self) -> str:
        """The last line of stderr (else stdout): what a user reads first."""
        lines = (self.err.strip() or self.out.strip()).splitlines()
        return lines[-1][:100] if lines else ""


def twinbench(*args: object, cwd: Path, timeout: float = 600) -> Outcome:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["COLUMNS"] = "250"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "twinbench", *map(str, args)],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return Outcome(-999, "", f"no exit within {timeout:.0f} s")
    return Outcome(done.returncode, done.stdout, done.stderr)


@dataclass
class Case:
    name: str
    expected: str
    act: Callable[[Path], tuple[Outcome, bool]]  # (what happened, whether it holds)


def _parity_fails(kind: str, phrase: str, *extra: str) -> Case:
    def act(tmp: Path) -> tuple[Outcome, bool]:
        got = twinbench(
            "parity", "xor", "--workload-file", make(kind, tmp), "--steps", "2", *extra, cwd=tmp
        )
        holds = (
            got.code == 1
            and phrase in got.out
            and "│ xor" in got.out
            and "Traceback" not in got.text
        )
        failure = [line for line in got.out.splitlines() if line.startswith("ln_gelu (tiny):")]
        return Outcome(got.code, got.out, "\n".join(failure) or got.err), holds

    return Case(f"parity: {kind}", f"exit 1, '{phrase}', xor still checked", act)


def _one_line(name: str, argv: Callable[[Path], list[object]], phrase: str) -> Case:
    def act(tmp: Path) -> tuple[Outcome, bool]:
        got = twinbench(*argv(tmp), cwd=tmp)
        lines = got.err.strip().splitlines()
        holds = got.code == 2 and len(lines) == 1 and phrase in lines[0] and not got.out.strip()
        return got, holds

    return Case(name, f"exit 2, one line with '{phrase}'", act)


def _loading(kind: str, phrase: str, command: str = "parity") -> Case:
    return _one_line(
        f"{command}: {kind}", lambda t: [command, "--workload-file", make(kind, t)], phrase
    )


def _duplicates(tmp: Path) -> list[object]:
    return [
        "parity",
        "--workload-file",
        make("plain", tmp / "a"),
        "--workload-file",
        make("plain", tmp / "b"),
    ]


def _run_named(kind: str) -> Case:
    def act(tmp: Path) -> tuple[Outcome, bool]:
        got = twinbench(
            "run", "--workload-file", make(kind, tmp), *QUICK_RUN, "--out", "o", cwd=tmp
        )
        markdown = tmp / "o" / "report-run1.md"
        holds = (
            got.code == 0
            and markdown.is_file()
            and (tmp / "o" / "report-run1.html").is_file()
            and "<script>" not in markdown.read_text()
        )
        return got, holds

    return Case(f"run: {kind}", "exit 0, md and html written, no raw <script>", act)


def _store(results: Path, cells: int = 2, *, finish: bool = True) -> None:
    from twinbench.store import DB_NAME, CellRecord, ResultStore

    with ResultStore(results / DB_NAME) as store:
        run_id = store.start_run(environment={}, settings={})
        for mode in ("torch-eager", "jax-jit")[:cells]:
            metrics = {
                "median_s": 0.01,
                "ci_low_s": 0.009,
                "ci_high_s": 0.011,
                "time_to_first_step_s": 0.5,
                "converged": True,
                "n_samples": 3,
            }
            store.record_cell(
                run_id,
                CellRecord(
                    "mlp",
                    "tiny",
                    mode.split("-")[0],
                    mode,
                    "train",
                    "float32",
                    "cpu",
                    "ok",
                    metrics=metrics,
                    samples=[0.009, 0.01, 0.011],
                ),
            )
        if finish:
            store.finish_run(run_id, status="finished")


def _empty_database(tmp: Path) -> tuple[Outcome, bool]:
    (tmp / "r").mkdir()
    (tmp / "r" / "results.sqlite").touch()
    got = twinbench("report", "--results", "r", cwd=tmp)
    left = sorted(p.name for p in (tmp / "r").iterdir())
    holds = got.code == 2 and "is empty" in got.err and left == ["results.sqlite"]
    return got, holds and (tmp / "r" / "results.sqlite").stat().st_size == 0


def _malformed_metrics(tmp: Path) -> tuple[Outcome, bool]:
    _store(tmp / "r")
    with sqlite3.connect(tmp / "r" / "results.sqlite") as conn:
        conn.execute("UPDATE cells SET metrics_json = '{oops' WHERE id = 2")
    got = twinbench("report", "--results", "r", "--format", "terminal", cwd=tmp)
    return got, got.code == 0 and "stored metrics unreadable (cells row id 2)" in got.out


def _abandoned(tmp: Path) -> tuple[Outcome, bool]:
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "from faults import _store; from pathlib import Path; "
        "_store(Path('r'), finish=False)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp, check=True)
    got = twinbench("report", "--results", "r", "--format", "terminal", cwd=tmp)
    return got, got.code == 0 and "(abandoned)" in got.out


def _read_only_media(tmp: Path) -> tuple[Outcome, bool]:
    media = tmp / "media"
    media.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "none", str(media)]).returncode != 0:
        return Outcome(0, "", "skipped: cannot mount (needs root)"), True
    try:
        _store(media)
        subprocess.run(["mount", "-o", "remount,ro", str(media)], check=True)
        got = twinbench("report", "--results", media, "--format", "terminal", cwd=tmp)
        return got, got.code == 0 and "twinbench run 1" in got.out
    finally:
        subprocess.run(["umount", str(media)])


def _numeric(command: str, *args: str) -> Case:
    words = command.split() + list(args)
    value = args[-1]

    def argv(tmp: Path) -> list[object]:
        if words[0] in ("report", "compare"):
            _store(tmp / "r")
            _store(tmp / "r")
            return [*words, "--results", "r"]
        return words if words[0] == "parity" else [*words, "--out", "o"]

    return _one_line(f"{command} {' '.join(args)}", argv, value)


CASES: list[Case] = [
    # --- parity isolated per workload
    _parity_fails("forward_exit0", "worker exited with status 0"),
    _parity_fails("forward_os_exit3", "worker exited with status 3"),
    _parity_fails("forward_segfault", "SIGSEGV"),
    _parity_fails("forward_self_kill", "SIGKILL"),
    _parity_fails("build_hangs", "parity check timeout", "--timeout", "20"),
    _parity_fails("build_raises", "RuntimeError: build broken on purpose"),
    _parity_fails("data_raises", "RuntimeError: no data"),
    _parity_fails("one_batch", "parity needs 2"),
    # --- loading workload files
    _loading("workload_exit0", "SystemExit"),
    _loading("workload_exit0", "SystemExit", "list"),
    _loading("workload_exit0", "SystemExit", "run"),
    _one_line("parity: two files, one name", _duplicates, "both define a workload named"),
    _loading("builtin_name", "the name of a built-in workload"),
    _loading("slash_name", "'a/b'"),
    _loading("empty_name", "workload name ''"),
    _loading("newline_name", "'two\\nlines'"),
    _loading("garbage_sizes", "size 'tiny' (int) is invalid"),
    # --- names in tables and files
    _run_named("markup_name"),
    _run_named("long_name"),
    # --- numbers and run ids
    *(
        _numeric("run", flag, value)
        for flag, value in (
            ("--budget", "nan"),
            ("--budget", "inf"),
            ("--timeout", "inf"),
            ("--repeats", "999"),
            ("--threads", "999"),
            ("--seed", "-1"),
        )
    ),
    _numeric("parity xor", "--seed", "-1"),
    _numeric("parity xor", "--timeout", "inf"),
    _numeric("compare 1 2", "--threshold", "inf"),
    _numeric("optim", "--seed", "-1"),
    _numeric("autodiff", "--threads", "999"),
    _numeric("parallel", "--threads", "999"),
    _numeric("parallel", "--timeout", "nan"),
    _numeric("report", "²"),
    _numeric("report", "٣"),
    # --- databases
    Case("report: 0-byte results.sqlite", "exit 2 'is empty', file left 0 bytes", _empty_database),
    Case("report: one malformed metrics_json", "exit 0, the bad row named", _malformed_metrics),
    Case("report: run of a dead process", "shown as (abandoned)", _abandoned),
    Case("report: database on read-only media", "exit 0, run shown", _read_only_media),
]

# --- the harness engineer's cases (forged protocol lines, lingering processes, SIGTERM) ------
# Append Case(name, expected, act) objects here; act(tmp) returns (Outcome, holds).
HARNESS_CASES: list[Case] = []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="only the cases whose name holds this text")
    selected = [c for c in CASES + HARNESS_CASES if parser.parse_args().k in c.name]
    rows = []
    for case in selected:
        with tempfile.TemporaryDirectory(prefix="twinbench-fault-") as folder:
            got, holds = case.act(Path(folder))
        observed = f"exit {got.code}: {got.line()}"
        rows.append((case.name, case.expected, observed, "yes" if holds else "NO"))
        print(f"{rows[-1][3]:>3}  {case.name}", file=sys.stderr, flush=True)
    widths = [
        max(len(r[i]) for r in rows + [("case", "expected", "observed", "holds")]) for i in range(4)
    ]
    for row in [("case", "expected", "observed", "holds"), *rows]:
        print(" | ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)))
    return 0 if all(r[3] == "yes" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
