"""XLA's compile listener counts what jit compiles: one executable per distinct shape, and with
padding at most one per bucket (in this process, on the tiny mlp, whose compiles are cheap)."""

from __future__ import annotations

from functools import partial
from types import ModuleType

from twinbench.dynamic import jax_side
from twinbench.dynamic.schedule import padded_lengths, row_batches
from twinbench.dynamic.settings import BY_NAME
from twinbench.dynamic.worker import Steps
from twinbench.registry import builtin

SIZES = [5, 20, 5]


def _schedule(
    step_class: type, workload: str, rows: list[int], strategy: str, size_name: str = "tiny",
    **options: object,
) -> tuple[list[float], list[int]]:
    """Each step's result and compiles of ``step_class`` (a side's Trainer or Inference) on
    batches of ``rows`` rows, padded as ``strategy`` pads them (``bucket`` among ``options``)."""
    work = builtin(workload)
    size = work.size(size_name)
    bucket = options.pop("bucket", None)
    padded = padded_lengths(rows, BY_NAME[strategy].padding, bucket, size.batch_size)
    runner = step_class(work, size, BY_NAME[strategy], seed=0, axis=0, **options)
    steps = Steps(runner.counter)
    results = [
        steps.run(partial(runner.step, batch))
        for batch in row_batches(work.batches(size, 0), rows, padded)
    ]
    return results, steps.record["compiles"]


def _compiles(strategy: str, bucket: int | None) -> list[int]:
    options = {"backend": "", "leak_padding": False, "bucket": bucket}
    return _schedule(jax_side.Trainer, "mlp", SIZES, strategy, **options)[1]


def test_per_shape_jit_compiles_once_per_distinct_batch_size() -> None:
    per_step = _compiles("jax-jit", None)
    assert sum(per_step) == len(set(SIZES))
    seen: set[int] = set()
    for n, compiled in zip(SIZES, per_step, strict=True):
        assert compiled == (n not in seen)  # a size seen before reuses its executable
        seen.add(n)


def test_bucketed_jit_compiles_at_most_once_per_bucket() -> None:
    assert sum(_compiles("jax-jit-bucketed", 32)) <= 1  # 5 and 20 both pad to 32


def test_each_recompile_is_explained_by_the_framework():
    from twinbench.dynamic import torch_side
    from twinbench.dynamic.view import _recompiles

    mlp = builtin("mlp")
    size = mlp.size("tiny")
    explained = {}
    for side, strategy in ((jax_side, "jax-jit"), (torch_side, "torch-compile")):
        padded = padded_lengths(SIZES, BY_NAME[strategy].padding, None, size.batch_size)
        trainer = side.Trainer(
            mlp, size, BY_NAME[strategy], backend="eager", leak_padding=False, seed=0, axis=0
        )
        steps = Steps(trainer.counter)
        for batch in row_batches(mlp.batches(size, 0), SIZES, padded):
            steps.run(partial(trainer.step, batch))
        explained[strategy] = (sum(steps.record["compiles"]), trainer.extras())
    compiles, extras = explained["jax-jit"]
    (reason,) = extras["recompile_reasons"]  # 5 traced first, 20 again, 5 from the cache
    assert compiles == 2 and "now f32[20,1] and before f32[5,1]" in reason
    (guard,) = explained["torch-compile"][1]["recompile_reasons"]  # dynamic=None: once, then
    assert "size mismatch at index 0" in guard and "expected 5, actual 20" in guard
    rows = [{"strategy": s, **extras} for s, (_, extras) in explained.items()]
    assert "size mismatch" in "\n".join(_recompiles(rows))


SERVED = [3, 7, 3, 5]  # gpt at tiny serves batches of at most 8 rows: buckets 4, 8, 4, 8


def _served(
    side: ModuleType, strategy: str, *, leak: bool = False
) -> tuple[list[float], list[int]]:
    """Each step's summary (the real rows' loss) and compiles of gpt serving SERVED rows."""
    if side.NAME == "torch":  # as the suite's fresh process per strategy: no shapes seen yet
        import torch._dynamo

        torch._dynamo.reset()
    options = {"backend": "eager", "leak_padding": leak}
    return _schedule(side.Inference, "gpt", SERVED, strategy, **options)


def test_serving_compiles_what_the_counters_count_and_matches_torch_eager() -> None:
    from twinbench.dynamic import suite, torch_side

    reference, eager_compiles = _served(torch_side, "torch-eager")
    assert eager_compiles == [0] * len(SERVED)
    per_shape = [1, 1, 0, 1]  # a batch size seen before reuses its executable
    expected = {
        "jax-jit": per_shape,
        "jax-jit-bucketed": [1, 1, 0, 0],  # buckets 4 and 8, once each
        "jax-jit-pad-max": [1, 0, 0, 0],
        "torch-compile-bucketed": [1, 1, 0, 0],  # dynamic=False: one graph per bucket
        "torch-compile": [1, 1, 0, 0],  # specialised on 3, then dynamic from 7 on
    }
    for name, compiles in expected.items():
        side = jax_side if name.startswith("jax") else torch_side
        summaries, counted = _served(side, name)
        assert counted == compiles, name
        check = suite._correctness(name, {"loss": reference}, {"loss": summaries})
        assert check["passed"] is True, (name, check)
    leaked, _ = _served(jax_side, "jax-jit-bucketed", leak=True)  # padded rows in the summary
    assert suite._correctness("leak", {"loss": reference}, {"loss": leaked})["passed"] is False


def test_a_served_classifier_summarises_its_real_rows_alike_padded_or_not() -> None:
    # the mlp classifier at small (integer labels, 256-row batches), served in this process:
    # cheap, where gpt's test above (CI's slow step) compiles with torch.compile per strategy
    from twinbench.dynamic import suite, torch_side

    rows = [3, 7, 3, 5]

    def served(
        side: ModuleType, strategy: str, leak: bool = False
    ) -> tuple[list[float], list[int]]:
        options = {"backend": "eager", "leak_padding": leak}
        return _schedule(side.Inference, "mlp", rows, strategy, "small", **options)

    reference, _ = served(torch_side, "torch-eager")
    expected = {"jax-jit": [1, 1, 0, 1], "jax-jit-pad-max": [1, 0, 0, 0]}
    for name, compiles in expected.items():
        summaries, counted = served(jax_side, name)
        assert counted == compiles, name
        check = suite._correctness(name, {"loss": reference}, {"loss": summaries})
        assert check["passed"] is True, (name, check)
    leaked, _ = served(jax_side, "jax-jit-pad-max", leak=True)  # 256 rows in each summary
    assert suite._correctness("leak", {"loss": reference}, {"loss": leaked})["passed"] is False
