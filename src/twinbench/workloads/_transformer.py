"""What the ``bert`` and ``gpt`` specs share: a transformer layer's FLOPs and the config checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twinbench.errors import TwinbenchError
from twinbench.spec import Size, require_divisible


def preset(
    name: str,
    layers: int,
    d: int,
    heads: int,
    seq: int,
    vocab: int,
    positions: int,
    *,
    batch: int,
    **extra: Any,
) -> Size:
    """A size preset: ``layers`` × (``d`` wide, ``heads`` heads), ``seq`` tokens of ``vocab``,
    a ``positions``-long position table; ``extra`` config keys follow (bert's ``n_classes``)."""
    config = {
        "n_layers": layers,
        "d_model": d,
        "n_heads": heads,
        "seq_len": seq,
        "vocab_size": vocab,
        "max_positions": positions,
        # a run option: recompute each block's activations in the backward pass (both twins)
        "gradient_checkpointing": False,
        **extra,
    }
    return Size(name, config, batch_size=batch, tokens_per_sample=seq)


def layer_flops(size: Size) -> int:
    """Forward FLOPs of one layer (4·d MLP): 24·B·T·d² + 4·B·T²·d, broken down in each spec."""
    c = size.config
    b, t, d = size.batch_size, c["seq_len"], c["d_model"]
    return int(24 * b * t * d * d + 4 * b * t * t * d)


def train_step_flops(size: Size, head: int) -> float:
    """FLOPs of one training step, 3 × forward (backward = 2 × forward), with ``head`` the
    forward FLOPs on top of the ``n_layers`` layers."""
    return float(3.0 * (size.config["n_layers"] * layer_flops(size) + head))


def validator(workload: str, *, shortest: int, why: str = "") -> Callable[[Size], None]:
    """``validate`` for a transformer: heads divide ``d_model``; ``seq_len`` runs from
    ``shortest`` (``why`` says what needs that many) to the position table's length."""

    def validate(size: Size) -> None:
        """Refuse configs the model cannot run: heads not dividing d, sequences past the table."""
        c = size.config
        require_divisible(workload, c, "d_model", by="n_heads")
        if not shortest <= c["seq_len"] <= c["max_positions"]:
            raise TwinbenchError(
                f"{workload}: seq_len {c['seq_len']} must be between {shortest}{why} and the "
                f"position table size (max_positions {c['max_positions']})"
            )

    return validate
