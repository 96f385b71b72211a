"""Greedy generation: PyTorch's Python loop with a growing KV cache and JAX's fixed-size cache in
lax.while_loop under jit give the same tokens; jit compiles once for every prompt length."""

from __future__ import annotations

import numpy as np
import pytest

from twinbench.dynamic import jax_decode, torch_decode
from twinbench.registry import builtin

PROMPTS = [[3, 17, 40], [5, 6, 7, 8, 9, 10, 11]]


@pytest.fixture(scope="module")
def generations() -> dict[str, object]:
    gpt = builtin("gpt")
    size = gpt.size("tiny")
    out: dict[str, object] = {}
    for name, module in (("torch", torch_decode), ("jax", jax_decode)):
        generator = module.Generator(gpt, size, compiled=name == "jax", backend="eager", seed=0)
        results, compiles = [], []
        before = generator.counter.snapshot().compiles  # the process's counters are global
        for prompt in PROMPTS:
            results.append(generator.generate(prompt, end_token=0))
            compiles.append(generator.counter.snapshot().compiles - before)
        out[name] = results
        out[f"{name} compiles"] = compiles
    return out


def test_both_frameworks_generate_the_same_tokens(generations: dict[str, object]) -> None:
    torch_results, jax_results = generations["torch"], generations["jax"]
    assert isinstance(torch_results, list) and isinstance(jax_results, list)
    longest = builtin("gpt").size("tiny").config["max_positions"]
    for prompt, (t_tokens, t_scores), (j_tokens, j_scores) in zip(
        PROMPTS, torch_results, jax_results, strict=True
    ):
        assert t_tokens[: len(prompt)] == prompt
        assert len(t_tokens) == longest or t_tokens[-1] == 0  # the table's end or the end token
        assert j_tokens == t_tokens
        np.testing.assert_allclose(j_scores, t_scores, atol=1e-5, rtol=1e-5)


def test_jit_compiles_the_loop_once_for_every_prompt_length(
    generations: dict[str, object],
) -> None:
    first, second = generations["jax compiles"]  # type: ignore[misc]
    assert first >= 1
    assert second == first  # a longer prompt: the same compiled while_loop
    assert generations["torch compiles"] == [0, 0]  # eager: Dynamo never ran
