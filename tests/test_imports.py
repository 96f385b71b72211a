"""The parent process, the store and the reports import no framework (DESIGN: harness core)."""

import subprocess
import sys


def test_core_harness_and_reports_import_neither_framework():
    code = (
        "import sys, twinbench, twinbench.cli, twinbench.harness.runner, "
        "twinbench.report.summary, twinbench.report.markdown, twinbench.report.terminal, "
        "twinbench.registry, twinbench.workloads.mlp; "
        "print(sorted(m for m in ('torch', 'jax', 'flax', 'optax') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
