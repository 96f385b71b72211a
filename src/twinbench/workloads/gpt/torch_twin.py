"""``gpt`` in PyTorch: a GPT-2 style decoder (pre-LN blocks, causal fused attention, tied head).

Module names follow Hugging Face's GPT2LMHeadModel (``wte``, ``wpe``, ``h.0.ln_1``,
``h.0.attn.c_attn``, ``h.0.mlp.c_fc``, ``ln_f``), so a GPT-2 state dict maps by name; HF's Conv1D
stores ``weight`` as (in, out), which is already the canonical kernel layout.
"""

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

LN_EPS = 1e-5  # GPT-2's layer_norm_epsilon


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.c_attn = nn.Linear(d_model, 3 * d_model)  # fused q, k, v
        self.c_proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, T, d)
        B, T, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        # (B, T, d) -> (B, nh, T, hs): the layout scaled_dot_product_attention wants
        q, k, v = (t.view(B, T, self.n_heads, d // self.n_heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        projected: torch.Tensor = self.c_proj(y.transpose(1, 2).reshape(B, T, d))
        return projected


class MLP(nn.Module):
    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(d_model, 4 * d_model)
        self.c_proj = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))  # "gelu_new"
        return out


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model, eps=LN_EPS)
        self.attn = CausalSelfAttention(d_model, n_heads)
        self.ln_2 = nn.LayerNorm(d_model, eps=LN_EPS)
        self.mlp = MLP(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        out: torch.Tensor = x + self.mlp(self.ln_2(x))
        return out


class GPT(nn.Module):
    """From a config, as nanoGPT's GPT(config): vocab_size, max_positions, d_model, n_heads,
    n_layers (the spec's size presets)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        d_model = config["d_model"]
        self.wte = nn.Embedding(config["vocab_size"], d_model)
        self.wpe = nn.Embedding(config["max_positions"], d_model)
        self.h = nn.ModuleList(Block(d_model, config["n_heads"]) for _ in range(config["n_layers"]))
        self.ln_f = nn.LayerNorm(d_model, eps=LN_EPS)
        self.gradient_checkpointing = config.get("gradient_checkpointing", False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, vocab)
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.wte(tokens) + self.wpe(positions)
        for block in self.h:
            if self.gradient_checkpointing and self.training:
                # keep only the block's input; recompute the rest in the backward pass
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        # The language-model head is tied to the token embedding, as in GPT-2.
        return F.linear(self.ln_f(x), self.wte.weight)


def build(config: Mapping[str, Any]) -> GPT:
    return GPT(config)


def forward(model: GPT, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    logits: torch.Tensor = model(batch["tokens"])
    return logits


def loss_fn(model: GPT, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    logits = forward(model, batch)
    return F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten())
