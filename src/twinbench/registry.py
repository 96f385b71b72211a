"""Where workloads come from: the built-in list, or a user's Python file."""

from __future__ import annotations

import importlib
import numbers
import unicodedata
from collections.abc import Mapping
from pathlib import Path

from twinbench.errors import TwinbenchError
from twinbench.spec import Workload, load_module_from_path

# The built-in workloads, in the order `twinbench list` and the default suite show them: the
# examples (linear regression, the MLP, XOR), then the model zoo.
EXAMPLES = ("linreg", "mlp", "xor")
ZOO = ("resnet", "bert", "gpt", "lstm", "gru")
BUILTIN = EXAMPLES + ZOO


def builtin(name: str) -> Workload:
    """A built-in workload by name; a one-line error lists the valid names."""
    if name not in BUILTIN:
        raise TwinbenchError(f"unknown workload '{name}'; valid: {', '.join(BUILTIN)}")
    workload: Workload = importlib.import_module(f"twinbench.workloads.{name}").WORKLOAD
    return workload


def from_file(path: str | Path) -> Workload:
    """The ``WORKLOAD`` (a `twinbench.WorkloadSpec`) a user's file defines."""
    path = Path(path)
    if not path.is_file():
        raise TwinbenchError(f"workload file {path} does not exist")
    module = load_module_from_path(path)  # SystemExit and any exception: one line
    workload = getattr(module, "WORKLOAD", None)
    if workload is None:
        raise TwinbenchError(f"workload file {path} defines no WORKLOAD (a twinbench.WorkloadSpec)")
    for attribute in ("name", "description", "sizes", "batches", "twin", "twin_path", "size"):
        if not hasattr(workload, attribute):
            raise TwinbenchError(
                f"WORKLOAD in {path} lacks '{attribute}'; define it as a twinbench.WorkloadSpec"
            )
    check_name(workload.name, str(path))
    _check_sizes(workload, path)
    checked: Workload = workload
    return checked


def check_name(name: object, where: str) -> str:
    """A workload name that every command, table and file name can carry: a non-empty string
    with no ``/`` and no control character (newlines, escapes)."""
    bad = (
        not isinstance(name, str)
        or not name.strip()
        or "/" in name
        or any(unicodedata.category(ch).startswith("C") for ch in name)
    )
    if bad:
        raise TwinbenchError(
            f"workload name {name!r} in {where} is invalid; give a non-empty name without '/' "
            "or control characters"
        )
    return str(name)


def _check_sizes(workload: object, path: Path) -> None:
    """``sizes`` maps names to `twinbench.Size` presets (a duck-typed WORKLOAD may not)."""
    sizes = getattr(workload, "sizes", None)
    if not isinstance(sizes, Mapping) or not sizes:
        raise TwinbenchError(
            f"WORKLOAD in {path}: sizes {sizes!r:.80} is invalid; give a non-empty mapping of "
            "size names to twinbench.Size"
        )
    for key, size in sizes.items():
        config, batch = getattr(size, "config", None), getattr(size, "batch_size", None)
        if not (
            isinstance(getattr(size, "name", None), str)
            and isinstance(config, Mapping)
            and isinstance(batch, numbers.Integral)
            and not isinstance(batch, bool)
        ):
            raise TwinbenchError(
                f"WORKLOAD in {path}: size {key!r:.40} ({type(size).__name__}) is invalid; give "
                "a twinbench.Size(name, config, batch_size)"
            )


def resolve(names: list[str] | None = None, files: list[str] | None = None) -> list[Workload]:
    """The workloads a command works on: the named built-ins plus those from files.

    No names and no files means every built-in workload; files alone mean just those files,
    unless names are given too. A name may also be a file's workload name.
    """
    from_files = [from_file(f) for f in files or []]
    _refuse_duplicates(from_files, list(files or []))
    by_name = {w.name: w for w in from_files}
    if not names:
        return from_files or [builtin(n) for n in BUILTIN]
    chosen = [by_name[n] if n in by_name else builtin(n) for n in names]
    return chosen + [w for w in from_files if w.name not in names]


def _refuse_duplicates(workloads: list[Workload], files: list[str]) -> None:
    """Two files defining one name (or a file reusing a built-in's name) would measure one
    workload with the other's twins: refuse, naming both."""
    seen: dict[str, str] = {}
    for workload, path in zip(workloads, files, strict=True):
        if workload.name in BUILTIN:
            raise TwinbenchError(
                f"workload file {path} names its workload '{workload.name}', the name of a "
                "built-in workload; give it another name"
            )
        if workload.name in seen:
            if Path(seen[workload.name]).resolve() == Path(path).resolve():
                raise TwinbenchError(f"workload file {path} is given twice; give it once")
            raise TwinbenchError(
                f"workload files {seen[workload.name]} and {path} both define a workload named "
                f"'{workload.name}'; give each workload its own name"
            )
        seen[workload.name] = path
