"""The feature table follows the checks; bad input is one-line TwinbenchError; a tiny run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from twinbench.autodiff import checks, suite, torch_side, worker
from twinbench.autodiff.functions import (
    FUNCTIONS,
    QUICK_CHECK_SIZES,
    QUICK_TIMING_SIZES,
    TRANSFORMS,
    Sizes,
    make_deep_mlp,
    make_problem,
)
from twinbench.autodiff.settings import QUICK_MEMORY, AutodiffSettings
from twinbench.autodiff.view import render_markdown
from twinbench.errors import TwinbenchError
from twinbench.harness.process import one_shot
from twinbench.store import DB_NAME, ResultStore
from twinbench.suite import record


def _passing(transforms: list[str]) -> list[checks.CheckResult]:
    return [
        checks.CheckResult(f, t, fw, "pass", 1e-11, 1e-16, 1e-6, 1e-9, "", "native", "api")
        for f in FUNCTIONS
        for t in transforms
        for fw in suite.FRAMEWORKS
    ]


def test_every_supported_cell_has_passing_checks_behind_it() -> None:
    results = _passing(list(TRANSFORMS))
    table = suite.feature_table(results)
    assert len(table) == len(TRANSFORMS) * 2
    for cell in table:
        assert cell.support == "native"
        assert set(cell.evidence) == set(FUNCTIONS)
        assert set(cell.evidence.values()) == {"pass"}


@pytest.mark.parametrize(
    ("status", "support"), [("fail", "wrong"), ("nan", "diverged"), ("error", "cannot")]
)
def test_one_failed_check_removes_support(status: str, support: str) -> None:
    results = _passing(["hvp"])
    results[0] = dataclasses.replace(results[0], status=status, detail="planted")
    cells = {(c.transform, c.framework): c for c in suite.feature_table(results)}
    bad = cells[("hvp", results[0].framework)]
    assert bad.support == support and bad.detail == "planted"
    other = [c for key, c in cells.items() if key != ("hvp", results[0].framework)]
    assert all(c.support == "native" for c in other)


def test_table_follows_a_check_made_to_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    problem = make_problem("rosenbrock", QUICK_CHECK_SIZES)
    before = suite.feature_table(checks.judge(checks.evaluate(torch_side, [problem], ["hvp"])))
    assert before[0].support == "composed"
    real = torch_side.transform

    def broken(model: torch_side.Model, name: str):  # type: ignore[no-untyped-def]
        fn, args = real(model, name)
        return (lambda *a: fn(*a) * 1.01), args

    monkeypatch.setattr(torch_side, "transform", broken)
    after = suite.feature_table(checks.judge(checks.evaluate(torch_side, [problem], ["hvp"])))
    assert after[0].support == "wrong"


def test_compiled_column_records_the_error_text() -> None:
    results = _passing(["grad"])
    timings = [
        {
            "function": "mlp",
            "transform": "grad",
            "framework": "torch",
            "mode": "compiled",
            "status": "error",
            "error": "BackendCompilerFailed: planted",
        },
        {
            "function": "mlp",
            "transform": "grad",
            "framework": "jax",
            "mode": "compiled",
            "status": "ok",
            "error": None,
        },
    ]
    cells = {c.framework: c for c in suite.feature_table(results, timings)}
    assert cells["torch"].compiled == "error: BackendCompilerFailed: planted"
    assert cells["jax"].compiled == "ok"


@pytest.mark.parametrize(
    ("kwargs", "bad", "valid"),
    [
        ({"functions": ("rosenbrok",)}, "'rosenbrok'", "mlp, rosenbrock"),
        ({"functions": ()}, "no function", "mlp, rosenbrock"),
        ({"transforms": ("hess",)}, "'hess'", "hessian"),
        ({"transforms": ()}, "no transformation", "hessian"),
        ({"modes": ("jit",)}, "'jit'", "eager, compiled"),
        ({"dim": 0}, "dim 0", "≥ 2"),
        ({"dim": 1}, "dim 1", "≥ 2"),
        ({"hidden": -3}, "hidden -3", "> 0"),
        ({"batch": 0}, "batch 0", "> 0"),
        ({"batch_sizes": (1, 0)}, "batch size 0", "> 0"),
        ({"threads": 0}, "threads 0", "> 0"),
        ({"budget_s": float("inf")}, "budget inf", "finite"),
        ({"budget_s": -1.0}, "budget -1.0", "> 0"),
    ],
)
def test_bad_setting_is_one_line_naming_the_value(kwargs: dict, bad: str, valid: str) -> None:
    with pytest.raises(TwinbenchError) as info:
        AutodiffSettings(**kwargs).validate()
    message = str(info.value)
    assert bad in message and valid in message and "\n" not in message


def test_more_threads_than_cores_is_an_environment_check() -> None:
    settings = AutodiffSettings(threads=999)
    settings.validate()  # pure: no look at the machine
    with pytest.raises(TwinbenchError, match="threads 999 is invalid; valid: an integer from 1"):
        settings.check_environment()
    with pytest.raises(TwinbenchError, match="threads 999"):
        suite.run_autodiff(settings)


def test_defaults_and_quick_presets_are_stored_as_before() -> None:
    stored = AutodiffSettings(quick=True, threads=2).to_dict()
    assert stored["budget_s"] == 0.05 and stored["batch_sizes"] == [1, 4, 16]
    assert stored["memory"] == QUICK_MEMORY and stored["threads"] == 2
    full = AutodiffSettings(dim=64, memory=False).to_dict()
    assert full["budget_s"] == 0.25 and full["timing_sizes"]["dim"] == 64
    assert full["memory"] is None and full["batch_sizes"][-1] == 256
    assert AutodiffSettings(quick=True, budget_s=0.5).to_dict()["budget_s"] == 0.5  # given wins


def test_bad_problem_names_and_sizes() -> None:
    with pytest.raises(TwinbenchError, match="unknown function 'quadratic'; valid: mlp"):
        make_problem("quadratic", QUICK_CHECK_SIZES)
    with pytest.raises(TwinbenchError, match="dim"):
        Sizes(dim=0)
    with pytest.raises(TwinbenchError, match="depth"):
        make_deep_mlp(0, 8, 8)


def test_time_cell_records_compile_errors_and_nan(monkeypatch: pytest.MonkeyPatch) -> None:
    cell = {"function": "rosenbrock", "transform": "grad", "mode": "eager", "batch": None}
    ok = worker.time_cell(torch_side, cell, QUICK_TIMING_SIZES, 0, 0.02)
    assert ok["status"] == "ok" and ok["median_s"] > 0 and ok["samples"]

    def no_compile(fn):  # type: ignore[no-untyped-def]
        raise RuntimeError("planted compiler failure\nsecond line")

    monkeypatch.setattr(torch_side, "compile_fn", no_compile)
    failed = worker.time_cell(torch_side, {**cell, "mode": "compiled"}, QUICK_TIMING_SIZES, 0, 0.02)
    assert failed["status"] == "error"
    assert failed["error"] == "RuntimeError: planted compiler failure"

    monkeypatch.setattr(torch_side, "rosenbrock_residuals", lambda x: x * float("nan"))
    diverged = worker.time_cell(torch_side, cell, QUICK_TIMING_SIZES, 0, 0.02)
    assert diverged["status"] == "error" and "NaN" in diverged["error"]


def test_tiny_run_end_to_end_and_saved(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = AutodiffSettings(
        functions=("rosenbrock",),
        transforms=("grad", "hvp"),
        modes=("eager",),
        quick=True,
        batch_sizes=(),
        memory=False,
        budget_s=0.02,
    )
    report = suite.run_autodiff(settings)
    assert not report.failures
    assert report.all_checks_passed and len(report.checks) == 4
    assert {(t["framework"], t["transform"]) for t in report.timings} == {
        (fw, t) for fw in ("torch", "jax") for t in ("grad", "hvp")
    }
    assert len(report.comparisons) == 2
    markdown = render_markdown(report.to_dict())
    assert "| rosenbrock grad | eager |" in markdown and "| rosenbrock hvp | pass" in markdown
    run_id = record(report, tmp_path)
    with ResultStore(tmp_path / DB_NAME) as store:
        run = store.run(run_id)
    assert run.settings["kind"] == "autodiff" and run.status == "finished"
    assert run.info["autodiff"]["checks"][0]["status"] == "pass"


def test_memory_worker_reports_both_accountings() -> None:
    answer = one_shot(
        {"kind": "memory", "framework": "torch", "remat": True, **QUICK_MEMORY},
        threads=1,
        timeout=120,
        module=suite.WORKER,
    )
    assert answer["accounting"]["bytes"] > 0
    assert answer["rss_method"]
    assert np.isfinite(answer["accounting"]["bytes"])


def test_a_failing_worker_is_recorded_and_answers_none() -> None:
    workers = suite._Workers(threads=1)
    assert workers.ask({"kind": "unknown", "framework": "torch"}) is None
    assert workers.failures == ["torch unknown: KeyError: 'unknown'"]
