"""Every worker runs with glibc's malloc thresholds fixed, so a step's temporaries are not handed
back to the system and faulted in again each step (the cost then followed a process's history)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from twinbench.harness.environment import ALLOCATOR_ENVIRONMENT
from twinbench.harness.process import WorkerProcess

FAULTY = Path(__file__).parents[1] / "fixtures" / "faulty"
STEPS = 40

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")


def _path() -> str:
    return os.pathsep.join(p for p in (str(FAULTY), os.environ.get("PYTHONPATH")) if p)


def test_a_worker_steps_without_faulting_its_temporaries_back_in():
    worker = WorkerProcess({"kind": "temporaries_faults", "steps": STEPS}, threads=1,
                           module="proto_worker", env={"PYTHONPATH": _path()})
    try:
        in_worker = worker.receive(120, "result")["faults_per_step"]
    finally:
        worker.close()
    # the same loop in a plain interpreter, glibc's adaptive defaults: the premise of the setting
    plain_env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_ENVIRONMENT}
    script = ("import json, proto_worker; "
              f"print(json.dumps(proto_worker.temporaries_faults({{'steps': {STEPS}}})))")
    plain = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           env={**plain_env, "PYTHONPATH": _path()}, check=True, timeout=120)
    by_default = json.loads(plain.stdout)["faults_per_step"]
    assert by_default > 100, by_default  # 4 MiB handed back and faulted in: ~1,000 pages a step
    assert in_worker < 5, in_worker
