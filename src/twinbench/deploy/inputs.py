"""The batches every artefact is called with, and the artefact's description beside it.

The suite writes one batch per batch size into the run's folder (NumPy, from the workload's own
data stream) before any worker starts, so the exporting process, every serving process and the
eager reference all see the same numbers. Imports no framework.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from twinbench.spec import Batch, Size, Workload

INPUTS = "inputs.npz"


def batch_of(workload: Workload, size: Size, rows: int, seed: int) -> Batch:
    """The first ``rows`` rows of the workload's data stream at ``size`` (as many batches as
    that takes, joined)."""
    needed = -(-rows // size.batch_size)
    batches = list(islice(workload.batches(size, seed), needed))
    return {key: np.concatenate([b[key] for b in batches])[:rows] for key in batches[0]}


def write_inputs(
    folder: Path, workload: Workload, size: Size, batch_sizes: Iterable[int], seed: int
) -> None:
    """One batch per batch size, each the first rows of the largest (so batch 1 is row 0)."""
    sizes = sorted(set(batch_sizes))
    largest = batch_of(workload, size, sizes[-1], seed)
    # typed as Any: numpy's stub reads any ** keyword as possibly its own allow_pickle flag
    arrays: dict[str, Any] = {f"{b}/{k}": a[:b] for b in sizes for k, a in largest.items()}
    np.savez(folder / INPUTS, **arrays)


def read_inputs(folder: Path) -> dict[int, Batch]:
    """Batch size -> batch, as `write_inputs` wrote them."""
    batches: dict[int, Batch] = {}
    with np.load(folder / INPUTS) as data:
        for name in data.files:
            b, _, key = name.partition("/")
            batches.setdefault(int(b), {})[key] = data[name]
    return batches


def save_by_batch(file: Path, arrays: Mapping[int, np.ndarray]) -> None:
    """Outputs by batch size, as `read_by_batch` reads them."""
    named: dict[str, Any] = {str(b): array for b, array in arrays.items()}  # Any: as above
    np.savez(file, **named)


def read_by_batch(file: Path) -> dict[int, np.ndarray]:
    """Batch size -> outputs, as `save_by_batch` wrote them; empty when the file is missing."""
    if not file.is_file():
        return {}
    with np.load(file) as data:
        return {int(b): data[b] for b in data.files}


class _Recording(dict[str, Any]):
    """A batch that remembers which keys were read."""

    def __init__(self, batch: Mapping[str, Any]) -> None:
        super().__init__(batch)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)


def used_keys(forward: Callable[[dict[str, Any]], object], batch: Mapping[str, Any]) -> list[str]:
    """The keys of ``batch`` that ``forward`` reads (the model's inputs, not its targets), in the
    batch's order: an artefact takes exactly these, positionally."""
    recording = _Recording(batch)
    forward(recording)
    return [key for key in batch if key in recording.read]


@dataclass(frozen=True)
class ArtefactInfo:
    """What a serving process needs besides the artefact: its inputs, their dtypes, and
    whether the batch dimension is symbolic (else the one batch size it was exported at)."""

    keys: list[str]
    dtypes: list[str]
    dynamic: bool
    batch: int

    def write(self, artefact: Path) -> None:
        info_path(artefact).write_text(json.dumps(asdict(self)))

    @classmethod
    def read(cls, artefact: Path) -> ArtefactInfo:
        return cls(**json.loads(info_path(artefact).read_text()))

    def arguments(self, batch: Batch) -> list[np.ndarray]:
        """The artefact's positional inputs from ``batch``, in the dtypes it was exported with."""
        return [
            np.ascontiguousarray(batch[k].astype(d))
            for k, d in zip(self.keys, self.dtypes, strict=True)
        ]

    def accepts(self, batch_size: int) -> bool:
        """True when the artefact can be called at ``batch_size``."""
        return self.dynamic or batch_size == self.batch


def info_path(artefact: Path) -> Path:
    return artefact.with_name(artefact.name + ".json")
