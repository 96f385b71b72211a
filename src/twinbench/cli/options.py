"""Options several commands share, and the parsers of list-valued options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twinbench.errors import TwinbenchError

AsJson = Annotated[bool, typer.Option("--json", help="Print a machine-readable result.")]


WorkloadFiles = Annotated[
    list[str] | None,
    typer.Option("--workload-file", help="Python file defining a WORKLOAD (repeatable)."),
]


Modes = Annotated[
    list[str] | None,
    typer.Option("--mode", help="torch-eager, torch-compile, jax-jit, jax-eager (repeatable)."),
]


Phases = Annotated[
    list[str] | None, typer.Option("--phase", help="train and/or infer (default train).")
]


Dtype = Annotated[str, typer.Option(help="float32 or bfloat16.")]


Device = Annotated[str, typer.Option(help="cpu or cuda.")]


Threads = Annotated[
    int | None, typer.Option(help="Threads for both frameworks (default: all usable cores).")
]


Budget = Annotated[float, typer.Option(help="Seconds of steady-state timing per cell.")]


Repeats = Annotated[
    int,
    typer.Option(
        help="Worker processes per cell; the CI of each median covers their disagreement (1: "
        "the noise inside one process only). The first compiles with empty compile caches, "
        "the others reuse them."
    ),
]
Timeout = Annotated[float, typer.Option(help="Seconds a cell may take to set up and compile.")]


Out = Annotated[Path, typer.Option(help="Directory of the results database and reports.")]


AllowTf32 = Annotated[
    bool, typer.Option("--allow-tf32", help="Allow TF32 matmuls, on both sides alike.")
]


CompileMode = Annotated[str, typer.Option(help="default, reduce-overhead or max-autotune.")]


Seed = Annotated[int, typer.Option(help="Seed of the canonical init and the data (0 to 2**32-1).")]
Results = Annotated[Path, typer.Option("--results", help="Directory of the results database.")]


TensorBoardDir = Annotated[
    Path | None,
    typer.Option(
        "--tensorboard",
        help="Also write both twins' parity loss curves as TensorBoard scalars under this "
        "directory.",
    ),
]


def int_list(flag: str, text: str) -> tuple[int, ...]:
    values = [part.strip() for part in text.split(",") if part.strip()]
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise TwinbenchError(
            f"{flag} '{text}' is invalid; give comma-separated integers > 0, e.g. 1,2,4"
        ) from None


def csv_list(values: list[str] | None) -> list[str] | None:
    """Repeatable options that also accept comma-separated values."""
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def names_or(values: list[str] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    """A repeatable (or comma-separated) option's names, or ``default`` when none were given."""
    return tuple(csv_list(values) or default)
