"""The typer application and its two consoles; command modules register on ``app``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(
    help="PyTorch or JAX for this workload, on this machine — and how sure are we?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


console = Console()


err_console = Console(stderr=True)


DEFAULT_OUT = Path("twinbench-results")
