"""The ``gpt`` workload: twins agree, the Markov-chain task is learnable, bad configs fail."""

import dataclasses
import math
from itertools import islice

import numpy as np
import pytest

import twinbench
from twinbench.backends import canonical_shapes
from twinbench.canonical import parameter_count
from twinbench.errors import TwinbenchError
from twinbench.registry import builtin

WORKLOAD = builtin("gpt")
TINY = WORKLOAD.size("tiny")


def with_config(**changes) -> twinbench.Size:
    return dataclasses.replace(TINY, config={**TINY.config, **changes})


@pytest.mark.slow  # every parity check (a JAX compile each); CI's slow step runs it
def test_twins_agree_at_tiny():
    report = twinbench.parity(["gpt"], size="tiny")
    assert report.passed, report.results[0].failures()


@pytest.mark.slow
def test_twins_agree_at_small():
    report = twinbench.parity(["gpt"], size="small")
    assert report.passed, report.results[0].failures()


@pytest.mark.slow  # trains both twins; CI's slow step runs it
def test_adam_learns_the_markov_chain_in_both_frameworks(one_torch_thread, loaded_runners):
    # From GPT-2's init the loss starts near log(vocab); only a loss well below it shows the
    # transition table being learned (its floor is the chain's entropy, about 1.03 nats).
    steps = 60
    batches = list(islice(WORKLOAD.batches(TINY, seed=1), steps))
    adam = WORKLOAD.optimizers["adam"]
    for runner in loaded_runners(WORKLOAD, TINY):
        losses = runner.train_curve(batches, adam)
        late = float(np.mean(losses[-10:]))
        assert late < math.log(TINY.config["vocab_size"]) - 1.5, (runner.framework, losses[::20])
        assert late < losses[0] - 1.5, (runner.framework, losses[::20])


def test_twins_agree_on_outputs_loss_and_gradients_at_tiny():
    # parity's own checks without its loss curves (the whole check: CI's slow step)
    from twinbench.parity import check_workload

    result = check_workload(WORKLOAD, TINY, steps=1, optimizers=[])
    assert [c.name for c in result.checks] == ["outputs", "loss", "gradients"]
    assert result.passed, result.failures()


def test_a_later_token_never_changes_earlier_logits(loaded_runners):
    batch = next(WORKLOAD.batches(TINY, seed=0))
    changed = {**batch, "tokens": batch["tokens"].copy()}
    t = TINY.config["seq_len"] // 2
    changed["tokens"][:, t] = (changed["tokens"][:, t] + 1) % TINY.config["vocab_size"]
    for runner in loaded_runners(WORKLOAD, TINY):
        before, after = runner.outputs(batch), runner.outputs(changed)
        np.testing.assert_allclose(before[:, :t], after[:, :t], atol=1e-6, err_msg=runner.framework)
        assert not np.allclose(before[:, t], after[:, t]), runner.framework


def test_hugging_face_names_tied_head_and_gpt2_parameter_count():
    shapes = canonical_shapes(WORKLOAD, TINY, "torch")
    assert shapes == canonical_shapes(WORKLOAD, TINY, "jax")
    c = TINY.config
    d, vocab = c["d_model"], c["vocab_size"]
    assert shapes["h.0.attn.c_attn.kernel"] == (d, 3 * d)  # HF Conv1D's (in, out) layout
    assert {"wte.embedding", "wpe.embedding", "h.1.mlp.c_proj.bias", "ln_f.scale"} <= set(shapes)
    assert not any("lm_head" in name for name in shapes)  # tied to wte
    per_layer = 12 * d * d + 13 * d  # c_attn, c_proj, c_fc, mlp.c_proj, two LayerNorms
    expected = (vocab + c["max_positions"]) * d + c["n_layers"] * per_layer + 2 * d
    assert parameter_count(shapes) == expected


def test_data_is_next_token_shifted_int32_and_seeded():
    first, second = islice(WORKLOAD.batches(TINY, seed=3), 2)
    assert first["tokens"].dtype == first["targets"].dtype == np.int32
    assert first["tokens"].shape == (TINY.batch_size, TINY.config["seq_len"])
    np.testing.assert_array_equal(first["tokens"][:, 1:], first["targets"][:, :-1])
    assert first["tokens"].max() < TINY.config["vocab_size"]
    again = next(WORKLOAD.batches(TINY, seed=3))
    np.testing.assert_array_equal(first["tokens"], again["tokens"])
    assert not np.array_equal(first["tokens"], second["tokens"])


def test_sequence_sweeps_reach_the_data_and_the_flops():
    longer = with_config(seq_len=48)
    WORKLOAD.check(longer)
    assert next(WORKLOAD.batches(longer, seed=0))["tokens"].shape == (TINY.batch_size, 48)
    assert WORKLOAD.flops_per_step(longer) > WORKLOAD.flops_per_step(TINY)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_heads": 3}, r"^gpt: d_model 64 is not divisible by n_heads 3$"),
        ({"seq_len": 65}, r"^gpt: seq_len 65 .* \(max_positions 64\)$"),
    ],
)
def test_a_config_that_cannot_work_is_refused_in_one_line(changes, message):
    with pytest.raises(TwinbenchError, match=message):
        WORKLOAD.check(with_config(**changes))
