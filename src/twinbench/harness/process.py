"""The one worker protocol: every suite's framework code runs in a subprocess started here.

The parent starts ``python -m <module>`` with the run's thread budget in its environment
(`WorkerProcess`, `one_shot`) and writes one JSON request line; the worker answers with one JSON
object per line: ``{"result": ...}``, ``{"error": "..."}`` or, in a conversation, whatever the
two sides agreed. The worker's side is `serve` (its main) and `pin_threads`, which it calls
before any framework is imported. Only this module knows the wire format.
"""

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
import traceback
from collections.abc import Callable, Mapping
from typing import IO, Any

from twinbench.harness.environment import thread_environment

STDERR_TAIL = 2000  # characters of a failed worker's stderr kept with its record
HARNESS_WORKER = "twinbench.harness.worker"
THREADS_VARIABLE = "TWINBENCH_THREADS"  # set by `thread_environment`; 0 or unset: no budget

Request = dict[str, Any]
Send = Callable[[dict[str, Any]], None]
Handler = Callable[[Request], Any]
"""Answers a request once: its return value is sent as ``{"result": ...}``."""
Session = Callable[[Request, Send, IO[str]], None]
"""Holds a conversation: sends any messages and reads the parent's further command lines."""


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
    """``python -m <module>`` (a worker that calls `serve`) with ``threads`` as its budget."""

    def __init__(
        self,
        request: Request,
        *,
        threads: int,
        module: str = HARNESS_WORKER,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in close())
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={**os.environ, **thread_environment(threads), **(env or {})},
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


def one_shot(
    request: Request, *, threads: int, timeout: float, module: str = HARNESS_WORKER
) -> Any:
    """Run a request that answers once (parity, probe, a suite's step) and return its result.

    Raises `CellFailed` when the worker raised, crashed or gave no answer within ``timeout``.
    """
    worker = WorkerProcess(request, threads=threads, module=module)
    try:
        return worker.receive(timeout)["result"]
    finally:
        worker.close()


# ---- the worker's side --------------------------------------------------------------------------


def thread_budget() -> int:
    """The threads this worker may use, as its parent set them; 0 when no budget was set."""
    return int(os.environ.get(THREADS_VARIABLE, "0"))


def pin_threads() -> int:
    """Restrict this process to its thread budget's first cores; returns the budget.

    Call it before a framework is imported: XLA sizes its thread pool from the CPU affinity.
    """
    threads = thread_budget()
    if threads and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:threads])
    return threads


def serve(handlers: Mapping[str, Handler], sessions: Mapping[str, Session] | None = None) -> None:
    """A worker's main: pin its threads, read one request, answer it by its ``kind``.

    A `Handler`'s return value is sent as the result; a `Session` talks on its own. An exception
    is sent as ``{"error": "Type: message"}`` (its traceback goes to stderr, which the parent
    keeps) and the worker exits with status 1. Anything the frameworks print goes to stderr, so
    stray output cannot corrupt the protocol.
    """
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def send(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message, default=float) + "\n")

    pin_threads()
    request: Request = json.loads(sys.stdin.readline())
    kind = request["kind"]
    try:
        if sessions and kind in sessions:
            sessions[kind](request, send, sys.stdin)
        else:
            send({"result": handlers[kind](request)})
    except Exception as exc:
        traceback.print_exc()
        send({"error": f"{type(exc).__name__}: {exc}"})
        sys.exit(1)
