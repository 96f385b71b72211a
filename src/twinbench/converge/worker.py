"""One seed of one (task, mode) trained to its target: ``python -m twinbench.converge.worker``.

It speaks the one worker protocol (`twinbench.harness.process.serve`): one ``train`` request,
one answer. The dataset is loaded (NumPy, the same for both frameworks) and the framework
imported before the clock starts; from then on everything counts, as in MLPerf: building the
model and loading the canonical init, the optimizer, each step's batch moved to the device,
compilation on first calls, and every evaluation on the validation split. The clock stops at
the first evaluation that meets the target; a run that reaches ``max_steps`` without meeting
it is answered ``not converged``.

The loss of each of the first `CURVE_STEPS` steps is kept (as the framework's array, read after
the loop, so no extra synchronisation is timed) for the parity check between the twins.
"""

from __future__ import annotations

import importlib
from time import perf_counter
from typing import Any

from twinbench.converge.tasks import TASKS
from twinbench.harness.process import Handler, serve, thread_budget

CURVE_STEPS = 20


def train(request: dict[str, Any]) -> dict[str, Any]:
    """Train until the target is met or ``max_steps`` run out; the run's record."""
    task = TASKS[request["task"]]
    framework, mode, seed = request["framework"], request["mode"], int(request["seed"])
    target, max_steps, every = request["target"], request["max_steps"], request["eval_every"]
    batches, validation = task.batches(seed), task.validation()
    side = importlib.import_module(f"twinbench.converge.{framework}_side")
    side.configure(thread_budget())
    task.workload().twin(framework)  # imported before the clock, as the framework is

    start = perf_counter()
    trainer = side.Trainer(task, seed=seed, mode=mode)
    setup_s = perf_counter() - start
    first_step_s, eval_times, evaluations, curve = 0.0, [], [], []
    status, steps = "not converged", 0
    while steps < max_steps:
        loss = trainer.step(next(batches))
        steps += 1
        if steps == 1:
            trainer.sync(loss)
            first_step_s = perf_counter() - start - setup_s
        if steps <= CURVE_STEPS:
            curve.append(loss)
        if steps % every and steps < max_steps:
            continue
        trainer.sync(loss)
        began = perf_counter()
        metric = task.score(trainer.predict(validation), validation)
        eval_times.append(perf_counter() - began)
        elapsed = perf_counter() - start
        evaluations.append(
            {"step": steps, "time_s": elapsed, "loss": trainer.value(loss), "metric": metric}
        )
        if task.metric.met(metric, target):
            status = "converged"
            break
    total_s = perf_counter() - start
    return {
        "status": status,
        "steps": steps,
        "time_s": total_s,
        "time_to_target_s": total_s if status == "converged" else None,
        "steps_to_target": steps if status == "converged" else None,
        "setup_s": setup_s,
        "first_step_s": first_step_s,
        "eval_s": sum(eval_times),
        "first_eval_s": eval_times[0] if eval_times else None,
        "evaluations": evaluations,
        "curve": [trainer.value(loss) for loss in curve],
    }


HANDLERS: dict[str, Handler] = {"train": train}


if __name__ == "__main__":
    serve(HANDLERS)
