"""The tasks' metrics against values worked out by hand, and the one seeded pipeline."""

from __future__ import annotations

import math
from itertools import islice

import numpy as np
import pytest

from twinbench.converge.datasets import ALPHABET
from twinbench.converge.tasks import TASKS, persistence_mse


def test_persistence_scores_one_against_itself() -> None:
    task = TASKS["sunspots"]
    batch = task.validation()
    assert task.score(batch["x"][:, -1, :1], batch) == pytest.approx(1.0)
    assert task.score(batch["y"], batch) == 0.0  # a perfect forecast
    assert persistence_mse(task) > 0


def test_accuracy_counts_the_argmax() -> None:
    task = TASKS["cancer"]
    batch = {"y": np.array([0, 1, 1, 0])}
    outputs = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [0.2, 0.1]])
    assert task.score(outputs, batch) == 0.75


def test_uniform_logits_score_log2_of_the_alphabet() -> None:
    task = TASKS["text"]
    batch = task.validation()
    logits = np.zeros((*batch["tokens"].shape, len(ALPHABET)), dtype=np.float32)
    assert task.score(logits, batch) == pytest.approx(math.log2(len(ALPHABET)))


@pytest.mark.parametrize("name", ["cancer", "digits", "macro", "text"])
def test_pipeline_is_seeded(name: str) -> None:
    task = TASKS[name]
    first = list(islice(task.batches(3), 3))
    again = list(islice(task.batches(3), 3))
    other = list(islice(task.batches(4), 3))
    for a, b in zip(first, again, strict=True):
        assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not all(np.array_equal(a[k], b[k]) for a, b in zip(first, other, strict=True) for k in a)
    assert all(len(next(iter(b.values()))) == task.batch_size for b in first)


def test_training_windows_never_reach_the_validation_part() -> None:
    task = TASKS["sunspots"]
    data = task.data()
    targets = np.concatenate([b["y"][:, 0] for b in islice(task.batches(0), 200)])
    train_values = set(np.round(data.values[: data.split, 0], 6))
    assert set(np.round(targets, 6)) <= train_values
