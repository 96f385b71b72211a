"""The typer application and its two consoles; command modules register on ``app``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

import typer
from rich.console import Console

app = typer.Typer(
    help="PyTorch or JAX for this workload, on this machine — and how sure are we?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain help text: a docstring's paragraphs are wrapped to the terminal, not at its line ends
    rich_markup_mode=None,
)

PIPED_WIDTH = 200  # columns of the tables when the output is a file, a pipe or a CI log


def _console(stream: TextIO, *, stderr: bool = False) -> Console:
    """A console for ``stream``. Written to a file or a pipe, rich would fit every table into
    80 columns and cut cells ("torch…" for both torch modes): give it room instead. A COLUMNS
    variable in the environment still decides."""
    piped = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, width=PIPED_WIDTH if piped else None)


console = _console(sys.stdout)
err_console = _console(sys.stderr, stderr=True)

DEFAULT_OUT = Path("twinbench-results")
