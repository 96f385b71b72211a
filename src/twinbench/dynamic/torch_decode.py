"""Greedy generation with the gpt twin as a PyTorch user writes it: a Python loop over tokens
with a KV cache that grows by one position per step, run eagerly or with the one-token decode
step under torch.compile (each step's cache is one position longer: a changing shape).

The prompt is fed one token at a time through the same step, so every strategy in both
frameworks does the same arithmetic in the same order; decoding stops at the end token or at
the position table's end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from twinbench.backends import initial_weights
from twinbench.backends.torch_backend import load_canonical
from twinbench.dynamic.counters import TorchCompileCounter
from twinbench.spec import Size, Workload

Cache = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values (1, nh, t, hs)


def decode_step(
    model: Any, token: torch.Tensor, position: torch.Tensor, cache: Cache
) -> tuple[torch.Tensor, Cache]:
    """Logits (1, vocab) of the next token after ``token`` at ``position``, and the longer cache."""
    x = model.wte(token) + model.wpe(position)  # (1, 1, d)
    d = x.shape[-1]
    grown = []
    for block, (keys, values) in zip(model.h, cache, strict=True):
        heads = block.attn.n_heads
        q, k, v = block.attn.c_attn(block.ln_1(x)).split(d, dim=2)
        q, k, v = (t.view(1, 1, heads, d // heads).transpose(1, 2) for t in (q, k, v))
        keys, values = torch.cat([keys, k], dim=2), torch.cat([values, v], dim=2)
        y = F.scaled_dot_product_attention(q, keys, values)  # one query sees every past key
        x = x + block.attn.c_proj(y.transpose(1, 2).reshape(1, 1, d))
        x = x + block.mlp(block.ln_2(x))
        grown.append((keys, values))
    logits = F.linear(model.ln_f(x), model.wte.weight)
    return logits[:, -1], grown


class Generator:
    """The gpt twin with the canonical init, generating greedily eager or compiled."""

    def __init__(self, workload: Workload, size: Size, *, compiled: bool, backend: str, seed: int):
        self.counter = TorchCompileCounter()
        self.model = workload.twin("torch").build(size.config)
        load_canonical(self.model, initial_weights(workload, size, seed, framework="torch"))
        self.model.eval()
        self.longest = int(size.config["max_positions"])
        self._step: Callable[..., tuple[torch.Tensor, Cache]] = decode_step
        if compiled:
            self._step = torch.compile(decode_step, backend=backend)

    @torch.no_grad()
    def generate(self, prompt: list[int], end_token: int) -> tuple[list[int], list[float]]:
        """The prompt followed by greedy tokens, and the winning logit of each generated one."""
        config_heads = [(b.attn.n_heads, b.attn.c_attn.in_features) for b in self.model.h]
        cache: Cache = [
            (torch.zeros(1, h, 0, d // h), torch.zeros(1, h, 0, d // h)) for h, d in config_heads
        ]
        tokens, scores = list(prompt), []
        for position in range(self.longest - 1):
            token = torch.tensor([[tokens[position]]])
            logits, cache = self._step(self.model, token, torch.tensor([position]), cache)
            if position + 1 < len(prompt):
                continue  # still reading the prompt
            best = int(logits.argmax())
            tokens.append(best)
            scores.append(float(logits[0, best]))
            if best == end_token:
                break
        return tokens, scores
