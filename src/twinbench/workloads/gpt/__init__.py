"""``gpt`` — a GPT-2 style decoder-only language model trained on next-token prediction.

Tokens come from a seeded sparse Markov chain over the vocabulary: each token has
`SUCCESSORS` possible next tokens with peaked probabilities, so the next-token entropy is about
1.0 nat, far below log(vocab), and a model that learns the transition table drives the loss there.
Each batch holds ``tokens`` (B, T) and ``targets`` (B, T), the same sequence shifted by one, both
int32; the loss is the mean cross-entropy over all B·T positions.

Analytic FLOPs of one training step (2 per multiply-add; backward = 2 × forward), with B batch,
T seq_len, d d_model, L n_layers, V vocab_size and a 4·d MLP::

    per layer, forward:  qkv projection   2·B·T·d·3d  = 6·B·T·d²
                         scores q·kᵀ      2·B·T²·d
                         weighted values  2·B·T²·d
                         out projection   2·B·T·d²
                         MLP (d→4d→d)     16·B·T·d²
                         = 24·B·T·d² + 4·B·T²·d
    tied LM head:        2·B·T·d·V
    train step = 3 · (L · (24·B·T·d² + 4·B·T²·d) + 2·B·T·d·V)

Embedding lookups, LayerNorm, GELU, softmax and the causal mask are not counted; the causal
attention is counted over the full T×T scores, as both framework counters count it. Measured on
CPU in fp32 (analytic / torch FlopCounterMode / XLA ``cost_analysis`` of the jitted step): small
3.382e10 / +0.8 % / +1.5 %; tiny 1.887e8 / +1.1 % / +6.4 % (XLA also counts element-wise work and
the Adam update, which still weigh at tiny). No input gradient is skipped: the embeddings feeding
the first block are parameters, so every matmul's input gradient is computed.
"""

from collections.abc import Iterator
from functools import partial

import numpy as np

from twinbench.canonical import init_canonical
from twinbench.spec import Batch, Size, package_workload, sgd_and_adam
from twinbench.workloads._markov import SUCCESSORS, successor_choices, walk
from twinbench.workloads._transformer import preset, train_step_flops, validator

SIZES = {
    # Position tables a little longer than seq_len, so `twinbench run --seq-lens` can sweep up.
    "tiny": preset("tiny", 2, 64, 2, 32, 256, 64, batch=8),
    "small": preset("small", 4, 256, 4, 128, 8192, 256, batch=8),
    "full": preset("full", 12, 768, 12, 1024, 50257, 1024, batch=8),  # GPT-2 small
}


def data(size: Size, rng: np.random.Generator) -> Iterator[Batch]:
    """Sequences from a sparse, peaked Markov chain drawn from ``rng``; targets: the next tokens."""
    vocab, seq, n = size.config["vocab_size"], size.config["seq_len"], size.batch_size
    successors = rng.integers(0, vocab, (1, vocab, SUCCESSORS))  # one chain
    every_row_on_it = np.zeros(n, dtype=np.int64)
    while True:
        start = rng.integers(0, vocab, n)
        sequence = walk(successors, every_row_on_it, start, successor_choices(rng, (n, seq)))
        sequence = sequence.astype(np.int32)
        yield {"tokens": sequence[:, :-1], "targets": sequence[:, 1:]}


def flops(size: Size) -> float:
    """Analytic FLOPs of one training step (formula in the module docstring)."""
    c = size.config
    lm_head = 2 * size.batch_size * c["seq_len"] * c["d_model"] * c["vocab_size"]
    return train_step_flops(size, head=lm_head)


WORKLOAD = package_workload(
    __name__,
    validate=validator("gpt", shortest=1),
    description="GPT-2 style decoder (pre-LN, causal fused attention, tied head), next-token loss",
    loss="next-token cross-entropy, mean over batch and positions",
    optimizers=sgd_and_adam(sgd_lr=0.05, adam_lr=3e-3),
    flops=flops,
    # GPT-2's embedding init: with PyTorch's N(0, 1) the tied head's logits start near ±200.
    init=partial(init_canonical, embedding_std=0.02),
)
