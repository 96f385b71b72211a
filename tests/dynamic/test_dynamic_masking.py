"""Padding with a mask changes neither the loss nor the gradients; the planted leak is caught."""

from __future__ import annotations

from dataclasses import replace
from types import ModuleType

import numpy as np
import pytest
import torch

from twinbench.backends import initial_weights
from twinbench.backends.torch_backend import grads_to_canonical, load_canonical, to_device
from twinbench.dynamic import jax_side, suite, torch_side
from twinbench.dynamic.schedule import max_length, padded_lengths, row_batches, sequence_batches
from twinbench.dynamic.settings import BY_NAME
from twinbench.dynamic.torch_side import Trainer, masked_loss
from twinbench.registry import builtin

LENGTHS = [5, 11, 5]
EAGER = BY_NAME["torch-eager"]


def _batches(padding: str, workload: str = "gpt") -> list[dict[str, np.ndarray]]:
    spec = builtin(workload)
    size = spec.size("tiny")
    full = replace(size, config={**size.config, "seq_len": max_length(size)})
    padded = padded_lengths(LENGTHS, padding, None, max_length(size))
    return list(sequence_batches(spec.batches(full, 0), LENGTHS, padded))


def _losses(
    padding: str, *, leak: bool, workload: str = "gpt", side: ModuleType = torch_side
) -> list[float]:
    spec = builtin(workload)
    # JAX under jit: op by op, each of bert's operations compiles for each new shape first
    strategy = EAGER if side is torch_side else BY_NAME["jax-jit"]
    trainer = side.Trainer(
        spec, spec.size("tiny"), strategy, backend="eager", leak_padding=leak, seed=0, axis=1
    )
    return [trainer.step(b) for b in _batches(padding, workload)]


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


def test_the_encoder_masks_padding_in_its_attention_in_both_frameworks() -> None:
    # one padded batch, forward only (the whole schedule and its gradients: CI's slow step)
    from flax import nnx

    from twinbench.backends import jax_backend

    bert = builtin("bert")
    size = bert.size("tiny")
    unpadded, padded = _batches("none", "bert")[1], _batches("max", "bert")[1]
    model = bert.twin("torch").build(size.config).eval()
    load_canonical(model, initial_weights(bert, size, 0, framework="torch"))
    jax_model = bert.twin("jax").build(size.config)
    jax_backend.load_canonical(jax_model, initial_weights(bert, size, 0, framework="jax"))
    jax_model.eval()

    @torch.no_grad()
    def torch_loss(batch: dict[str, np.ndarray], leak: bool) -> float:
        tensors = to_device(batch, "cpu", torch.float32)
        return float(masked_loss(bert, model, leak_padding=leak)(tensors))

    def jax_loss(batch: dict[str, np.ndarray], leak: bool) -> float:
        arrays = jax_backend.to_device(batch, None, np.float32)
        return float(nnx.jit(jax_side.masked_loss(bert, leak_padding=leak))(jax_model, arrays))

    reference = torch_loss(unpadded, False)
    torch_losses = {leak: torch_loss(padded, leak) for leak in (False, True)}
    jax_losses = {leak: jax_loss(padded, leak) for leak in (False, True)}
    for losses in (torch_losses, jax_losses):
        assert losses[False] == pytest.approx(reference, rel=1e-5)
        assert abs(losses[True] - reference) > 1e-3 * reference  # the padding leaked in
    assert jax_losses[True] == pytest.approx(torch_losses[True], rel=1e-5)


@pytest.fixture(scope="module")
def bert_reference() -> dict[str, list[float]]:
    return {"loss": _losses("none", leak=False, workload="bert")}


@pytest.mark.parametrize("side", [torch_side, jax_side], ids=["torch", "jax"])
def test_padded_bert_keeps_the_loss_sequence_and_a_leak_into_attention_fails(
    bert_reference: dict[str, list[float]], side: ModuleType
) -> None:
    padded = {"loss": _losses("bucket", leak=False, workload="bert", side=side)}
    assert suite._correctness("bert padded", bert_reference, padded)["passed"] is True
    leaked = {"loss": _losses("max", leak=True, workload="bert", side=side)}
    check = suite._correctness("bert leaked", bert_reference, leaked)
    assert check["passed"] is False and check["first_bad_step"] == 0


def test_padding_leaves_every_bert_gradient_unchanged_in_both_frameworks() -> None:
    from flax import nnx

    from twinbench.backends import jax_backend

    bert = builtin("bert")
    size = bert.size("tiny")
    unpadded, padded = _batches("none", "bert")[1], _batches("max", "bert")[1]
    assert padded["tokens"].shape[1] > unpadded["tokens"].shape[1]
    grads: dict[str, list[dict[str, np.ndarray]]] = {"torch": [], "jax": []}
    for batch in (unpadded, padded):
        model = bert.twin("torch").build(size.config)
        load_canonical(model, initial_weights(bert, size, 0, framework="torch"))
        masked_loss(bert, model, leak_padding=False)(
            to_device(batch, "cpu", torch.float32)
        ).backward()
        grads["torch"].append(grads_to_canonical(model))
        jax_model = bert.twin("jax").build(size.config)
        jax_backend.load_canonical(jax_model, initial_weights(bert, size, 0, framework="jax"))
        loss = jax_side.masked_loss(bert, leak_padding=False)
        arrays = jax_backend.to_device(batch, None, np.float32)
        grads["jax"].append(jax_backend.state_to_canonical(nnx.grad(loss)(jax_model, arrays)))
    for framework, (want, got) in grads.items():
        for name, unpadded_grad in want.items():
            np.testing.assert_allclose(
                got[name], unpadded_grad, atol=1e-6, rtol=1e-4, err_msg=f"{framework} {name}"
            )
