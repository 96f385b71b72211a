"""What the tests share: the ``twinbench`` command (in a fresh interpreter or in this process),
synthetic cells and stores. ``from helpers import ...`` (the pytest config puts ``tests/`` on
``sys.path``).

A fresh interpreter costs seconds (it imports typer, rich and often a framework); in-process
calls cost milliseconds and count towards coverage. Exit codes and one-line errors are the same
either way, since ``run_main`` calls the console script's ``main``; keep subprocesses for what
only a real process shows (the console entry point itself, signals, import side effects).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from twinbench.store import DB_NAME, CellRecord, ResultStore

Result = subprocess.CompletedProcess[str]

# --- the command ---------------------------------------------------------------------------------


def start(*args: str | Path, columns: int | None = None,
          cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start ``python -m twinbench ARGS`` without waiting; ``columns`` sets rich's width.

    Without ``columns`` the output is what a pipe gets (no COLUMNS from the caller's terminal).
    """
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    if columns:
        env["COLUMNS"] = str(columns)
    return subprocess.Popen([sys.executable, "-m", "twinbench", *map(str, args)], env=env,
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str], timeout: float = 600) -> Result:
    """Wait for a started command; a hang fails the test instead of blocking the session."""
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        process.kill()  # no-op once it has exited; never leave one behind on a timeout
        process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def twinbench(*args: str | Path, columns: int | None = None, cwd: Path | None = None,
              timeout: float = 600) -> Result:
    """``python -m twinbench ARGS`` in a fresh interpreter, as a user's shell runs it."""
    return finish(start(*args, columns=columns, cwd=cwd), timeout=timeout)


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             *args: str | Path, columns: int | None = None) -> Result:
    """Call ``twinbench.cli.main`` in this process as the console script would.

    The output is captured, so the CLI's consoles write as to a pipe, like ``twinbench(...)``;
    ``columns`` sets their width (the consoles are made once, at import: COLUMNS alone would
    not reach them).
    """
    from twinbench.cli import base as consoles
    from twinbench.cli import main

    argv = [str(a) for a in args]
    if columns:
        monkeypatch.setenv("COLUMNS", str(columns))
        for console in (consoles.console, consoles.err_console):
            monkeypatch.setattr(console, "width", columns)
    monkeypatch.setattr(sys, "argv", ["twinbench", *argv])
    capsys.readouterr()  # what the test printed before is not the command's output
    code = 0
    try:
        main()
    except SystemExit as exit_:  # main always ends this way; a str code means exit 1
        code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, out, err)


def assert_one_line_error(result: Result, *fragments: str, code: int = 2) -> str:
    """Exit ``code``, no traceback, one line on stderr holding every fragment; returns it."""
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


# --- synthetic results ---------------------------------------------------------------------------

ENVIRONMENT: dict[str, Any] = {
    "cpu_model": "Test CPU",
    "usable_cores": 2,
    "gpus": [],
    "python": "3.11.7",
    "versions": {"torch": "2.13.0+cpu", "jax": "0.10.2"},
}
SETTINGS: dict[str, Any] = {"threads": 2, "dtype": "float32", "device": "cpu",
                            "allow_tf32": False}


def framework_of(mode: str) -> str:
    return "torch" if mode.startswith("torch") else "jax"


def sample_metrics(samples: Sequence[float]) -> dict[str, Any]:
    """The timing metrics a run stores for these samples (median, min-max as the CI, IQR)."""
    if not samples:
        return {"median_s": None, "n_samples": 0}
    q25, q75 = np.percentile(samples, [25, 75])
    return {
        "median_s": float(np.median(samples)),
        "ci_low_s": float(min(samples)),
        "ci_high_s": float(max(samples)),
        "iqr_s": float(q75 - q25),
        "n_samples": len(samples),
    }


def cell(mode: str = "torch-eager", samples: Iterable[float] = (), *, status: str = "ok",
         metrics: dict[str, Any] | None = None, **fields: Any) -> CellRecord:
    """A synthetic `CellRecord`: mlp, tiny, train, float32, cpu unless ``fields`` say otherwise.

    ``metrics`` defaults to `sample_metrics` for an ``ok`` cell and to nothing for a failed one;
    a failed cell gets an error message unless ``error`` is given.
    """
    values = [float(s) for s in samples]
    if metrics is None:
        metrics = sample_metrics(values) if status == "ok" else {}
    record: dict[str, Any] = {
        "workload": "mlp",
        "size": "tiny",
        "framework": framework_of(mode),
        "mode": mode,
        "phase": "train",
        "dtype": "float32",
        "device": "cpu",
        "status": status,
        "error": None if status == "ok" else "RuntimeError: the twin raised",
        "metrics": metrics,
        "samples": values,
    }
    record.update(fields)
    return CellRecord(**record)


def noisy(center: float, n: int, seed: int, noise: float = 0.01) -> np.ndarray:
    """``n`` samples around ``center`` with a relative normal noise of ``noise``."""
    return center * (1.0 + noise * np.random.default_rng(seed).standard_normal(n))


def add_run(results: Path, cells: Iterable[CellRecord], *,
            environment: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
            parity: Iterable[dict[str, Any]] = (), info: dict[str, Any] | None = None,
            status: str | None = "finished") -> int:
    """Store one run in ``results`` (a directory); ``parity``: keyword dicts of record_parity.

    ``status=None`` leaves the run running. Returns the run id.
    """
    with ResultStore(results / DB_NAME) as store:
        run_id = store.start_run(environment=ENVIRONMENT if environment is None else environment,
                                 settings=SETTINGS if settings is None else settings)
        for key, value in (info or {}).items():
            store.set_run_info(run_id, key, value)
        for check in parity:
            store.record_parity(run_id, **check)
        for one in cells:
            store.record_cell(run_id, one)
        if status is not None:
            store.finish_run(run_id, status=status)
    return run_id


# --- planted workloads: a linear model whose PyTorch twin misbehaves when built ------------------

_PLANTED_WORKLOAD = '''
from pathlib import Path

import numpy as np

from twinbench.spec import Size, WorkloadSpec


def data(size, rng):
    while True:
        x = rng.standard_normal((8, 2)).astype(np.float32)
        yield {{"x": x, "y": x.sum(axis=1, keepdims=True)}}


WORKLOAD = WorkloadSpec(
    name="{name}",
    description="{description}",
    sizes={{"tiny": Size("tiny", {{}}, batch_size=8)}},
    data=data,
    loss="mse",
    twins={{"torch": "torch_twin.py", "jax": "jax_twin.py"}},
    root=Path(__file__).parent,
)
'''

LINEAR_JAX_TWIN = '''
import jax.numpy as jnp
from flax import nnx


def build(config):
    return nnx.Linear(2, 1, rngs=nnx.Rngs(0))


def forward(model, batch):
    return model(batch["x"])


def loss_fn(model, batch):
    return jnp.mean((model(batch["x"]) - batch["y"]) ** 2)
'''


def write_planted(folder: Path, name: str, torch_twin: str, description: str) -> Path:
    """A workload file in ``folder``: 2 → 1 linear twins, ``torch_twin`` the PyTorch twin's source
    (it plants the fault), the JAX twin a working `nnx.Linear`. Returns ``workload.py``."""
    folder.mkdir(parents=True)
    (folder / "torch_twin.py").write_text(textwrap.dedent(torch_twin))
    (folder / "jax_twin.py").write_text(LINEAR_JAX_TWIN)
    (folder / "workload.py").write_text(
        _PLANTED_WORKLOAD.format(name=name, description=description))
    return folder / "workload.py"
