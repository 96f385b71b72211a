"""How long the HTML report of a 50-cell run takes to build (target: under 10 s on 2 cores).

The run is synthetic but shaped like a real one: 10 workloads in 4 modes plus a 5-point batch
sweep in 2 modes, ~200 raw samples per cell, parity records with both loss curves, twin sources.
``build_store`` is also what the browser test renders.

    python benchmarks/report_speed.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from twinbench.store import DB_NAME, CellRecord, ResultStore

MODES = {"torch-eager": "torch", "torch-compile": "torch", "jax-jit": "jax", "jax-eager": "jax"}
SPEED = {"torch-eager": 1.0, "torch-compile": 0.85, "jax-jit": 0.7, "jax-eager": 8.0}
COMPILE = {"torch-eager": None, "torch-compile": 6.0, "jax-jit": 0.4, "jax-eager": None}
TWIN = '''"""The {name} twin in {framework}."""

import numpy as np


class Model:
    def __init__(self, width: int = {width}) -> None:
        self.width = width  # hidden units

    def step(self, x: np.ndarray) -> float:
        # (B, width) -> scalar loss
        return float((x @ np.ones(self.width)).mean())
'''


def _cell(
    workload: str,
    size: str,
    mode: str,
    median: float,
    rng: np.random.Generator,
    batch_size: int = 256,
) -> CellRecord:
    samples = median * (1 + 0.03 * rng.standard_normal(200))
    q25, q50, q75 = np.percentile(samples, [25, 50, 75])
    flops = 2.0e8 * batch_size / 256
    compile_s = COMPILE[mode]
    metrics = {
        "median_s": float(q50),
        "iqr_s": float(q75 - q25),
        "ci_low_s": float(q50 * 0.995),
        "ci_high_s": float(q50 * 1.005),
        "n_samples": 200,
        "noisy": False,
        "converged": True,
        "block_size": 4,
        "time_to_first_step_s": (compile_s or 0.0) + 0.01,
        "compile_s": compile_s,
        "setup_s": 2.0,
        "warmup_steps": 50,
        "batch_size": batch_size,
        "seq_len": None,
        "samples_per_s": batch_size / float(q50),
        "tokens_per_s": None,
        "flops_per_step": flops,
        "achieved_flops_per_s": flops / float(q50),
        "process_peak_memory_bytes": int((300 + 0.5 * batch_size) * 2**20),
        "process_peak_rss_bytes": int((300 + 0.5 * batch_size) * 2**20),
        "params": 669706,
        "twin_loc": 40,
        "threads": 2,
        "finish_error": None,
    }
    return CellRecord(
        workload,
        size,
        MODES[mode],
        mode,
        "train",
        "float32",
        "cpu",
        "ok",
        metrics=metrics,
        samples=[float(s) for s in samples],
    )


def _parity(workload: str, size: str, rng: np.random.Generator) -> dict:
    base = np.exp(-np.linspace(0, 3, 20)) + 0.05 * rng.standard_normal(20)
    checks = [
        {
            "name": name,
            "passed": True,
            "max_abs": 1e-7,
            "max_rel": 1e-6,
            "atol": 1e-5,
            "rtol": 1e-5,
            "detail": "",
            "worst_parameter": None,
            "first_bad_step": None,
            "curves": None,
        }
        for name in ("outputs", "loss", "gradients")
    ]
    for opt in ("sgd", "adam"):
        jax = base + 1e-7 * rng.standard_normal(20)
        checks.append(
            {
                "name": f"curve[{opt}]",
                "passed": True,
                "max_abs": 2e-7,
                "max_rel": 1e-6,
                "atol": 1e-6,
                "rtol": 1e-5,
                "detail": "",
                "worst_parameter": None,
                "first_bad_step": None,
                "curves": {"torch": base.tolist(), "jax": jax.tolist()},
            }
        )
    return {
        "workload": workload,
        "size": size,
        "dtype": "float32",
        "steps": 20,
        "checks": checks,
        "divergence": None,
        "error": None,
        "passed": True,
    }


def build_store(
    out: Path,
    *,
    workloads: int = 10,
    sweep: tuple[int, ...] = (16, 32, 64, 128, 256),
    name_prefix: str = "model",
) -> Path:
    """A finished 50-cell run in ``out/results.sqlite``; returns the database path."""
    rng = np.random.default_rng(0)
    db = Path(out) / DB_NAME
    with ResultStore(db) as store:
        run_id = store.start_run(
            environment={
                "cpu_model": "Synthetic CPU",
                "cpu_cores_logical": 2,
                "cpu_cores_physical": 2,
                "usable_cores": 2,
                "memory_bytes": 25 * 2**30,
                "gpus": [],
                "os": "Linux",
                "python": "3.11.7",
                "versions": {
                    "torch": "2.13.0+cpu",
                    "jax": "0.10.2",
                    "jaxlib": "0.10.2",
                    "flax": "0.12.8",
                    "optax": "0.2.8",
                },
                "git_commit": "0123456789abcdef",
            },
            settings={
                "threads": 2,
                "dtype": "float32",
                "device": "cpu",
                "budget": 5.0,
                "allow_tf32": False,
                "torch_compile_mode": "default",
                "seed": 0,
                "parity_steps": 20,
                "modes": list(MODES),
                "phases": ["train"],
            },
        )
        names = [f"{name_prefix}{i}" for i in range(workloads)]
        store.set_run_info(run_id, "peak_flops", {"torch": 1.4e11, "jax": 2.2e11})
        store.set_run_info(
            run_id,
            "twin_sources",
            {
                n: {fw: TWIN.format(name=n, framework=fw, width=64) for fw in ("torch", "jax")}
                for n in names + ["sweepnet"]
            },
        )
        for i, name in enumerate(names):
            store.record_parity(
                run_id,
                workload=name,
                size="small",
                passed=True,
                summary=_parity(name, "small", rng),
            )
            for mode in MODES:
                median = 0.002 * (1 + i) * SPEED[mode]
                store.record_cell(run_id, _cell(name, "small", mode, median, rng))
        store.record_parity(
            run_id,
            workload="sweepnet",
            size="small",
            passed=True,
            summary=_parity("sweepnet", "small", rng),
        )
        for bs in sweep:
            for mode, exponent in (("torch-eager", 0.9), ("jax-jit", 0.75)):
                median = 1e-4 * bs**exponent * SPEED[mode]
                store.record_cell(
                    run_id, _cell("sweepnet", f"small bs={bs}", mode, median, rng, batch_size=bs)
                )
        store.finish_run(run_id, status="finished")
    return db


def main() -> int:
    from twinbench.report import html
    from twinbench.report.summary import load_summary

    with tempfile.TemporaryDirectory() as tmp:
        build_store(Path(tmp))
        summary = load_summary(Path(tmp))
        started = time.perf_counter()
        path = html.write(summary, Path(tmp) / "report.html")
        seconds = time.perf_counter() - started
        size = path.stat().st_size
    print(f"{len(summary.cells)} cells: HTML report in {seconds:.2f} s ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
