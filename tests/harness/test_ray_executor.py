"""`twinbench run --executor ray`: the same cells as a local run, per-cell faults, bad addresses.

One local Ray instance (loopback only) serves the whole module: starting one takes seconds.
"""

import socket
import sys
import time
from pathlib import Path

import psutil
import pytest

from helpers import assert_one_line_error, twinbench, write_planted
from twinbench.harness import ray_executor, runner
from twinbench.harness.runner import RunSettings
from twinbench.store import DB_NAME, ResultStore

# Ray starts its local services by forking; once an earlier test has imported JAX in this pytest
# process, JAX warns at every fork (its threads do not survive one). Ray's children exec at once.
pytestmark = pytest.mark.filterwarnings("ignore:os.fork\\(\\) was called:RuntimeWarning")

# A PyTorch twin that fails when built, as tests/harness/test_runner_faults.py plants them:
# `exit` ends the cell's worker subprocess; `kill-host` kills the process that started it (on Ray,
# the Ray worker running the task) and then hangs, so only cleanup can end it.
TORCH_TWIN = '''
import os
import signal
import time
from pathlib import Path


def build(config):
    with open(Path(__file__).with_name("pids"), "a") as pids:
        pids.write(f"{{os.getpid()}}\\n")
    if "{fault}" == "exit":
        os._exit(7)
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(3600)


def forward(model, batch):
    return model(batch["x"])


def loss_fn(model, batch):
    return ((model(batch["x"]) - batch["y"]) ** 2).mean()
'''

MODES = ("torch-eager", "jax-jit")


def write_dying(root: Path, fault: str) -> Path:
    return write_planted(root / fault, "dies_" + fault.replace("-", "_"),
                         TORCH_TWIN.format(fault=fault),
                         "a linear model whose PyTorch twin dies when built")


@pytest.fixture(scope="module")
def local_ray():
    """A Ray instance on this machine for the module; the executor uses it and leaves it up."""
    assert ray_executor.connect() is True
    ray = ray_executor.import_ray()
    yield ray
    ray.shutdown()


def stored(out: Path) -> tuple:
    with ResultStore(out / DB_NAME) as store:
        run_id = store.latest_run_id()
        return store.run(run_id), store.cells(run_id), store.parity(run_id)


def cell_rows(cells) -> list[tuple]:
    keys = ("workload", "size", "framework", "mode", "phase", "dtype", "device", "status")
    return sorted(tuple(getattr(c, k) for k in keys) for c in cells)


def worker_processes() -> list[psutil.Process]:
    """Cell workers among this test's descendants (Ray's processes included)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "twinbench.harness.worker" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


def gone(pid: int, within: float = 20.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow  # a Ray instance and a whole run: ~100 s; CI's slow step runs it
def test_ray_run_stores_the_cells_a_local_run_stores(local_ray, tmp_path, monkeypatch):
    dying = str(write_dying(tmp_path, "exit"))
    common = {
        "workloads": ("linreg", "dies_exit"),
        "workload_files": (dying,),
        "sizes": ("tiny",),
        "modes": MODES,
        "budget": 0.3,
        "timeout": 120,
        "parity_steps": 5,
    }
    monkeypatch.setattr(runner, "PROBE_SECONDS", 0.05)  # the local probe; Ray's takes 1 s
    started = time.monotonic()
    runner.run(RunSettings(**common, out=tmp_path / "local"))
    middle = time.monotonic()
    ray_executor.run(RunSettings(**common, out=tmp_path / "ray"))
    print(f"local {middle - started:.1f} s, ray {time.monotonic() - middle:.1f} s")

    local_run, local_cells, local_parity = stored(tmp_path / "local")
    ray_run, ray_cells, ray_parity = stored(tmp_path / "ray")
    assert local_run.status == ray_run.status == "finished"
    assert cell_rows(ray_cells) == cell_rows(local_cells)
    assert len(ray_cells) == 4
    parity_rows = sorted((p["workload"], p["size"], p["passed"]) for p in ray_parity)
    assert parity_rows == sorted((p["workload"], p["size"], p["passed"]) for p in local_parity)
    assert parity_rows == [("dies_exit", "tiny", False), ("linreg", "tiny", True)]
    local_metrics = {(c.workload, c.mode): set(c.metrics) for c in local_cells}
    for cell in ray_cells:  # same fields, not the same timings
        assert set(cell.metrics) == local_metrics[(cell.workload, cell.mode)]
        if cell.status == "ok":
            assert cell.samples and cell.metrics["n_samples"] == len(cell.samples)
    assert set(ray_run.info["peak_flops"]) == set(local_run.info["peak_flops"]) == {"torch", "jax"}
    assert set(ray_run.info) - set(local_run.info) == {"ray"}
    assert ray_run.info["ray"]["placement"].keys() == {"probe", "linreg/tiny", "dies_exit/tiny"}

    # the cell whose worker died mid-setup: recorded with the worker's error, the run went on
    for cells in (local_cells, ray_cells):
        died = next(c for c in cells if c.workload == "dies_exit" and c.mode == "torch-eager")
        assert died.status == "crashed" and "status 7" in died.error and died.samples == []
    assert worker_processes() == []


@pytest.mark.slow  # starts a Ray cluster; CI's slow step runs it
def test_a_ray_task_killed_mid_group_is_recorded_and_leaves_no_process(local_ray, tmp_path):
    killer = write_dying(tmp_path, "kill-host")
    settings = RunSettings(workload_files=(str(killer),), sizes=("tiny",), modes=MODES,
                           budget=0.3, timeout=120, parity_steps=5, out=tmp_path / "out")
    ray_executor.run(settings)

    run, cells, parity = stored(tmp_path / "out")
    assert run.status == "finished"
    assert [(p["workload"], p["passed"]) for p in parity] == [("dies_kill_host", False)]
    assert "WorkerCrashedError" in parity[0]["summary"]["error"]
    assert sorted((c.mode, c.status) for c in cells) == [("jax-jit", "crashed"),
                                                          ("torch-eager", "crashed")]
    assert all("WorkerCrashedError" in c.error for c in cells)
    assert set(run.info["peak_flops"]) == {"torch", "jax"}  # the probe task was not hit
    # the twin that killed its Ray worker hangs on, orphaned: the task's guard ends it
    pids = [int(line) for line in (killer.parent / "pids").read_text().split()]
    assert pids and all(gone(pid) for pid in pids)
    assert worker_processes() == []


def test_unreachable_ray_address_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as probe:  # a port on this machine that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # a fresh interpreter: no Ray connection made by other tests; a hang fails, not blocks
    done = twinbench("run", "--executor", "ray", "--ray-address", f"127.0.0.1:{port}",
                     "--suite", "tiny", "--out", tmp_path / "out", timeout=120)
    assert_one_line_error(done, f"cannot reach a Ray cluster at 127.0.0.1:{port}")
    assert not (tmp_path / "out" / DB_NAME).exists()


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--executor", "dask"], "unknown executor 'dask'; valid: local, ray"),
        (["--ray-address", "127.0.0.1:6379"], "--ray-address needs --executor ray"),
        (["--executor", "ray", "--ray-address", "nowhere"], "--ray-address 'nowhere' is invalid"),
        (["--executor", "ray", "--ray-address", "ray://head:10001"], "(ray://) addresses are not"),
    ],
)
def test_bad_executor_options_are_refused(cli, tmp_path, args, named):
    assert_one_line_error(cli("run", *args, "--suite", "tiny", "--out", tmp_path / "out"), named)
    assert not (tmp_path / "out").exists()


def test_without_ray_installed_the_error_names_the_extra(cli, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    done = cli("run", "--executor", "ray", "--suite", "tiny", "--out", tmp_path / "out")
    assert_one_line_error(done, 'pip install "twinbench[ray]"')
