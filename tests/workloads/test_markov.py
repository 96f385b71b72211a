"""The Markov-chain token streams of ``bert`` and ``gpt``: the very batches stored results used.

The streams are integers drawn from NumPy's PCG64, so they are the same bits on every machine;
a change to the chain walker that reorders a draw shows up here as a different digest.
"""

import hashlib
from itertools import islice

import numpy as np
import pytest

from twinbench.registry import builtin
from twinbench.workloads._markov import SUCCESSORS, successor_choices, walk

# sha256 (first 16 hex digits) of the first two tiny batches from seed 0, each array's key, dtype,
# shape and bytes in key order: recorded before the walker was shared by the two workloads.
DIGESTS = {
    "bert": ("1170762252b9f11f", "caf04643b58160fd"),
    "gpt": ("49f37e59b92ea2e8", "faccc1bed91df01d"),
}


def digest(batch: dict[str, np.ndarray]) -> str:
    sha = hashlib.sha256()
    for key in sorted(batch):
        array = np.ascontiguousarray(batch[key])
        for part in (key, str(array.dtype), str(array.shape)):
            sha.update(part.encode())
        sha.update(array.tobytes())
    return sha.hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(DIGESTS))
def test_token_streams_are_unchanged(name):
    workload = builtin(name)
    size = workload.size("tiny")
    batches = islice(workload.batches(size, seed=0), len(DIGESTS[name]))
    assert tuple(digest(batch) for batch in batches) == DIGESTS[name]


def test_walk_follows_each_rows_own_chain():
    tables = np.stack([np.full((5, SUCCESSORS), 1), np.full((5, SUCCESSORS), 2)])
    tokens = walk(tables, np.array([0, 1]), np.array([4, 4]), np.zeros((2, 3), dtype=np.int64))
    assert tokens.tolist() == [[4, 1, 1, 1], [4, 2, 2, 2]]


def test_successor_choices_favour_the_first_successor():
    choices = successor_choices(np.random.default_rng(0), (1000, 10))
    assert choices.min() == 0 and choices.max() == SUCCESSORS - 1
    assert 0.55 < np.mean(choices == 0) < 0.65  # TRANSITION[0] = 0.6
