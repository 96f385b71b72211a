"""jax-eager keeps one copy of the model: after its first step the arrays it started from are
gone, so its resident figures (and ``compiler_resident_bytes``) hold no second copy."""

import gc

import jax
import pytest
from flax import nnx

from twinbench.backends.jax_timed import JaxBench
from twinbench.registry import builtin

SETTINGS = dict(dtype="float32", device="cpu", seed=0, allow_tf32=False)


@pytest.mark.parametrize("phase", ["train", "infer"])
def test_jax_eager_holds_no_copy_of_its_initial_state(phase):
    workload = builtin("gpt")
    size = workload.size("tiny")
    bench = JaxBench(workload, size, mode="jax-eager", phase=phase, **SETTINGS)
    for _ in range(2):
        bench.sync(bench.step())
    gc.collect()
    carried = [a for a in jax.tree.leaves(nnx.state(bench._objects)) if isinstance(a, jax.Array)]
    largest = max(carried, key=lambda a: a.nbytes).shape  # each block's MLP weight
    # the carried state's arrays of that shape (parameters, and when training their two AdamW
    # moments) are every live array of that shape: none left behind by a split before the steps
    of_shape = [a for a in carried if a.shape == largest]
    live = [a for a in jax.live_arrays() if a.shape == largest and not a.is_deleted()]
    assert {id(a) for a in live} == {id(a) for a in of_shape}
    params = [
        a for a in jax.tree.leaves(nnx.state(bench._objects, nnx.Param)) if a.shape == largest
    ]
    assert len(of_shape) == len(params) * (3 if phase == "train" else 1)


_COMPILER_RESIDENT = """
import sys
from dataclasses import replace

import jax.numpy as jnp

from twinbench.backends.jax_timed import JaxBench
from twinbench.harness import memory
from twinbench.registry import builtin

jnp.zeros(3).block_until_ready()  # the runtime started, as a worker starts it
runtime = memory.Baseline.now()
workload = builtin("gpt")
size = workload.size("small")
size = replace(size, config={**size.config, "vocab_size": int(sys.argv[1])})
settings = dict(dtype="float32", device="cpu", seed=0, allow_tf32=False)
bench = JaxBench(workload, size, mode="jax-eager", phase="train", **settings)
bench.sync(bench.step())
figures = memory.memory_step(bench, runtime, framework="jax", device="cpu")
print(figures["model_state_bytes"], figures["compiler_resident_bytes"])
"""


@pytest.mark.slow
def test_jax_eager_compiler_resident_memory_does_not_grow_with_the_model():
    """gpt small with a 4× larger vocabulary: the state grows by ~72 MB (the token table, its
    gradient and AdamW moments); what eager JAX keeps beyond it (per-op compiled code) does
    not, so it holds no copy of the model. Two processes, 4 min 36 s loaded (1 min 21 s CPU)."""
    import subprocess
    import sys

    figures = {}
    for vocab in (8192, 32768):
        done = subprocess.run(
            [sys.executable, "-c", _COMPILER_RESIDENT, str(vocab)],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        state, compiler = map(int, done.stdout.split()[-2:])
        figures[vocab] = state, compiler
    grown = figures[32768][0] - figures[8192][0]
    assert grown > 60 * 2**20
    assert abs(figures[32768][1] - figures[8192][1]) < grown / 2
