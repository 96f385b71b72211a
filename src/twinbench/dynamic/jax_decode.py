"""Greedy generation with the gpt twin as a JAX user writes it: a fixed-size KV cache and the
whole decoding loop as one ``lax.while_loop`` under ``jax.jit``, whose condition — the end token
or the position table's end — is data-dependent yet traced once.

The prompt sits in a fixed-length buffer and is fed one token at a time through the same step,
so one compiled function serves every prompt length, and the arithmetic matches the PyTorch
loop's step for step.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from twinbench.backends import initial_weights
from twinbench.backends.jax_backend import load_canonical
from twinbench.dynamic.counters import JaxCompileCounter
from twinbench.spec import Size, Workload


def decode_step(
    model: Any, token: jax.Array, position: jax.Array, keys: jax.Array, values: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Logits (vocab,) after ``token`` at ``position``; the caches (layers, T, nh, hs) with this
    position's keys and values written in."""
    x = model.wte(token[None, None]) + model.wpe(position[None])[None]  # (1, 1, d)
    d, longest = x.shape[-1], keys.shape[1]
    visible = (jnp.arange(longest) <= position)[None, None, None, :]  # (B, nh, 1, T)
    for i, block in enumerate(model.h):
        heads = block.attn.n_heads
        q, k, v = jnp.split(block.attn.c_attn(block.ln_1(x)), 3, axis=-1)
        q, k, v = (t.reshape(1, 1, heads, d // heads) for t in (q, k, v))
        keys = keys.at[i, position].set(k[0, 0])
        values = values.at[i, position].set(v[0, 0])
        y = jax.nn.dot_product_attention(q, keys[i][None], values[i][None], mask=visible)
        x = x + block.attn.c_proj(y.reshape(1, 1, d))
        x = x + block.mlp(block.ln_2(x))
    logits = model.wte.attend(model.ln_f(x))
    return logits[0, 0], keys, values


class Generator:
    """The gpt twin with the canonical init, generating greedily under one jit."""

    def __init__(self, workload: Workload, size: Size, *, compiled: bool, backend: str, seed: int):
        del compiled, backend  # the loop only exists traced: lax.while_loop under jit
        self.counter = JaxCompileCounter()
        model = workload.twin("jax").build(size.config)
        load_canonical(model, initial_weights(workload, size, seed, framework="jax"))
        c = size.config
        self.longest = int(c["max_positions"])
        cache_shape = (c["n_layers"], self.longest, c["n_heads"], c["d_model"] // c["n_heads"])
        graphdef, state = nnx.split(model)
        self._state = state

        def generate(state: Any, prompt: jax.Array, length: jax.Array, end: jax.Array) -> Any:
            model = nnx.merge(graphdef, state)

            def unfinished(carry: tuple[Any, ...]) -> jax.Array:
                position, _, _, _, _, done = carry
                going: jax.Array = (position < self.longest - 1) & ~done
                return going

            def one_token(carry: tuple[Any, ...]) -> tuple[Any, ...]:
                position, tokens, scores, keys, values, _ = carry
                logits, keys, values = decode_step(model, tokens[position], position, keys, values)
                best = jnp.argmax(logits).astype(tokens.dtype)
                reading = position + 1 < length
                tokens = tokens.at[position + 1].set(jnp.where(reading, tokens[position + 1], best))
                scores = scores.at[position + 1].set(logits[best])
                return position + 1, tokens, scores, keys, values, ~reading & (best == end)

            zeros = jnp.zeros(cache_shape, jnp.float32)
            start = (jnp.int32(0), prompt, jnp.zeros(self.longest), zeros, zeros, jnp.bool_(False))
            position, tokens, scores, *_ = jax.lax.while_loop(unfinished, one_token, start)
            return position, tokens, scores

        self._generate = jax.jit(generate)

    def generate(self, prompt: list[int], end_token: int) -> tuple[list[int], list[float]]:
        """The prompt followed by greedy tokens, and the winning logit of each generated one."""
        buffer = np.zeros(self.longest, np.int32)
        buffer[: len(prompt)] = prompt
        last, tokens, scores = self._generate(
            self._state, jnp.asarray(buffer), jnp.int32(len(prompt)), jnp.int32(end_token)
        )
        end = int(last) + 1
        tokens, scores = np.asarray(tokens), np.asarray(scores)  # sliced on the host: no compile
        return [int(t) for t in tokens[:end]], [float(s) for s in scores[len(prompt) : end]]
