"""``bert`` — a BERT-style encoder classifying token sequences from the first ([CLS]) token.

Each sequence is ``[CLS]`` (token 0) followed by tokens from one of two seeded sparse Markov
chains over tokens 1…vocab−1; the label is the chain that generated it. Each chain's transition
table points mostly (`AFFINITY`) into its own random half of the vocabulary, so single tokens are
weak evidence and the whole sequence strong evidence: the encoder must gather it into [CLS].
Batches hold ``tokens`` (B, T) and ``labels`` (B,), int32. No padding, hence no attention mask.

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

from twinbench.errors import TwinbenchError
from twinbench.spec import Batch, OptimizerConfig, Size, WorkloadSpec

CLS = 0
N_CLASSES = 2  # one Markov chain per class
SUCCESSORS = 4  # possible next tokens per token, per chain
TRANSITION = np.array([0.6, 0.25, 0.1, 0.05])  # their probabilities
AFFINITY = 0.75  # share of a chain's successors drawn from its own half of the vocabulary


def _size(
    name: str, layers: int, d: int, heads: int, seq: int, vocab: int, positions: int, batch: int
) -> Size:
    config = {
        "n_layers": layers,
        "d_model": d,
        "n_heads": heads,
        "seq_len": seq,
        "vocab_size": vocab,
        "max_positions": positions,
        "n_classes": N_CLASSES,
    }
    return Size(name, config, batch_size=batch, tokens_per_sample=seq)


SIZES = {
    # A position table a little longer than seq_len at tiny, BERT's 512 above, so that
    # `twinbench run --seq-lens` can sweep up.
    "tiny": _size("tiny", 2, 64, 2, 32, 256, 64, batch=8),
    "small": _size("small", 4, 256, 4, 128, 8192, 512, batch=16),
    "full": _size("full", 12, 768, 12, 128, 30522, 512, batch=32),  # BERT-base
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
    cumulative = np.cumsum(TRANSITION)
    while True:
        labels = rng.integers(0, N_CLASSES, n)
        tokens = np.empty((n, seq), dtype=np.int64)
        tokens[:, 0] = CLS
        if seq > 1:
            tokens[:, 1] = rng.integers(1, vocab, n)
        choices = np.searchsorted(cumulative, rng.random((n, seq)), side="right")
        choices = np.minimum(choices, SUCCESSORS - 1)  # guards the rounding of cumulative[-1]
        for t in range(2, seq):
            tokens[:, t] = tables[labels, tokens[:, t - 1], choices[:, t]]
        yield {"tokens": tokens.astype(np.int32), "labels": labels.astype(np.int32)}


def flops(size: Size) -> float:
    """Analytic FLOPs of one training step (formula in the module docstring)."""
    c = size.config
    b, t, d = size.batch_size, c["seq_len"], c["d_model"]
    per_layer = 24 * b * t * d * d + 4 * b * t * t * d
    head = 2 * b * d * d + 2 * b * d * c["n_classes"]
    return 3.0 * (c["n_layers"] * per_layer + head)


def validate(size: Size) -> None:
    """Refuse configs the model cannot run: heads not dividing d, sequences past the table."""
    c = size.config
    if c["d_model"] % c["n_heads"]:
        raise TwinbenchError(
            f"bert: d_model {c['d_model']} is not divisible by n_heads {c['n_heads']}"
        )
    if not 2 <= c["seq_len"] <= c["max_positions"]:
        raise TwinbenchError(
            f"bert: seq_len {c['seq_len']} must be between 2 ([CLS] and one token) and the "
            f"position table size (max_positions {c['max_positions']})"
        )


WORKLOAD = WorkloadSpec(
    name="bert",
    description="BERT-style encoder (post-LN, fused attention), classification from [CLS]",
    sizes=SIZES,
    data=data,
    loss="cross-entropy of the classifier on the pooled [CLS] token, mean over the batch",
    twins={
        "torch": "twinbench.workloads.bert.torch_twin",
        "jax": "twinbench.workloads.bert.jax_twin",
    },
    optimizers={
        "sgd": OptimizerConfig("sgd", lr=0.01, momentum=0.9),
        "adam": OptimizerConfig("adam", lr=1e-3),
    },
    flops=flops,
    validate=validate,
)
