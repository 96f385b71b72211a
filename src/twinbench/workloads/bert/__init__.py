"""``bert`` — a BERT-style encoder classifying token sequences from the first ([CLS]) token.

Each sequence is ``[CLS]`` (token 0) followed by tokens from one of two seeded sparse Markov
chains over tokens 1…vocab−1; the label is the chain that generated it. Each chain's transition
table points mostly (`AFFINITY`) into its own random half of the vocabulary, so single tokens are
weak evidence and the whole sequence strong evidence: the encoder must gather it into [CLS].
Batches hold ``tokens`` (B, T) and ``labels`` (B,), int32, unpadded. Both twins also take an
optional ``mask`` (B, T), 1 on real tokens, for batches padded on the right: it keeps padding out
of every attention, and the loss reads [CLS] only, so padding changes neither loss nor gradients.

Analytic FLOPs of one training step (2 per multiply-add; backward = 2 × forward), with B batch,
T seq_len, d d_model, L n_layers, C n_classes and a 4·d intermediate layer::

    per layer, forward:  query, key, value  3 · 2·B·T·d²  = 6·B·T·d²
                         scores q·kᵀ        2·B·T²·d
                         weighted values    2·B·T²·d
                         attention output   2·B·T·d²
                         intermediate+out   16·B·T·d²
                         = 24·B·T·d² + 4·B·T²·d
    pooler (on [CLS]):   2·B·d²
    classifier:          2·B·d·C
    train step = 3 · (L · (24·B·T·d² + 4·B·T²·d) + 2·B·d² + 2·B·d·C)

Embedding lookups, LayerNorm, GELU, tanh and softmax are not counted. Measured on CPU in fp32
(analytic / torch FlopCounterMode / XLA ``cost_analysis`` of the jitted step): small 4.188e10 /
+1.3 % / +2.5 %; tiny 1.638e8 / +1.3 % / +10.4 %. Check at small: at tiny XLA's count of the
element-wise work (erf GELU, LayerNorm, softmax) and the Adam update adds 10 %. No input gradient
is skipped: the embeddings feeding the first layer are parameters.
"""

from collections.abc import Iterator

import numpy as np

from twinbench.spec import Batch, Size, package_workload, sgd_and_adam
from twinbench.workloads._markov import SUCCESSORS, successor_choices, walk
from twinbench.workloads._transformer import preset, train_step_flops, validator

CLS = 0
N_CLASSES = 2  # one Markov chain per class
AFFINITY = 0.75  # share of a chain's successors drawn from its own half of the vocabulary


SIZES = {
    # A position table a little longer than seq_len at tiny, BERT's 512 above, so that
    # `twinbench run --seq-lens` can sweep up.
    "tiny": preset("tiny", 2, 64, 2, 32, 256, 64, batch=8, n_classes=N_CLASSES),
    "small": preset("small", 4, 256, 4, 128, 8192, 512, batch=16, n_classes=N_CLASSES),
    "full": preset(
        "full", 12, 768, 12, 128, 30522, 512, batch=32, n_classes=N_CLASSES
    ),  # BERT-base
}


def _chains(vocab: int, rng: np.random.Generator) -> np.ndarray:
    """Successor tables (N_CLASSES, vocab, SUCCESSORS); chain c favours its half of 1…vocab−1."""
    halves = np.array_split(rng.permutation(np.arange(1, vocab)), N_CLASSES)
    tables = np.empty((N_CLASSES, vocab, SUCCESSORS), dtype=np.int64)
    for c in range(N_CLASSES):
        own = rng.random((vocab, SUCCESSORS)) < AFFINITY
        other = halves[(c + 1) % N_CLASSES]
        tables[c] = np.where(
            own,
            rng.choice(halves[c], (vocab, SUCCESSORS)),
            rng.choice(other, (vocab, SUCCESSORS)),
        )
    return tables


def data(size: Size, rng: np.random.Generator) -> Iterator[Batch]:
    """[CLS] + a sequence from one of two Markov chains drawn from ``rng``; label = the chain."""
    vocab, seq, n = size.config["vocab_size"], size.config["seq_len"], size.batch_size
    tables = _chains(vocab, rng)
    while True:
        labels = rng.integers(0, N_CLASSES, n)
        first = rng.integers(1, vocab, n) if seq > 1 else None
        # One choice per position, though [CLS] and the first token take none: the stream every
        # stored result was drawn from.
        choices = successor_choices(rng, (n, seq))
        tokens = np.full((n, seq), CLS, dtype=np.int64)
        if first is not None:
            tokens[:, 1:] = walk(tables, labels, first, choices[:, 2:])
        yield {"tokens": tokens.astype(np.int32), "labels": labels.astype(np.int32)}


def flops(size: Size) -> float:
    """Analytic FLOPs of one training step (formula in the module docstring)."""
    c = size.config
    pooler_and_classifier = 2 * size.batch_size * c["d_model"] * (c["d_model"] + c["n_classes"])
    return train_step_flops(size, head=pooler_and_classifier)


WORKLOAD = package_workload(
    __name__,
    validate=validator("bert", shortest=2, why=" ([CLS] and one token)"),
    description="BERT-style encoder (post-LN, fused attention), classification from [CLS]",
    loss="cross-entropy of the classifier on the pooled [CLS] token, mean over the batch",
    optimizers=sgd_and_adam(sgd_lr=0.01, adam_lr=1e-3),
    flops=flops,
)
