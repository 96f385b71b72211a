"""``bert`` in PyTorch: a BERT encoder (post-LN blocks, fused attention) classifying from [CLS].

Module names follow Hugging Face's BertForSequenceClassification without its ``bert.`` prefix
(``embeddings.word_embeddings``, ``encoder.layer.0.attention.self.query``, ``pooler.dense``,
``classifier``), so a BERT state dict maps by name. There is no token-type table: every sequence
is one segment, and a single token type would only add a constant vector. An optional
attention mask (B, T), true (or 1) on real tokens, keeps right-padding out of every attention;
without one every token attends to every token.
"""

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

LN_EPS = 1e-12  # BERT's layer_norm_eps


class BertEmbeddings(nn.Module):
    def __init__(self, vocab_size: int, max_positions: int, d_model: int) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, d_model)
        self.position_embeddings = nn.Embedding(max_positions, d_model)
        self.LayerNorm = nn.LayerNorm(d_model, eps=LN_EPS)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, d)
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        embedded = self.word_embeddings(tokens) + self.position_embeddings(positions)
        normed: torch.Tensor = self.LayerNorm(embedded)
        return normed


class BertSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.query = nn.Linear(d_model, d_model)
        self.key = nn.Linear(d_model, d_model)
        self.value = nn.Linear(d_model, d_model)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:  # (B, T, d), keys to attend (B, 1, 1, T) -> (B, T, d)
        B, T, d = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, nh, T, hs)
            return t.view(B, T, self.n_heads, d // self.n_heads).transpose(1, 2)

        y = F.scaled_dot_product_attention(
            heads(self.query(x)), heads(self.key(x)), heads(self.value(x)), attn_mask=mask
        )
        return y.transpose(1, 2).reshape(B, T, d)


class BertResidualOutput(nn.Module):
    """Dense, then LayerNorm of the residual sum: BERT's post-LN ``*.output`` block."""

    def __init__(self, d_in: int, d_model: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_model)
        self.LayerNorm = nn.LayerNorm(d_model, eps=LN_EPS)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        normed: torch.Tensor = self.LayerNorm(self.dense(hidden) + residual)
        return normed


class BertAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.self = BertSelfAttention(d_model, n_heads)
        self.output = BertResidualOutput(d_model, d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        attended: torch.Tensor = self.output(self.self(x, mask), x)
        return attended


class BertIntermediate(nn.Module):
    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model, 4 * d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x), approximate="none")  # BERT's exact (erf) GELU


class BertLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.attention = BertAttention(d_model, n_heads)
        self.intermediate = BertIntermediate(d_model)
        self.output = BertResidualOutput(4 * d_model, d_model)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.attention(x, mask)
        out: torch.Tensor = self.output(self.intermediate(x), x)
        return out


class BertEncoder(nn.Module):
    def __init__(
        self, d_model: int, n_heads: int, n_layers: int, *, gradient_checkpointing: bool = False
    ) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(d_model, n_heads) for _ in range(n_layers))
        self.gradient_checkpointing = gradient_checkpointing

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layer:
            if self.gradient_checkpointing and self.training:
                # keep only the layer's input; recompute the rest in the backward pass
                x = checkpoint(layer, x, mask, use_reentrant=False)
            else:
                x = layer(x, mask)
        return x


class BertPooler(nn.Module):
    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, d), from [CLS]
        return torch.tanh(self.dense(x[:, 0]))


class Bert(nn.Module):
    """From a config as Hugging Face's takes one: vocab_size, max_positions, d_model, n_heads,
    n_layers, n_classes (the spec's size presets)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        d_model = config["d_model"]
        self.embeddings = BertEmbeddings(config["vocab_size"], config["max_positions"], d_model)
        self.encoder = BertEncoder(
            d_model,
            config["n_heads"],
            config["n_layers"],
            gradient_checkpointing=config.get("gradient_checkpointing", False),
        )
        self.pooler = BertPooler(d_model)
        self.classifier = nn.Linear(d_model, config["n_classes"])

    def forward(
        self, tokens: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:  # (B, T), real tokens (B, T) -> (B, n_classes)
        # A key-padding mask: every query attends to the real tokens only, so padding on the
        # right changes nothing real; a padded query's own output is never read ([CLS] is).
        mask = None if attention_mask is None else attention_mask.bool()[:, None, None, :]
        hidden = self.encoder(self.embeddings(tokens), mask)
        logits: torch.Tensor = self.classifier(self.pooler(hidden))
        return logits


def build(config: Mapping[str, Any]) -> Bert:
    return Bert(config)


def forward(model: Bert, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The logits; ``batch["mask"]`` (B, T), where given, marks the real tokens."""
    logits: torch.Tensor = model(batch["tokens"], batch.get("mask"))
    return logits


def loss_fn(model: Bert, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.cross_entropy(forward(model, batch), batch["labels"])
