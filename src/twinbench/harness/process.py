"""The parent's handle on one worker subprocess: send, receive with a deadline, record failures."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from typing import Any

from twinbench.harness.environment import thread_environment

STDERR_TAIL = 2000  # characters of a failed worker's stderr kept with its record


class CellFailed(Exception):
    """A worker raised, crashed or timed out; ``status`` is the cell status to record."""

    def __init__(self, status: str, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def describe_exit(returncode: int) -> str:
    """A human reading of a worker's exit status."""
    if returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (killed: out of memory?)" if name == "SIGKILL" else ""
        return f"worker died from {name}{hint}"
    return f"worker exited with status {returncode}"


class WorkerProcess:
    """``python -m twinbench.harness.worker`` with the run's thread budget in its environment."""

    def __init__(self, request: dict[str, Any], *, threads: int) -> None:
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in close())
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "twinbench.harness.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, **thread_environment(threads)},
            start_new_session=True,  # Ctrl-C reaches the parent, which then stops the workers
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.send(request)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:  # closed here, once the worker's output ends
            for line in self.proc.stdout:
                self._lines.put(line)
        self._lines.put(None)

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the worker is gone; receive() reports how it ended

    def receive(self, timeout: float) -> dict[str, Any]:
        """The worker's next answer; raises `CellFailed` on an error, a crash or the deadline."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise CellFailed(
                "timeout", f"no answer within {timeout:.0f} s; worker stopped"
            ) from None
        if line is None:
            returncode = self.proc.wait()
            raise CellFailed("crashed", f"{describe_exit(returncode)}{self._stderr_tail()}")
        message: dict[str, Any] = json.loads(line)
        if "error" in message:
            self.close()
            raise CellFailed("error", message["error"])
        return message

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        tail = self._stderr.read()[-STDERR_TAIL:].strip()
        return f"; stderr: {tail}" if tail else ""

    def close(self) -> None:
        """Stop the worker (if it still runs) and release its files."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdin is not None:  # stdout closes itself: the reader thread sees EOF
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        self._stderr.close()


def one_shot(request: dict[str, Any], *, threads: int, timeout: float) -> Any:
    """Run a worker request that answers once (parity, probe) and return its result."""
    worker = WorkerProcess(request, threads=threads)
    try:
        return worker.receive(timeout)["result"]
    finally:
        worker.close()
