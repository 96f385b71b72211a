"""recommend() of a suite run: the advice comes from the view registered for its kind, ordered by
KINDS (a kind of the suite's own last), with a line for a run that did not finish."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twinbench.report.recommend import Recommendation, recommend
from twinbench.report.summary import summarize_run
from twinbench.store import RunRecord
from twinbench.suite import SuiteView, register_view


def _advice(data: Mapping[str, Any]) -> list[Recommendation]:
    return [
        Recommendation("own-kind", "x", f"quoted {data['value']}"),
        Recommendation("sweep", "x", "a known kind"),
        Recommendation("parity", "x", "first"),
    ]


register_view(SuiteView("advice-test", "A test suite", lambda d: "", recommendations=_advice))
register_view(SuiteView("silent-test", "A test suite without advice", lambda d: ""))


def _recommend(kind: str, status: str = "finished") -> list[Recommendation]:
    run = RunRecord(1, "2026-01-01T00:00:00+00:00", None, status, {}, {"kind": kind},
                    {kind: {"value": 7}})  # fmt: skip
    return recommend(summarize_run(run, [], []))


def test_a_suite_runs_advice_is_its_views_in_kind_order() -> None:
    assert [(r.kind, r.text) for r in _recommend("advice-test")] == [
        ("parity", "first"),
        ("sweep", "a known kind"),
        ("own-kind", "quoted 7"),
    ]


def test_a_view_without_advice_gives_none_unless_the_run_stopped_early() -> None:
    assert _recommend("silent-test") == []
    (line,) = _recommend("silent-test", status="interrupted")
    assert line.kind == "run" and "the run is interrupted" in line.text
