"""The suite end to end, in CI's slow step: the control-flow scenario through the CLI (stored,
rendered), a seq-len schedule whose compiles are counted by the frameworks' own
instruments: per-shape jit once per distinct shape, bucketed jit at most once per bucket,
torch.compile's default recompiling where dynamic=True does not — and generation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers import run_main
from twinbench.dynamic import DynamicReport, DynamicSettings, render_markdown, run_dynamic
from twinbench.dynamic.schedule import bucket_of
from twinbench.dynamic.view import figures
from twinbench.store import DB_NAME, ResultStore
from twinbench.suite import record, view_for

LENGTHS = "5,9,5"  # two distinct lengths, one bucket of 16
BUCKET = 16
STRATEGIES = (
    "torch-eager",
    "torch-compile",
    "torch-compile-dynamic",
    "torch-mark-dynamic",
    "jax-jit",
    "jax-jit-bucketed",
)


@pytest.mark.slow
def test_control_flow_through_the_cli_is_stored_and_rendered(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    result = run_main(
        monkeypatch, capsys, "dynamic", "--scenario", "control-flow",
        "--torch-backend", "eager", "--threads", "1", "--out", tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "| python if on a tensor value | jax | jax.jit | fails |" in result.stdout
    with ResultStore(tmp_path / DB_NAME) as store:
        (run,) = store.runs()
    assert run.settings["kind"] == "dynamic" and run.status == "finished"
    cells = run.info["dynamic"]["features"]
    assert {c["framework"] for c in cells} == {"torch", "jax"}
    assert all(c["status"] in ("works", "fails") and c["detail"] for c in cells)
    view = view_for("dynamic")
    assert view is not None and "## Features" in view.markdown(run.info["dynamic"])


@pytest.fixture(scope="module")
def schedule_run() -> DynamicReport:
    settings = DynamicSettings(
        lengths=LENGTHS,
        steps=3,
        bucket=BUCKET,
        strategies=STRATEGIES,
        torch_backend="eager",  # Dynamo's tracing and recompiles without code generation
        threads=1,
        repeats=1,
    )
    return run_dynamic(settings)


def _rows(report: DynamicReport) -> dict[str, dict[str, Any]]:
    return {r["strategy"]: r for r in report.strategies}


@pytest.mark.slow
def test_jax_compiles_once_per_shape_and_once_per_bucket(schedule_run: DynamicReport) -> None:
    rows = _rows(schedule_run)
    lengths = schedule_run.lengths
    assert rows["jax-jit"]["compiles"] == len(set(lengths))
    buckets = {bucket_of(n, BUCKET, 64) for n in lengths}
    assert rows["jax-jit-bucketed"]["compiles"] <= len(buckets)
    assert rows["jax-jit-bucketed"]["compiles_per_step"][1:] == [0] * (len(lengths) - 1)


@pytest.mark.slow
def test_dynamo_sees_the_recompile_of_the_default_and_fewer_with_dynamic(
    schedule_run: DynamicReport,
) -> None:
    rows = _rows(schedule_run)
    assert rows["torch-eager"]["compiles"] == 0
    assert rows["torch-compile"]["compiles"] >= 2  # the second length recompiles
    assert rows["torch-compile-dynamic"]["compiles"] < rows["torch-compile"]["compiles"]
    assert rows["torch-mark-dynamic"]["compiles"] < rows["torch-compile"]["compiles"]


@pytest.mark.slow
def test_every_strategy_matches_torch_eager_and_padding_is_counted(
    schedule_run: DynamicReport,
) -> None:
    assert not schedule_run.failures
    rows = _rows(schedule_run)
    for name, row in rows.items():
        assert row["correctness"]["passed"] is True, (name, row["correctness"])
    lengths = schedule_run.lengths
    assert rows["jax-jit-bucketed"]["padding_share"] == pytest.approx(
        1 - sum(lengths) / (BUCKET * len(lengths))
    )
    assert rows["jax-jit"]["padding_share"] == 0
    assert all(row["peak_bytes"] > 0 for row in rows.values())  # each schedule's own memory


@pytest.mark.slow
def test_the_run_is_stored_rendered_and_drawn(schedule_run: DynamicReport, tmp_path: Path) -> None:
    verdict = schedule_run.verdict
    assert verdict["fastest"]["torch"] in STRATEGIES and verdict["fastest"]["jax"] in STRATEGIES
    assert "ratio" in verdict
    markdown = render_markdown(schedule_run.to_dict())
    assert "## Strategies" in markdown and "| jax-jit-bucketed | ok |" in markdown
    (name, figure), *_ = figures(schedule_run.to_dict())
    assert name == "cumulative_time" and figure.axes
    run_id = record(schedule_run, tmp_path)
    with ResultStore(tmp_path / DB_NAME) as store:
        run = store.run(run_id)
    assert run.settings["kind"] == "dynamic" and run.settings["strategies"] == list(STRATEGIES)


@pytest.mark.slow
def test_mark_dynamic_leaves_the_fixed_target_after_a_window_alone() -> None:
    # The lstm's y (its horizon) keeps its size while the window changes; marked dynamic as
    # well, Dynamo's constraint check failed the strategy (ConstraintViolationError).
    settings = DynamicSettings(
        workload="lstm", lengths=LENGTHS, steps=3, torch_backend="eager", threads=1, repeats=1,
        strategies=("torch-eager", "torch-mark-dynamic"),
    )  # fmt: skip
    report = run_dynamic(settings)
    assert not report.failures
    marked = _rows(report)["torch-mark-dynamic"]
    assert marked["status"] == "ok" and marked["correctness"]["passed"] is True, marked
    assert marked["compiles"] == 1  # one graph for every window length


@pytest.mark.slow
def test_generation_strategies_agree_and_the_compiled_step_recompiles_as_the_cache_grows() -> None:
    settings = DynamicSettings(
        scenario="generate", lengths="3,9", steps=2, torch_backend="eager", threads=1, repeats=1
    )
    report = run_dynamic(settings)
    assert not report.failures
    rows = _rows(report)
    assert set(rows) == {"torch-eager", "torch-compile", "jax-jit"}
    for name, row in rows.items():
        assert row["correctness"]["passed"] is True, (name, row["correctness"])
    assert rows["torch-compile"]["compiles"] >= 2  # the cache's length changes every step
    assert rows["jax-jit"]["compiles_per_step"][1] == 0  # the second prompt reuses the loop
    assert rows["torch-eager"]["tokens_generated"] == rows["jax-jit"]["tokens_generated"] > 0


@pytest.mark.slow
def test_gpt_serves_the_batch_schedule_and_every_strategy_matches_torch_eager() -> None:
    settings = DynamicSettings(
        scenario="batch", workload="gpt", lengths="3,7,3", steps=3, torch_backend="eager",
        threads=1, repeats=1,
    )  # fmt: skip
    report = run_dynamic(settings)
    assert not report.failures
    assert report.to_dict()["settings"]["phase"] == "infer"
    rows = _rows(report)
    assert set(rows) == set(settings.chosen_strategies) and len(rows) == 9
    for name, row in rows.items():
        assert row["correctness"]["passed"] is True, (name, row["correctness"])
    assert rows["jax-jit"]["compiles_per_step"] == [1, 1, 0]  # once per distinct batch size
    assert rows["jax-jit-bucketed"]["compiles"] <= 2  # buckets 4 and 8
    assert rows["jax-jit-pad-max"]["compiles"] == 1
    assert rows["torch-eager"]["compiles"] == 0
    assert rows["jax-jit-bucketed"]["padding_share"] == pytest.approx(1 - 13 / 16)


@pytest.mark.slow
def test_bert_pads_the_sequence_schedule_and_a_leak_into_attention_is_caught() -> None:
    strategies = ("torch-eager", "torch-compile-bucketed", "jax-jit-bucketed")
    common = {"workload": "bert", "lengths": "5,9,5", "steps": 3, "bucket": BUCKET,
              "strategies": strategies, "torch_backend": "eager", "threads": 1,
              "repeats": 1}  # fmt: skip
    rows = _rows(run_dynamic(DynamicSettings(**common)))  # type: ignore[arg-type]
    for name, row in rows.items():
        assert row["correctness"]["passed"] is True, (name, row["correctness"])
    assert rows["jax-jit-bucketed"]["compiles"] == 1  # 5 and 9 both pad to 16
    leaked = _rows(run_dynamic(DynamicSettings(**common, leak_padding=True)))  # type: ignore[arg-type]
    for name in strategies[1:]:
        assert leaked[name]["correctness"]["passed"] is False, name
