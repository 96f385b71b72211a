"""The parent process, the store and the reports import no framework (DESIGN: harness core), and
nothing on the local path imports Ray (an optional extra)."""

import subprocess
import sys

CORE = (
    "twinbench",
    "twinbench.cli",
    "twinbench.harness.runner",
    "twinbench.harness.ray_executor",  # imports ray only when a Ray run starts
    "twinbench.report.summary",
    "twinbench.report.markdown",
    "twinbench.report.terminal",
    "twinbench.registry",
    "twinbench.workloads.mlp",
)


def test_core_harness_and_reports_import_neither_framework_nor_ray():
    # a fresh interpreter: this one has imported everything by now
    code = (
        f"import sys, {', '.join(CORE)}; "
        "print(sorted(m for m in ('torch', 'jax', 'flax', 'optax', 'ray') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.strip() == "[]"
