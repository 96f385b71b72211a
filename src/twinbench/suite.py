"""The suite contract: what every measuring command is, written down once.

Every command that measures something — ``run``/``sweep``, ``autodiff``, ``optim``,
``parallel``, and every later one — is a *suite* with the same five parts:

1. **Settings**: a frozen dataclass with a class attribute ``kind`` and a pure ``validate()``
   that refuses a bad value with a `TwinbenchError` of one line naming the value and what is
   valid. ``validate()`` reads only the settings (no hardware probing, no imports of a
   framework); checks against the machine — cores, GPUs, a free port — belong in a separate
   ``check_environment()`` the suite calls just before it measures.
2. **A run function** ``run_<kind>(settings, progress=...) -> result``. Its workers start through
   `twinbench.harness.process` (one worker protocol, one thread-pinning helper); every step
   time is measured with `twinbench.harness.timing` and summarised with
   `twinbench.harness.stats`, so a median always means the same thing and always has a CI.
3. **A result**: an object satisfying `SuiteResult` — its ``kind``, its settings as a dict, a
   JSON-ready ``to_dict()`` and ``failed`` (the run's stored status is ``failed`` when true).
4. **One store call**, `record`, that stores any suite's result as a run of its kind. A suite
   that runs long keeps what finished: on Ctrl-C or SIGTERM (a `KeyboardInterrupt` in its loop)
   it raises `SuiteInterrupted` with the result so far, its ``interrupted`` set, and the command
   stores that as an ``interrupted`` run.
5. **Report views**: the suite module fills in `register_view` with a `SuiteView` that renders
   its stored data (Markdown, figures, CSV rows); the report looks views up by kind through
   `view_for` and so never imports a suite module. `VIEW_MODULES` names the module that
   registers each built-in kind; it is imported on first use.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, cast, runtime_checkable

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from twinbench.report.recommend import Recommendation

Progress = Callable[[str], None]
"""A suite's progress callback: one short line saying what it is doing now."""


def no_progress(_message: str) -> None:
    """The progress callback of a caller that shows none."""


class SuiteSettings(Protocol):
    """What a suite's settings dataclass provides."""

    kind: ClassVar[str]

    def validate(self) -> None:
        """Raise `TwinbenchError` (one line) for a bad value; pure: reads only the settings."""


@runtime_checkable
class SuiteResult(Protocol):
    """What a suite's run function returns and `record` stores."""

    kind: ClassVar[str]

    @property
    def settings_dict(self) -> dict[str, Any]:
        """The settings the result was measured with, JSON-ready."""
        ...

    @property
    def failed(self) -> bool:
        """True when a check or a cell failed: the run is stored with status ``failed``."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """Everything measured, JSON-ready (non-finite floats as None)."""
        ...


class WorkerFailures:
    """What a suite result dataclass with a ``settings`` field (an object with ``to_dict()``)
    and a ``failures`` field (one line per worker that crashed, hung or raised) gets for free:
    the settings as stored, ``failed`` when a worker failed (a failed check or an exporter that
    refused a model is a finding the report shows, not a failed run), and every field,
    JSON-ready, as ``to_dict()`` — with ``interrupted``, which a suite sets on the result it
    raises in `SuiteInterrupted`."""

    settings: Any
    failures: list[str]
    interrupted: bool = False  # a class default, not a field: set on a partial result

    @property
    def settings_dict(self) -> dict[str, Any]:
        from twinbench.store import json_ready

        return dict(json_ready(self.settings.to_dict()))

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    def to_dict(self) -> dict[str, Any]:
        from twinbench.store import json_ready

        fields = dataclasses.fields(cast(Any, self))
        data = {f.name: getattr(self, f.name) for f in fields}
        settings = self.settings.to_dict()
        return dict(json_ready({**data, "settings": settings, "interrupted": self.interrupted}))


class SuiteInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped a suite: ``partial`` is the result of what finished before it
    (its ``interrupted`` set), which the command stores and shows like a whole one."""

    def __init__(self, partial: SuiteResult) -> None:
        super().__init__(f"{partial.kind} interrupted")
        self.partial = partial


def record(result: SuiteResult, out: Path, *, text: str | None = None) -> int:
    """Store ``result`` as a new run of its kind in the results database under ``out``.

    The run's settings carry ``kind``; the result is kept as run info under that kind, with
    ``text`` (the rendering shown when it was run) under ``suite_report``. Returns the run id.
    """
    from twinbench.harness.environment import fingerprint
    from twinbench.store import DB_NAME, ResultStore

    with ResultStore(Path(out) / DB_NAME) as store:
        run_id = store.start_run(
            environment=fingerprint(), settings={"kind": result.kind, **result.settings_dict}
        )
        store.set_run_info(run_id, result.kind, result.to_dict())
        if text is not None:
            store.set_run_info(run_id, "suite_report", text)
        status = "failed" if result.failed else "finished"
        if getattr(result, "interrupted", False):  # what finished before Ctrl-C or SIGTERM
            status = "interrupted"
        store.finish_run(run_id, status=status)
    return run_id


@dataclass(frozen=True)
class SuiteView:
    """How the report shows a stored run of one suite kind.

    ``markdown`` renders the stored data (``run.info[kind]``) as Markdown; ``figures`` draws it
    as named matplotlib figures (none by default); ``rows`` lays it out as one flat table, a
    dict of named values per row, for CSV (none by default: CSV then holds the run's cells);
    ``recommendations`` derives the advice the report lists in its recommendations section,
    each `twinbench.report.recommend.Recommendation` quoting the stored numbers it follows from
    (none by default: the report then gives none for the kind). All receive the stored dict
    only, so a run stored by an older twinbench still renders.
    """

    kind: str
    title: str
    markdown: Callable[[Mapping[str, Any]], str]
    figures: Callable[[Mapping[str, Any]], list[tuple[str, Figure]]] | None = None
    rows: Callable[[Mapping[str, Any]], list[dict[str, Any]]] | None = None
    recommendations: Callable[[Mapping[str, Any]], list[Recommendation]] | None = None


VIEW_MODULES = {
    "autodiff": "twinbench.autodiff.view",
    "converge": "twinbench.converge.view",
    "deploy": "twinbench.deploy.view",
    "dynamic": "twinbench.dynamic.view",
    "optim": "twinbench.optim_suite.view",
    "parallel": "twinbench.parallel.view",
}
"""The module that registers each built-in suite kind's view, imported on first look-up."""

_VIEWS: dict[str, SuiteView] = {}


def register_view(view: SuiteView) -> SuiteView:
    """Make ``view`` the report's view of runs of ``view.kind`` (a later call replaces it)."""
    _VIEWS[view.kind] = view
    return view


def view_for(kind: str) -> SuiteView | None:
    """The registered view of ``kind``, importing its built-in module if needed; None if none."""
    if kind not in _VIEWS and kind in VIEW_MODULES:
        importlib.import_module(VIEW_MODULES[kind])
    return _VIEWS.get(kind)
