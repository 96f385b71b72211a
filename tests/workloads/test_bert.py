"""The ``bert`` workload: twins agree, the two-chain task is learnable, bad configs fail."""

import dataclasses
from itertools import islice

import numpy as np
import pytest

import twinbench
from twinbench.backends import canonical_shapes
from twinbench.canonical import parameter_count
from twinbench.errors import TwinbenchError
from twinbench.parity import TOLERANCES, compare, compare_gradients
from twinbench.registry import builtin

WORKLOAD = builtin("bert")
TINY = WORKLOAD.size("tiny")


def with_config(**changes) -> twinbench.Size:
    return dataclasses.replace(TINY, config={**TINY.config, **changes})


@pytest.mark.slow  # every parity check (a JAX compile each); CI's slow step runs it
def test_twins_agree_at_tiny():
    report = twinbench.parity(["bert"], size="tiny")
    assert report.passed, report.results[0].failures()


@pytest.mark.slow
def test_twins_agree_at_small():
    report = twinbench.parity(["bert"], size="small")
    assert report.passed, report.results[0].failures()


@pytest.mark.slow  # trains both twins; CI's slow step runs it
def test_adam_learns_which_chain_wrote_the_sequence_in_both_frameworks(
    one_torch_thread, loaded_runners
):
    steps = 60
    batches = list(islice(WORKLOAD.batches(TINY, seed=1), steps))
    adam = WORKLOAD.optimizers["adam"]
    for runner in loaded_runners(WORKLOAD, TINY):
        losses = runner.train_curve(batches, adam)
        late = float(np.mean(losses[-10:]))
        # Chance is log 2 ≈ 0.69; the sequence as a whole nearly determines its label.
        assert late < 0.3 and late < 0.5 * losses[0], (runner.framework, losses[::6])


def test_the_cls_logits_see_every_token(loaded_runners):
    batch = next(WORKLOAD.batches(TINY, seed=0))
    changed = {**batch, "tokens": batch["tokens"].copy()}
    changed["tokens"][:, -1] = changed["tokens"][:, -1] % (TINY.config["vocab_size"] - 1) + 1
    for runner in loaded_runners(WORKLOAD, TINY):
        before, after = runner.outputs(batch), runner.outputs(changed)
        assert before.shape == (TINY.batch_size, TINY.config["n_classes"])
        assert not np.allclose(before, after), runner.framework  # no causal mask in an encoder


def test_hugging_face_names_and_bert_parameter_count():
    shapes = canonical_shapes(WORKLOAD, TINY, "torch")
    assert shapes == canonical_shapes(WORKLOAD, TINY, "jax")
    assert {
        "embeddings.word_embeddings.embedding",
        "embeddings.LayerNorm.scale",
        "encoder.layer.0.attention.self.query.kernel",
        "encoder.layer.0.attention.output.LayerNorm.bias",
        "encoder.layer.1.intermediate.dense.kernel",
        "encoder.layer.1.output.dense.bias",
        "pooler.dense.kernel",
        "classifier.bias",
    } <= set(shapes)
    assert not any("token_type" in name for name in shapes)  # one segment: no token-type table
    c = TINY.config
    d, classes = c["d_model"], c["n_classes"]
    per_layer = 12 * d * d + 13 * d  # q, k, v, attention output, intermediate, output, 2 LNs
    embeddings = (c["vocab_size"] + c["max_positions"]) * d + 2 * d
    expected = embeddings + c["n_layers"] * per_layer + d * d + d + d * classes + classes
    assert parameter_count(shapes) == expected


def test_data_starts_with_cls_and_labels_both_chains():
    batches = list(islice(WORKLOAD.batches(TINY, seed=3), 4))
    tokens = np.concatenate([b["tokens"] for b in batches])
    labels = np.concatenate([b["labels"] for b in batches])
    assert tokens.dtype == labels.dtype == np.int32
    assert tokens.shape[1] == TINY.config["seq_len"] and labels.shape == (tokens.shape[0],)
    assert (tokens[:, 0] == 0).all() and (tokens[:, 1:] > 0).all()
    assert set(labels.tolist()) == {0, 1}
    again = next(WORKLOAD.batches(TINY, seed=3))
    np.testing.assert_array_equal(batches[0]["tokens"], again["tokens"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_heads": 3}, r"^bert: d_model 64 is not divisible by n_heads 3$"),
        ({"seq_len": 65}, r"^bert: seq_len 65 .* \(max_positions 64\)$"),
        ({"seq_len": 1}, r"^bert: seq_len 1 must be between 2"),
    ],
)
def test_a_config_that_cannot_work_is_refused_in_one_line(changes, message):
    with pytest.raises(TwinbenchError, match=message):
        WORKLOAD.check(with_config(**changes))


SHORT = 9  # real tokens per row of the padded batches ([CLS] included)


def _padded(filler_seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A batch cut to SHORT tokens, and the same batch padded on the right to seq_len with
    random tokens (any id: the mask must hide them) and a mask, 1 on the real tokens."""
    batch = next(WORKLOAD.batches(TINY, seed=0))
    short = {"tokens": batch["tokens"][:, :SHORT], "labels": batch["labels"]}
    rng = np.random.default_rng(filler_seed)
    tokens = rng.integers(1, TINY.config["vocab_size"], batch["tokens"].shape).astype(np.int32)
    tokens[:, :SHORT] = short["tokens"]
    mask = np.zeros(tokens.shape, np.float32)
    mask[:, :SHORT] = 1.0
    return short, {"tokens": tokens, "labels": batch["labels"], "mask": mask}


def test_the_mask_keeps_right_padding_out_of_outputs_loss_and_gradients(loaded_runners):
    short, padded = _padded()
    leaked = {k: v for k, v in padded.items() if k != "mask"}
    tol = TOLERANCES["float32"]
    for runner in loaded_runners(WORKLOAD, TINY):
        want, got = runner.outputs(short), runner.outputs(padded)
        assert compare("outputs", want, got, tol.outputs).passed, runner.framework
        assert not np.allclose(want, runner.outputs(leaked), atol=1e-3), runner.framework
        (loss, grads), (padded_loss, padded_grads) = map(runner.loss_and_grads, (short, padded))
        assert padded_loss == pytest.approx(loss, abs=tol.outputs.atol), runner.framework
        check = compare_gradients(grads, padded_grads, tol.gradients)
        assert check.passed, (runner.framework, check.detail)


def test_twins_agree_with_the_mask_on(loaded_runners):
    _, padded = _padded(filler_seed=1)
    padded["mask"][1::2] = 1.0  # rows of two lengths (SHORT and seq_len): the mask is per row
    torch_runner, jax_runner = loaded_runners(WORKLOAD, TINY)
    tol = TOLERANCES["float32"]
    outputs = compare("outputs", torch_runner.outputs(padded), jax_runner.outputs(padded),
                      tol.outputs)  # fmt: skip
    assert outputs.passed, outputs.detail
    (torch_loss, torch_grads), (jax_loss, jax_grads) = (
        r.loss_and_grads(padded) for r in (torch_runner, jax_runner)
    )
    assert jax_loss == pytest.approx(torch_loss, abs=tol.outputs.atol)
    gradients = compare_gradients(torch_grads, jax_grads, tol.gradients)
    assert gradients.passed, gradients.detail
