"""Options several commands share, and the parsers of list-valued options."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from twinbench.errors import TwinbenchError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

SettingsT = TypeVar("SettingsT", bound="DataclassInstance")


def option(help: str, *flags: str) -> Any:
    """``typer.Option(*flags, help=help)``: an option's declaration in one line where it fits."""
    return typer.Option(*flags, help=help)


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


Dtype = Annotated[str, option("float32 or bfloat16.")]


Device = Annotated[str, option("cpu or cuda.")]


Threads = Annotated[int | None, option("Threads for both frameworks (default: all usable cores).")]


Budget = Annotated[float, option("Seconds of steady-state timing per cell.")]


Repeats = Annotated[
    int,
    option(
        "Worker processes per cell; the CI of each median covers their disagreement (1: "
        "the noise inside one process only). The first compiles with empty compile caches, "
        "the others reuse them."
    ),
]
Timeout = Annotated[float, option("Seconds a cell may take to set up and compile.")]


Out = Annotated[Path, option("Directory of the results database and reports.")]


AllowTf32 = Annotated[
    bool, typer.Option("--allow-tf32", help="Allow TF32 matmuls, on both sides alike.")
]


CompileMode = Annotated[str, option("default, reduce-overhead or max-autotune.")]


Seed = Annotated[int, option("Seed of the canonical init and the data (0 to 2**32-1).")]
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


def settings_from(
    settings: type[SettingsT],
    options: Mapping[str, Any],
    *,
    repeatable: Iterable[str] = (),
    **values: Any,
) -> SettingsT:
    """A suite's settings dataclass from a command's ``options`` (its ``locals()``).

    An option named like a settings field passes as it is; a ``repeatable`` option (``--mode``)
    fills the plural field (``modes``) with its names, or that field's default when none were
    given; ``values`` are the fields an option reaches renamed or parsed.
    """
    fields = {field.name for field in dataclasses.fields(settings)}
    chosen = {name: value for name, value in options.items() if name in fields}
    for option in repeatable:
        field = f"{option}s"
        chosen[field] = names_or(options[option], getattr(settings(), field))
    return settings(**chosen | values)
