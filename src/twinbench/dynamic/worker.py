"""One strategy's process for the dynamic suite: ``python -m twinbench.dynamic.worker``.

It speaks the one worker protocol (`twinbench.harness.process.serve`): one request, one answer.
``schedule`` runs one strategy through the whole schedule of shapes, training or serving, timing
every step and counting the compilations each step caused; ``generate`` decodes every prompt
greedily with one strategy; ``features`` runs one framework's control-flow and debugging
checks. Only one
framework is imported per process, and each strategy gets a fresh process, so compile caches
and counters start empty for it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from time import perf_counter
from types import ModuleType
from typing import Any

from twinbench.dynamic.counters import CompileCounter
from twinbench.dynamic.schedule import max_length, row_batches, sequence_batches
from twinbench.dynamic.settings import BY_NAME
from twinbench.harness.memory import resident_peak
from twinbench.harness.process import Handler, serve, thread_budget
from twinbench.registry import builtin


def side(framework: str) -> ModuleType:
    """The framework's side module, configured for this worker's thread budget."""
    module = importlib.import_module(f"twinbench.dynamic.{framework}_side")
    module.configure(thread_budget())
    return module


class Steps:
    """Each step's wall time and the compilations it caused, as the counter saw them.

    Every step of a schedule runs once, on its own shape, so it is timed alone (one
    ``perf_counter`` pair around a call that returns host values, so it has finished), not in
    the harness's blocks of repeated steps, which would time a shape that does not recur.
    """

    def __init__(self, counter: CompileCounter) -> None:
        self.counter = counter
        self.record: dict[str, list[Any]] = {"step_s": [], "compiles": [], "compile_s": []}
        self._before = counter.snapshot()

    def run(self, call: Callable[[], Any]) -> Any:
        """``call()``, its time and compiles recorded; its result."""
        start = perf_counter()
        result = call()
        elapsed = perf_counter() - start
        after = self.counter.snapshot()
        self.record["step_s"].append(elapsed)
        self.record["compiles"].append(after.compiles - self._before.compiles)
        self.record["compile_s"].append(after.seconds - self._before.seconds)
        self._before = after
        return result


def run_schedule(request: dict[str, Any]) -> dict[str, Any]:
    """Every step of the schedule: its wall time, its loss and the compilations it caused.

    ``axis`` 1 varies the sequence length, 0 the batch size; ``phase`` ``train`` takes an
    optimizer step per batch, ``infer`` a forward pass (its loss summarises the outputs)."""
    strategy = BY_NAME[request["strategy"]]
    workload = builtin(request["workload"])
    size = workload.size(request["size"])
    lengths, padded = request["lengths"], request["padded"]
    if request["axis"] == 0:  # the batch size varies: cut rows from full-size batches
        batches = row_batches(workload.batches(size, request["seed"]), lengths, padded)
    else:
        full = replace(size, config={**size.config, "seq_len": max_length(size)})
        batches = sequence_batches(workload.batches(full, request["seed"]), lengths, padded)
    module = side(strategy.framework)
    runner = module.Inference if request.get("phase") == "infer" else module.Trainer
    trainer = runner(
        workload,
        size,
        strategy,
        backend=request["backend"],
        leak_padding=request["leak_padding"],
        seed=request["seed"],
        axis=request["axis"],
    )
    steps, losses = Steps(trainer.counter), []
    with resident_peak() as peak:  # the model is built; the schedule's steps and compiles count
        for batch in batches:
            losses.append(steps.run(partial(trainer.step, batch)))  # a float: it finished
    schedule_peak = peak.get("peak_above_start_bytes")
    return {**steps.record, "loss": losses, "peak_bytes": schedule_peak, **trainer.extras()}


def run_generate(request: dict[str, Any]) -> dict[str, Any]:
    """Greedy generation for every prompt: tokens, winning logits, wall time and compiles."""
    strategy = BY_NAME[request["strategy"]]
    workload = builtin(request["workload"])
    module = importlib.import_module(f"twinbench.dynamic.{strategy.framework}_decode")
    side(strategy.framework)  # the thread budget
    generator = module.Generator(
        workload,
        workload.size(request["size"]),
        compiled=strategy.compile != "none",
        backend=request["backend"],
        seed=request["seed"],
    )
    steps = Steps(generator.counter)
    generated = [
        steps.run(partial(generator.generate, prompt, request["end_token"]))
        for prompt in request["prompts"]
    ]
    return {
        **steps.record,
        "tokens": [t for t, _ in generated],
        "scores": [s for _, s in generated],
    }


def run_features(request: dict[str, Any]) -> list[dict[str, Any]]:
    """One framework's feature checks (see `twinbench.dynamic.features`)."""
    from twinbench.dynamic.features import run_checks

    module = importlib.import_module(f"twinbench.dynamic.{request['framework']}_checks")
    module.configure(thread_budget())
    checks = module.checks(request["backend"])
    return [c.to_dict() for c in run_checks(checks, request["sabotage"])]


HANDLERS: dict[str, Handler] = {
    "schedule": run_schedule,
    "generate": run_generate,
    "features": run_features,
}


if __name__ == "__main__":
    serve(HANDLERS)
