"""``gpt`` in JAX with Flax NNX: a GPT-2 style decoder (pre-LN, causal fused attention, tied head).

Attribute names match the PyTorch twin (Hugging Face GPT-2's), so canonical names agree.
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

LN_EPS = 1e-5  # GPT-2's layer_norm_epsilon; Flax's default is 1e-6


def layer_norm(d_model: int, rngs: nnx.Rngs) -> nnx.LayerNorm:
    # Two-pass variance, as torch computes it (Flax's fast E[x²]−E[x]² rounds differently).
    return nnx.LayerNorm(d_model, epsilon=LN_EPS, use_fast_variance=False, rngs=rngs)


class CausalSelfAttention(nnx.Module):
    def __init__(self, d_model: int, n_heads: int, *, rngs: nnx.Rngs) -> None:
        self.n_heads = n_heads
        self.c_attn = nnx.Linear(d_model, 3 * d_model, rngs=rngs)  # fused q, k, v
        self.c_proj = nnx.Linear(d_model, d_model, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:  # (B, T, d) -> (B, T, d)
        B, T, d = x.shape
        q, k, v = jnp.split(self.c_attn(x), 3, axis=-1)
        # (B, T, d) -> (B, T, nh, hs): the layout jax.nn.dot_product_attention wants
        q, k, v = (t.reshape(B, T, self.n_heads, d // self.n_heads) for t in (q, k, v))
        y = jax.nn.dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.reshape(B, T, d))


class MLP(nnx.Module):
    def __init__(self, d_model: int, *, rngs: nnx.Rngs) -> None:
        self.c_fc = nnx.Linear(d_model, 4 * d_model, rngs=rngs)
        self.c_proj = nnx.Linear(4 * d_model, d_model, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.c_proj(jax.nn.gelu(self.c_fc(x), approximate=True))  # GPT-2's "gelu_new"


class Block(nnx.Module):
    def __init__(self, d_model: int, n_heads: int, *, rngs: nnx.Rngs) -> None:
        self.ln_1 = layer_norm(d_model, rngs)
        self.attn = CausalSelfAttention(d_model, n_heads, rngs=rngs)
        self.ln_2 = layer_norm(d_model, rngs)
        self.mlp = MLP(d_model, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nnx.Module):
    """From a config as the PyTorch twin's (the spec's size presets)."""

    def __init__(self, config: Mapping[str, Any], *, rngs: nnx.Rngs) -> None:
        d_model, n_heads = config["d_model"], config["n_heads"]
        self.wte = nnx.Embed(config["vocab_size"], d_model, rngs=rngs)
        self.wpe = nnx.Embed(config["max_positions"], d_model, rngs=rngs)
        self.h = nnx.List([Block(d_model, n_heads, rngs=rngs) for _ in range(config["n_layers"])])
        self.ln_f = layer_norm(d_model, rngs)
        self.gradient_checkpointing = config.get("gradient_checkpointing", False)

    def __call__(self, tokens: jax.Array) -> jax.Array:  # (B, T) -> (B, T, vocab)
        positions = jnp.arange(tokens.shape[1])
        x = self.wte(tokens) + self.wpe(positions)[None]
        # remat: keep only each block's input; recompute the rest in the backward pass
        run = nnx.remat(Block.__call__) if self.gradient_checkpointing else Block.__call__
        for block in self.h:
            x = run(block, x)
        # The language-model head is tied to the token embedding, as in GPT-2.
        return self.wte.attend(self.ln_f(x))


def build(config: Mapping[str, Any]) -> GPT:
    return GPT(config, rngs=nnx.Rngs(0))


def forward(model: GPT, batch: dict[str, jax.Array]) -> jax.Array:
    return model(batch["tokens"])


def loss_fn(model: GPT, batch: dict[str, jax.Array]) -> jax.Array:
    logits = forward(model, batch)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"]))
