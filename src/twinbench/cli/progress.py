"""Live progress of a run in the terminal: the current cell, cells done, and an ETA."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_MESSAGES = {
    "probe": "probing {framework} matmul peak",
    "parity": "checking parity of {workload}/{size}",
    "setup": "setting up {cell}",
    "compile": "compiling and warming up {cell}",
    "measure": "timing {cell} ({samples} samples)",
}


class RunProgress:
    """Turns the runner's events into a rich progress bar on stderr."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._task = self._progress.add_task("starting", total=None)
        self._done = 0
        self._total = 0
        # The bar counts worker processes where the run says how many (a cell's processes lie
        # a pass over the run apart, so cells finish only in the last pass), else cells.
        self._by_process = False

    def __enter__(self) -> RunProgress:
        return self  # the display starts with the run, after its settings were accepted

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def update(self, event: str, info: dict[str, Any]) -> None:
        if not self._progress.console.is_terminal:
            self._log(event, info)
            return
        if event == "start":
            self._by_process = "processes" in info
            self._progress.start()
            self._total = info["processes"] if self._by_process else info["cells"]
            self._progress.update(self._task, total=self._total)
        elif event == "cell-added":  # measured to confirm a prediction: unknown at the start
            self._total += info["processes"] if self._by_process else 1
            self._progress.update(self._task, total=self._total)
        elif event == "process-done" and self._by_process:
            self._progress.advance(self._task)
        elif event == "cell-done":
            left = info.get("processes_left", 0) if self._by_process else 1
            self._progress.advance(self._task, left)
            if info["status"] != "ok":
                self._progress.console.print(
                    f"[red]{escape(info['cell'])}: {escape(info['status'])}[/red]"
                )
        elif event == "parity-done" and not info["passed"]:
            self._progress.console.print(
                f"[red]parity failed for {escape(info['workload'])}/{escape(info['size'])}: "
                "measured, no verdict[/red]"
            )
        elif event in _MESSAGES:
            self._progress.update(self._task, description=escape(_MESSAGES[event].format(**info)))

    def _log(self, event: str, info: dict[str, Any]) -> None:
        """Plain lines for logs and CI, where a live display cannot redraw."""
        console = self._progress.console
        if event == "start":
            self._total = info["cells"]
            console.print(
                f"run {info['run_id']}: {self._total} cells", highlight=False, markup=False
            )
        elif event == "cell-added":
            self._total += 1
        elif event == "cell-done":
            self._done += 1
            console.print(
                f"[{self._done}/{self._total}] {info['cell']}: {info['status']}",
                highlight=False,
                markup=False,
            )
        elif event == "parity-done":
            verdict = "pass" if info["passed"] else "FAILED (measured, no verdict)"
            console.print(
                f"parity {info['workload']}/{info['size']}: {verdict}",
                highlight=False,
                markup=False,
            )
        elif event in ("probe", "setup", "compile"):
            console.print(_MESSAGES[event].format(**info), highlight=False, markup=False)
