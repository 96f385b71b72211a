"""``bert`` in JAX with Flax NNX: a BERT encoder (post-LN, fused attention) classifying from [CLS].

Attribute names match the PyTorch twin (Hugging Face BERT's, ``attention.self`` included), so
canonical names agree. No token-type table, as in the PyTorch twin. An optional attention mask
(B, T), true (or 1) on real tokens, keeps right-padding out of every attention; without one
every token attends to every token.
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

LN_EPS = 1e-12  # BERT's layer_norm_eps; Flax's default is 1e-6


def layer_norm(d_model: int, rngs: nnx.Rngs) -> nnx.LayerNorm:
    # Two-pass variance, as torch computes it (Flax's fast E[x²]−E[x]² rounds differently).
    return nnx.LayerNorm(d_model, epsilon=LN_EPS, use_fast_variance=False, rngs=rngs)


class BertEmbeddings(nnx.Module):
    def __init__(self, vocab_size: int, max_positions: int, d_model: int, *, rngs: nnx.Rngs):
        self.word_embeddings = nnx.Embed(vocab_size, d_model, rngs=rngs)
        self.position_embeddings = nnx.Embed(max_positions, d_model, rngs=rngs)
        self.LayerNorm = layer_norm(d_model, rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:  # (B, T) -> (B, T, d)
        positions = self.position_embeddings(jnp.arange(tokens.shape[1]))[None]
        normed: jax.Array = self.LayerNorm(self.word_embeddings(tokens) + positions)
        return normed


class BertSelfAttention(nnx.Module):
    def __init__(self, d_model: int, n_heads: int, *, rngs: nnx.Rngs) -> None:
        self.n_heads = n_heads
        self.query = nnx.Linear(d_model, d_model, rngs=rngs)
        self.key = nnx.Linear(d_model, d_model, rngs=rngs)
        self.value = nnx.Linear(d_model, d_model, rngs=rngs)

    def __call__(
        self, x: jax.Array, mask: jax.Array | None = None
    ) -> jax.Array:  # (B, T, d), pairs to attend (B, 1, T, T) -> (B, T, d)
        B, T, d = x.shape

        def heads(t: jax.Array) -> jax.Array:  # (B, T, d) -> (B, T, nh, hs)
            return t.reshape(B, T, self.n_heads, d // self.n_heads)

        y = jax.nn.dot_product_attention(
            heads(self.query(x)), heads(self.key(x)), heads(self.value(x)), mask=mask
        )
        return y.reshape(B, T, d)


class BertResidualOutput(nnx.Module):
    """Dense, then LayerNorm of the residual sum: BERT's post-LN ``*.output`` block."""

    def __init__(self, d_in: int, d_model: int, *, rngs: nnx.Rngs) -> None:
        self.dense = nnx.Linear(d_in, d_model, rngs=rngs)
        self.LayerNorm = layer_norm(d_model, rngs)

    def __call__(self, hidden: jax.Array, residual: jax.Array) -> jax.Array:
        normed: jax.Array = self.LayerNorm(self.dense(hidden) + residual)
        return normed


class BertAttention(nnx.Module):
    def __init__(self, d_model: int, n_heads: int, *, rngs: nnx.Rngs) -> None:
        self.self = BertSelfAttention(d_model, n_heads, rngs=rngs)  # HF's name, legal here too
        self.output = BertResidualOutput(d_model, d_model, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        return self.output(self.self(x, mask), x)


class BertIntermediate(nnx.Module):
    def __init__(self, d_model: int, *, rngs: nnx.Rngs) -> None:
        self.dense = nnx.Linear(d_model, 4 * d_model, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        return jax.nn.gelu(self.dense(x), approximate=False)  # BERT's exact (erf) GELU


class BertLayer(nnx.Module):
    def __init__(self, d_model: int, n_heads: int, *, rngs: nnx.Rngs) -> None:
        self.attention = BertAttention(d_model, n_heads, rngs=rngs)
        self.intermediate = BertIntermediate(d_model, rngs=rngs)
        self.output = BertResidualOutput(4 * d_model, d_model, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        x = self.attention(x, mask)
        return self.output(self.intermediate(x), x)


class BertEncoder(nnx.Module):
    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_layers: int,
        *,
        gradient_checkpointing: bool = False,
        rngs: nnx.Rngs,
    ) -> None:
        self.layer = nnx.List([BertLayer(d_model, n_heads, rngs=rngs) for _ in range(n_layers)])
        self.gradient_checkpointing = gradient_checkpointing

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        # remat: keep only each layer's input; recompute the rest in the backward pass
        run = nnx.remat(BertLayer.__call__) if self.gradient_checkpointing else BertLayer.__call__
        for layer in self.layer:
            x = run(layer, x, mask)
        return x


class BertPooler(nnx.Module):
    def __init__(self, d_model: int, *, rngs: nnx.Rngs) -> None:
        self.dense = nnx.Linear(d_model, d_model, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:  # (B, T, d) -> (B, d), from [CLS]
        return jnp.tanh(self.dense(x[:, 0]))


class Bert(nnx.Module):
    """From a config as the PyTorch twin's (the spec's size presets)."""

    def __init__(self, config: Mapping[str, Any], *, rngs: nnx.Rngs) -> None:
        d_model = config["d_model"]
        self.embeddings = BertEmbeddings(
            config["vocab_size"], config["max_positions"], d_model, rngs=rngs
        )
        self.encoder = BertEncoder(
            d_model,
            config["n_heads"],
            config["n_layers"],
            gradient_checkpointing=config.get("gradient_checkpointing", False),
            rngs=rngs,
        )
        self.pooler = BertPooler(d_model, rngs=rngs)
        self.classifier = nnx.Linear(d_model, config["n_classes"], rngs=rngs)

    def __call__(
        self, tokens: jax.Array, attention_mask: jax.Array | None = None
    ) -> jax.Array:  # (B, T), real tokens (B, T) -> (B, n_classes)
        # A key-padding mask: every query attends to the real tokens only, so padding on the
        # right changes nothing real; a padded query's own output is never read ([CLS] is).
        mask = None
        if attention_mask is not None:
            real = attention_mask.astype(bool)
            mask = nnx.make_attention_mask(jnp.ones_like(real), real, dtype=bool)  # (B, 1, T, T)
        hidden = self.encoder(self.embeddings(tokens), mask)
        return self.classifier(self.pooler(hidden))


def build(config: Mapping[str, Any]) -> Bert:
    return Bert(config, rngs=nnx.Rngs(0))


def forward(model: Bert, batch: dict[str, jax.Array]) -> jax.Array:
    """The logits; ``batch["mask"]`` (B, T), where given, marks the real tokens."""
    return model(batch["tokens"], batch.get("mask"))


def loss_fn(model: Bert, batch: dict[str, jax.Array]) -> jax.Array:
    logits = forward(model, batch)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch["labels"]))
