"""A workload at a size, as a run plans it and a cell's worker rebuilds it from its request.

Kept apart from the runner so that a worker process imports neither it nor the statistics
behind it (SciPy's import alone took a second of every worker's set-up).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from twinbench.spec import Size, Workload

CHECKPOINT_OPTION = "gradient_checkpointing"  # the config key of workloads that offer it


@dataclass(frozen=True)
class Point:
    """One workload at one size — in a sweep, with its batch size or sequence length changed."""

    workload: Workload
    workload_file: str | None
    size_name: str
    batch_size: int | None = None
    seq_len: int | None = None
    checkpointing: bool = False  # recompute the blocks' activations in the backward pass

    @property
    def size(self) -> Size:
        size = self.workload.size(self.size_name)
        config = {**size.config, "seq_len": self.seq_len} if self.seq_len else size.config
        if self.checkpointing:
            config = {**config, CHECKPOINT_OPTION: True}
        tokens = self.seq_len or size.tokens_per_sample
        return replace(
            size,
            config=config,
            batch_size=self.batch_size or size.batch_size,
            tokens_per_sample=tokens,
        )

    @property
    def label(self) -> str:
        """The size as stored: ``small``, or ``small bs=64 seq=128`` for a sweep point."""
        parts = [self.size_name]
        if self.batch_size:
            parts.append(f"bs={self.batch_size}")
        if self.seq_len:
            parts.append(f"seq={self.seq_len}")
        if self.checkpointing:
            parts.append("ckpt")
        return " ".join(parts)
