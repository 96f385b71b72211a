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
