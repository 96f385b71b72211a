"""The verdict on fabricated summaries: given only when parity holds, attributed to the part
of the time that differs, and absent when too few modes reached the target."""

from __future__ import annotations

from typing import Any

from twinbench.converge.suite import check_parity, summarise, verdict


def _runs(
    mode: str, times: list[float], *, startup: float, steps: int = 100
) -> list[dict[str, Any]]:
    return [
        {
            "workload": "w", "mode": mode, "seed": seed, "status": "converged",
            "time_to_target_s": t, "time_s": t, "steps": steps, "steps_to_target": steps,
            "startup_s": startup, "eval_s": 0.1, "steps_s": t - startup - 0.1,
            "curve": [1.0, 0.9, 0.8],
        }
        for seed, t in enumerate(times)
    ]  # fmt: skip


def _verdict(runs: list[dict[str, Any]]) -> dict[str, Any]:
    modes = ["torch-eager", "jax-jit"]
    summaries = [summarise("w", m, [r for r in runs if r["mode"] == m]) for m in modes]
    return verdict("w", summaries, check_parity("w", modes, runs, eval_every=10))


def test_compile_cost_named_when_start_up_makes_the_difference() -> None:
    fast = _runs("torch-eager", [2.0, 2.1, 1.9, 2.05, 1.95], startup=0.5)
    slow = _runs("jax-jit", [6.0, 6.2, 5.9, 6.1, 6.05], startup=4.5)
    result = _verdict(fast + slow)
    assert result["winner"] == "torch-eager" and result["rival"] == "jax-jit"
    assert result["significant"] and result["cause"] == "startup_s"
    assert 2.8 < result["ratio"] < 3.2


def test_per_step_speed_named_when_training_makes_the_difference() -> None:
    fast = _runs("jax-jit", [2.0, 2.1, 1.9, 2.05, 1.95], startup=1.0)
    slow = _runs("torch-eager", [6.0, 6.2, 5.9, 6.1, 6.05], startup=1.0)
    result = _verdict(fast + slow)
    assert result["winner"] == "jax-jit" and result["cause"] == "steps_s"


def test_no_verdict_when_the_curves_disagree() -> None:
    torch_runs = _runs("torch-eager", [2.0, 2.1, 1.9], startup=0.5)
    jax_runs = _runs("jax-jit", [6.0, 6.2, 5.9], startup=4.5)
    jax_runs[1]["curve"] = [1.0, 0.9, 0.7]  # one seed leaves the tolerance at step 2
    result = _verdict(torch_runs + jax_runs)
    assert result["winner"] is None and "parity failed for jax-jit" in result["text"]


def test_no_verdict_when_steps_to_target_differ() -> None:
    runs = _runs("torch-eager", [2.0, 2.1, 1.9], startup=0.5)
    runs += _runs("jax-jit", [6.0, 6.2, 5.9], startup=0.5, steps=300)
    check = check_parity("w", ["torch-eager", "jax-jit"], runs, eval_every=10)[0]
    assert check["curves_passed"] and not check["steps_passed"]
    assert _verdict(runs)["winner"] is None


def test_no_verdict_when_a_mode_mostly_did_not_converge() -> None:
    runs = _runs("torch-eager", [2.0, 2.1, 1.9], startup=0.5)
    stuck = _runs("jax-jit", [6.0, 6.2, 5.9], startup=0.5)
    for run in stuck[:2]:
        run.update(status="not converged", time_to_target_s=None, steps_to_target=None)
    result = _verdict(runs + stuck)
    assert result["winner"] is None


def test_a_run_of_one_mode_says_so_instead_of_blaming_parity() -> None:
    runs = _runs("jax-jit", [2.0, 2.1, 1.9], startup=0.5)
    summaries = [summarise("w", "jax-jit", runs)]
    result = verdict("w", summaries, check_parity("w", ["jax-jit"], runs, eval_every=10))
    assert result["winner"] is None
    assert result["text"] == "no verdict: one mode was run (jax-jit)"
