"""The one worker protocol: every suite's framework code runs in a subprocess started here.

The parent starts ``python -m <module>`` with the run's thread budget in its environment
(`WorkerProcess`, `one_shot`) and writes one JSON request line; the worker answers with one
message per line: ``{"result": ...}``, ``{"error": "..."}`` or, in a conversation, whatever the
two sides agreed. The worker's side is `serve` (its main) and `pin_threads`, which it calls
before any framework is imported. Only this module knows the wire format.

The worker runs user code (the twins), so the channel is guarded against it:

* each message is signed: the parent sends a fresh random key with the request (on stdin, never
  in the environment or argv) and the worker prefixes every line with its HMAC-SHA256 over the
  line's sequence number and body; a line that fails the check ends the cell as ``error``;
* the worker moves its protocol pipe and its command pipe to random high, close-on-exec file
  descriptors (fd 0 becomes ``/dev/null``, fd 1 a copy of stderr), out of a twin's children;
* a worker's end is noticed when it exits, even if a process it forked keeps the pipe open;
* closing a worker kills its whole process group (it is started in a session of its own), its
  descendants that left the group and any process still carrying its marker in its environment;
  on Linux a worker also dies with its parent (``PR_SET_PDEATHSIG``).

Code running inside the worker can still patch the harness in memory; a sandbox, not a protocol,
would stop that.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import hmac
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import IO, Any

import psutil

from twinbench.harness.environment import worker_environment

STDERR_TAIL = 2000  # characters of a failed worker's stderr kept with its record
HARNESS_WORKER = "twinbench.harness.worker"
THREADS_VARIABLE = "TWINBENCH_THREADS"  # set by `worker_environment`; 0 or unset: no budget
MARKER_VARIABLE = "TWINBENCH_WORKER"  # a worker's id, inherited by what it starts; not a secret
EXIT_GRACE_S = 2.0  # after a worker exits, how long its last lines may take to arrive
# After a worker closes its pipe, how long it may take to finish exiting, so that its exit status
# is what the cell reports: an interpreter with both frameworks loaded can take seconds to shut
# down on a busy machine. A worker that exits promptly costs none of it.
EXIT_WAIT_S = 20.0
QUOTED = 120  # characters of a line that failed authentication quoted in the error

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


def _signature(key: bytes, sequence: int, body: str) -> str:
    return hmac.new(key, f"{sequence}:{body}".encode(), hashlib.sha256).hexdigest()


_EXITED = object()  # queued by the watcher once the worker has exited
_LIVE: set[WorkerProcess] = set()
_LIVE_LOCK = threading.Lock()


def stop_workers() -> None:
    """Stop every worker this process started that is still open (an interrupted run's)."""
    with _LIVE_LOCK:
        workers = list(_LIVE)
    for worker in workers:
        worker.close()


atexit.register(stop_workers)


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
        self._lines: queue.Queue[str | object | None] = queue.Queue()
        self._key = secrets.token_bytes(32)
        self._received = 0  # the sequence number of the next message
        self.marker = secrets.token_hex(8)
        self._eof = threading.Event()
        self._close_lock = threading.Lock()
        self._closed = False
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            encoding="utf-8",
            errors="replace",  # a twin's stray bytes fail authentication, not the reader thread
            env={
                **os.environ,
                **worker_environment(threads),
                **(env or {}),
                MARKER_VARIABLE: self.marker,
            },
            start_new_session=True,  # Ctrl-C reaches the parent, which then stops the workers
        )
        with _LIVE_LOCK:
            _LIVE.add(self)
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._watch, daemon=True).start()
        self.send({"key": self._key.hex(), "parent": os.getpid(), "request": request})

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with contextlib.suppress(OSError, ValueError), self.proc.stdout:
            for line in self.proc.stdout:  # closed here, once the worker's output ends
                self._lines.put(line)
        self._eof.set()
        self._lines.put(None)

    def _watch(self) -> None:
        """Wake the receiver once the worker exits, even if a process it forked holds the pipe."""
        self.proc.wait()
        self._eof.wait(EXIT_GRACE_S)  # its last lines are read first
        self._lines.put(_EXITED)

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the worker is gone; receive() reports how it ended

    def receive(self, timeout: float, key: str) -> Any:
        """The ``key`` field of the worker's next message.

        Raises `CellFailed` (and stops the worker) when it raised, crashed, ran past
        ``timeout`` seconds, or sent a line the harness did not sign or a message without
        ``key``.
        """
        try:
            item = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise CellFailed(
                "timeout", f"no answer within {timeout:.0f} s; worker stopped"
            ) from None
        if item is None or item is _EXITED:
            raise self._ended()
        assert isinstance(item, str)
        message = self._authenticate(item)
        if "error" in message:
            self.close()
            raise CellFailed("error", str(message["error"]))
        if key not in message:
            self.close()
            raise CellFailed(
                "error", f"the worker sent {sorted(message)} where '{key}' was due; worker stopped"
            )
        return message[key]

    def _authenticate(self, line: str) -> dict[str, Any]:
        """The message a signed line carries; `CellFailed` for any line the harness did not
        write (a twin writing on the worker's channel)."""
        tag, _, body = line.rstrip("\n").partition(" ")
        expected = _signature(self._key, self._received, body)
        message = None
        if hmac.compare_digest(tag.encode(), expected.encode()):
            with contextlib.suppress(ValueError):
                message = json.loads(body)
        if not isinstance(message, dict):
            self.close()
            quoted = line.strip()[:QUOTED]
            raise CellFailed(
                "error",
                f"the worker's output was not the harness's (a line it did not sign: "
                f"{quoted!r}; did the twin write to the harness's pipe?); worker stopped",
            )
        self._received += 1
        return message

    def _ended(self) -> CellFailed:
        """How the worker ended without an answer; it is stopped."""
        try:
            returncode: int | None = self.proc.wait(EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            returncode = None
        tail = self._stderr_tail()
        self.close()
        if returncode is None:
            return CellFailed(
                "error",
                f"the worker closed the harness's pipe without an answer; worker stopped{tail}",
            )
        return CellFailed("crashed", f"{describe_exit(returncode)}{tail}")

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        tail = self._stderr.read()[-STDERR_TAIL:].strip()
        return f"; stderr: {tail}" if tail else ""

    def close(self) -> None:
        """Stop the worker and everything it started (if still running); release its files."""
        with self._close_lock:
            if self._closed:
                return
            _kill_tree(self.proc, self.marker)
            self.proc.wait()
            if self.proc.stdin is not None:  # stdout closes itself: the reader thread sees EOF
                with contextlib.suppress(OSError, ValueError):
                    self.proc.stdin.close()
            self._stderr.close()
            self._closed = True  # only now: a close cut short by Ctrl-C is done again
        with _LIVE_LOCK:
            _LIVE.discard(self)


def _kill_tree(proc: subprocess.Popen[str], marker: str) -> None:
    """SIGKILL the worker, its process group, its descendants, and whatever carries ``marker``.

    The group (the worker leads its own session) holds what the worker and its children
    started; descendants that made a session of their own are found through the process tree
    while the worker lives, and through the marker in their environment once it is gone.
    """
    doomed: list[psutil.Process] = []
    if proc.returncode is None:
        with contextlib.suppress(psutil.Error):
            doomed = psutil.Process(proc.pid).children(recursive=True)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the pid stays ours while it leads a group
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    doomed += _carrying(marker)
    for process in doomed:
        with contextlib.suppress(psutil.Error):
            process.kill()


def _carrying(marker: str) -> list[psutil.Process]:
    """This user's processes whose environment carries a worker's ``marker``."""
    found = []
    uid = os.getuid()
    for process in psutil.process_iter(["uids"]):
        with contextlib.suppress(psutil.Error):
            uids = process.info["uids"]
            if (
                uids is not None
                and uids.real == uid
                and (process.environ().get(MARKER_VARIABLE) == marker)
            ):
                found.append(process)
    return found


def one_shot(
    request: Request, *, threads: int, timeout: float, module: str = HARNESS_WORKER
) -> Any:
    """Run a request that answers once (parity, probe, a suite's step) and return its result.

    Raises `CellFailed` when the worker raised, crashed, gave no answer within ``timeout`` or
    sent anything the harness did not write.
    """
    worker = WorkerProcess(request, threads=threads, module=module)
    try:
        return worker.receive(timeout, "result")
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


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent() -> None:
    """On Linux, have the kernel SIGKILL this worker when its parent dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _hide(fd: int) -> int:
    """A close-on-exec copy of ``fd`` at a random high number (not 3, where a twin looks)."""
    import fcntl

    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 256 + secrets.randbelow(512))
    except OSError:  # a low limit on open files
        return os.dup(fd)  # close-on-exec too (PEP 446)


def _private_pipes() -> tuple[IO[str], IO[str]]:
    """The parent's command pipe and the protocol pipe, moved out of fds 0 and 1.

    fd 0 becomes ``/dev/null`` and fd 1 a copy of stderr, so what the frameworks print cannot
    corrupt the protocol and the twins' children inherit neither pipe.
    """
    commands = os.fdopen(_hide(0), "r", encoding="utf-8")
    protocol = os.fdopen(_hide(1), "w", buffering=1, encoding="utf-8")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(sys.stderr.fileno(), 1)
    return commands, protocol


def _signed_sender(protocol: IO[str], key: bytes) -> Send:
    sequence = 0

    def send(message: dict[str, Any]) -> None:
        nonlocal sequence
        body = json.dumps(message, default=float)
        protocol.write(f"{_signature(key, sequence, body)} {body}\n")
        sequence += 1

    return send


def _without_notebook_probes() -> None:
    """Make ``import IPython`` fail in this process, as where IPython is not installed.

    flax imports IPython only to ask whether it runs in a notebook, and takes the import's
    failure for a no; a worker never runs in one, and the import (jedi, prompt_toolkit and
    more) cost each worker that imports flax about half a CPU-second.
    """
    sys.modules.setdefault("IPython", None)  # type: ignore[arg-type]


def serve(handlers: Mapping[str, Handler], sessions: Mapping[str, Session] | None = None) -> None:
    """A worker's main: pin its threads, read one request, answer it by its ``kind``.

    A `Handler`'s return value is sent as the result; a `Session` talks on its own. An exception
    is sent as ``{"error": "Type: message"}`` (its traceback goes to stderr, which the parent
    keeps) and the worker exits with status 1. Anything the frameworks print goes to stderr, so
    stray output cannot corrupt the protocol.
    """
    _die_with_parent()
    commands, protocol = _private_pipes()
    try:
        envelope = json.loads(commands.readline())
        key, parent = bytes.fromhex(envelope["key"]), envelope["parent"]
        request = envelope["request"]
    except (ValueError, KeyError, TypeError):
        sys.exit("twinbench worker: no request from a twinbench parent on stdin")
    if os.getppid() != parent and not psutil.pid_exists(parent):
        sys.exit(1)  # the parent died before the death signal was armed
    del envelope
    send = _signed_sender(protocol, key)
    del key
    pin_threads()
    _without_notebook_probes()
    kind = request["kind"]
    try:
        if sessions and kind in sessions:
            sessions[kind](request, send, commands)
        else:
            send({"result": handlers[kind](request)})
    except Exception as exc:
        traceback.print_exc()
        send({"error": f"{type(exc).__name__}: {exc}"})
        sys.exit(1)
