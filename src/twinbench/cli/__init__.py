"""The ``twinbench`` command: a thin layer over the library; errors become exit codes here only.

Each module registers its commands on the one typer ``app``; ``main`` is the console script.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from twinbench.cli import converge, core, deploy, dynamic, measure, parallel, reports, suites  # noqa: F401  (they register the commands)
from twinbench.cli.base import app, err_console
from twinbench.errors import TwinbenchError

__all__ = ["app", "main"]


def main() -> None:
    """Entry point: user errors are one line on stderr and exit code 2, never a traceback."""
    try:
        # Without standalone mode click returns a typer.Exit's code instead of exiting.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except TwinbenchError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        code = exc.exit_code if isinstance(exc, typer.Exit) else exc.code
        sys.exit(code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors (typer vendors click since 0.25)
        exc.show()  # type: ignore[attr-defined]
        sys.exit(getattr(exc, "exit_code", 2))
