"""Where workloads come from: the built-in list, or a user's Python file."""

from __future__ import annotations

import importlib
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
    module = load_module_from_path(path)
    workload = getattr(module, "WORKLOAD", None)
    if workload is None:
        raise TwinbenchError(f"workload file {path} defines no WORKLOAD (a twinbench.WorkloadSpec)")
    for attribute in ("name", "description", "sizes", "batches", "twin", "twin_path", "size"):
        if not hasattr(workload, attribute):
            raise TwinbenchError(
                f"WORKLOAD in {path} lacks '{attribute}'; define it as a twinbench.WorkloadSpec"
            )
    checked: Workload = workload
    return checked


def resolve(names: list[str] | None = None, files: list[str] | None = None) -> list[Workload]:
    """The workloads a command works on: the named built-ins plus those from files.

    No names and no files means every built-in workload; files alone mean just those files,
    unless names are given too. A name may also be a file's workload name.
    """
    from_files = [from_file(f) for f in files or []]
    by_name = {w.name: w for w in from_files}
    if not names:
        return from_files or [builtin(n) for n in BUILTIN]
    chosen = [by_name[n] if n in by_name else builtin(n) for n in names]
    return chosen + [w for w in from_files if w.name not in names]
