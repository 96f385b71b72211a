"""Padding with a mask changes neither the loss nor the gradients; the planted leak is caught."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from twinbench.backends import initial_weights
from twinbench.backends.torch_backend import grads_to_canonical, load_canonical, to_device
from twinbench.dynamic import suite
from twinbench.dynamic.schedule import max_length, padded_lengths, row_batches, sequence_batches
from twinbench.dynamic.settings import BY_NAME
from twinbench.dynamic.torch_side import Trainer, masked_loss
from twinbench.registry import builtin

LENGTHS = [5, 11, 5]
EAGER = BY_NAME["torch-eager"]


def _batches(padding: str) -> list[dict[str, np.ndarray]]:
    gpt = builtin("gpt")
    size = gpt.size("tiny")
    full = replace(size, config={**size.config, "seq_len": max_length(size)})
    padded = padded_lengths(LENGTHS, padding, None, max_length(size))
    return list(sequence_batches(gpt.batches(full, 0), LENGTHS, padded))


def _losses(padding: str, *, leak: bool) -> list[float]:
    gpt = builtin("gpt")
    trainer = Trainer(
        gpt, gpt.size("tiny"), EAGER, backend="eager", leak_padding=leak, seed=0, axis=1
    )
    return [trainer.step(b) for b in _batches(padding)]


@pytest.fixture(scope="module")
def reference() -> dict[str, list[float]]:
    return {"loss": _losses("none", leak=False)}


@pytest.mark.parametrize("padding", ["bucket", "max"])
def test_masked_padding_keeps_the_loss_sequence(
    reference: dict[str, list[float]], padding: str
) -> None:
    padded = {"loss": _losses(padding, leak=False)}
    assert suite._correctness("padded", reference, padded)["passed"] is True


def test_the_planted_mask_bug_fails_the_check(reference: dict[str, list[float]]) -> None:
    leaked = {"loss": _losses("bucket", leak=True)}
    check = suite._correctness("leaked", reference, leaked)
    assert check["passed"] is False
    assert check["first_bad_step"] == 0  # padding counts from the first step
    unpadded_leak = {"loss": _losses("none", leak=True)}  # no padding: nothing to leak
    assert suite._correctness("leak, no padding", reference, unpadded_leak)["passed"] is True


def test_padding_leaves_every_gradient_unchanged() -> None:
    gpt = builtin("gpt")
    size = gpt.size("tiny")
    grads = []
    for padding in ("none", "max"):
        model = gpt.twin("torch").build(size.config)
        load_canonical(model, initial_weights(gpt, size, 0, framework="torch"))
        batch = to_device(_batches(padding)[1], "cpu", torch.float32)
        masked_loss(gpt, model, leak_padding=False)(batch).backward()
        grads.append(grads_to_canonical(model))
    for name, unpadded in grads[0].items():
        np.testing.assert_allclose(grads[1][name], unpadded, atol=1e-6, rtol=1e-4, err_msg=name)


def _row_losses(padding: str, *, leak: bool) -> list[float]:
    mlp = builtin("mlp")
    size = mlp.size("tiny")
    sizes = [5, 20, 5]
    padded = padded_lengths(sizes, padding, None, size.batch_size)
    trainer = Trainer(mlp, size, EAGER, backend="eager", leak_padding=leak, seed=0, axis=0)
    return [trainer.step(b) for b in row_batches(mlp.batches(size, 0), sizes, padded)]


def test_padded_rows_keep_the_loss_and_a_leak_fails() -> None:
    reference = {"loss": _row_losses("none", leak=False)}
    padded = {"loss": _row_losses("bucket", leak=False)}
    leaked = {"loss": _row_losses("bucket", leak=True)}
    assert suite._correctness("rows padded", reference, padded)["passed"] is True
    assert suite._correctness("rows leaked", reference, leaked)["passed"] is False
