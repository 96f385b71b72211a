"""The examples (linear regression, the 1-10-1 regression MLP, XOR, the ResNet port): each runs as
a script and both frameworks reach its target."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"
NAMES = ("linreg", "mlp", "xor")
FRAMEWORKS = ("torch", "jax")
LINE = re.compile(r"^(?P<framework>torch|jax)\s+initial loss (?P<initial>[\d.]+)\s+"
                  r"final loss (?P<final>[\d.]+)(?:.*?accuracy (?P<accuracy>[\d.]+)%)?", re.M)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every example, started side by side as ``python examples/NAME.py`` from another folder."""
    elsewhere = tmp_path_factory.mktemp("cwd")
    started = {
        name: subprocess.Popen([sys.executable, str(EXAMPLES / f"{name}.py")], cwd=elsewhere,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in NAMES
    }
    done = {}
    for name, process in started.items():
        try:
            out, err = process.communicate(timeout=300)
        finally:
            process.kill()  # no-op once it has exited
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return done


def results(run: subprocess.CompletedProcess[str]) -> dict[str, dict[str, float]]:
    found = {m["framework"]: {k: float(v) for k, v in m.groupdict().items()
                              if k != "framework" and v is not None}
             for m in LINE.finditer(run.stdout)}
    assert sorted(found) == sorted(FRAMEWORKS), run.stdout
    return found


@pytest.mark.slow  # trains each example in both frameworks; CI's slow step runs it
@pytest.mark.parametrize("name", NAMES)
def test_example_runs_cleanly(runs: dict[str, subprocess.CompletedProcess[str]],
                              name: str) -> None:
    run = runs[name]
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert "target met" in run.stdout


@pytest.mark.slow  # trains each example in both frameworks; CI's slow step runs it
@pytest.mark.parametrize("name", ["linreg", "mlp"])
def test_regression_loss_falls_well_below_the_start(
        runs: dict[str, subprocess.CompletedProcess[str]], name: str) -> None:
    found = results(runs[name])
    for framework, numbers in found.items():
        assert numbers["final"] < numbers["initial"] / 10, framework
    # same init, same data: both frameworks start from the same loss
    assert found["torch"]["initial"] == pytest.approx(found["jax"]["initial"], rel=1e-5)


@pytest.mark.slow  # trains each example in both frameworks; CI's slow step runs it
def test_xor_is_learned_perfectly_by_both(
        runs: dict[str, subprocess.CompletedProcess[str]]) -> None:
    found = results(runs["xor"])
    for framework, numbers in found.items():
        assert numbers["accuracy"] == 100.0, framework
        assert numbers["final"] < 0.1 < numbers["initial"], framework  # BCE starts near ln 2


@pytest.mark.slow  # every parity check of the worked example; CI's slow step runs it
def test_the_worked_example_in_adding_workloads_passes_parity(tmp_path: Path) -> None:
    """ADDING_WORKLOADS.md's example, copied out of the document, is a working workload."""
    from twinbench import TwinbenchError, from_file
    from twinbench.backends import initial_weights
    from twinbench.parity import check_workload

    text = (EXAMPLES.parent / "ADDING_WORKLOADS.md").read_text()
    for name in ("workload.py", "torch_twin.py", "jax_twin.py"):
        block = re.search(rf"`{re.escape(name)}`:\n\n```python\n(.*?)```", text, re.S)
        assert block is not None, f"no code block for {name}"
        (tmp_path / name).write_text(block.group(1))
    workload = from_file(tmp_path / "workload.py")
    size = workload.size("tiny")
    assert sorted(initial_weights(workload, size)) == sorted(
        ["ln.scale", "ln.bias", "fc1.kernel", "fc1.bias", "fc2.kernel", "fc2.bias"])
    result = check_workload(workload, size, steps=3)
    assert result.passed, result.failures()
    one_feature = dataclasses.replace(size, config={"d": 1})
    with pytest.raises(TwinbenchError, match="^ln_gelu: d must be at least 2, got 1$"):
        workload.check(one_feature)


@pytest.mark.slow  # trains a ResNet in torch, then ports it; CI's slow step runs it
def test_porting_example_reproduces_torch_eval_logits_in_flax(tmp_path: Path) -> None:
    """examples/port_resnet.py: torchvision-keyed state dict -> converters -> Flax NNX."""
    done = subprocess.run([sys.executable, str(EXAMPLES / "port_resnet.py")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    gap = float(re.search(r"max abs difference ([\d.e+-]+)", done.stdout)[1])
    assert gap <= 1e-4
    assert re.search(r"ported \d+ tensors", done.stdout)
