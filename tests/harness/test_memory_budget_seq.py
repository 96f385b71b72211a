"""The longest sequence within a memory budget: predicted from the fit against the sequence
length, clipped to the position table, measured there; refused in one line where it cannot
be fitted. In-process with a stand-in for the measurement; the real sweep is in
test_memory_sequence.py."""

import math
from types import SimpleNamespace

import pytest

from helpers import assert_one_line_error, run_main
from twinbench.harness import memory_budget
from twinbench.harness.runner import Cell, Point, RunSettings
from twinbench.registry import builtin
from twinbench.report.memory import budget_confirmations, sequence_budget_notes

MB = 2**20
# per position (the batch's 8 samples), fixed: torch-eager's reaches the budget at 40
# positions, jax-jit's only past gpt tiny's 64-position table
LINES = {"torch-eager": (2**17, 3 * MB), "jax-jit": (2**16, 3 * MB)}
BUDGET = 8 * MB + 1000


def _peak(mode, seq_len):
    per_position, fixed = LINES[mode]
    return fixed + per_position * seq_len


class _Recorder:
    def __init__(self):
        self.info = {}

    def set_run_info(self, _run_id, key, value):
        self.info[key] = value


def _session(seq_lens=(16, 32)):
    measured = {}
    for mode in LINES:
        for seq_len in seq_lens:
            cell = Cell(Point(builtin("gpt"), None, "tiny", None, seq_len), mode, "train")
            measured[cell.label] = (cell, {"attributable_peak_bytes": _peak(mode, seq_len)})
    settings = RunSettings(
        workloads=("gpt",), sizes=("tiny",), seq_lens=seq_lens, memory_budget=BUDGET
    )
    return SimpleNamespace(
        settings=settings, measured=measured, failures={}, recorder=_Recorder(), run_id=1
    )


@pytest.fixture()
def confirmed(monkeypatch):
    """A sweep of gpt tiny over 16 and 32 positions, confirmed: each measured cell's peak is
    on its mode's line, as a straight line predicts."""
    measuring = []

    def measure(session, cell, _progress):
        measuring.append(cell)
        peak = _peak(cell.mode, cell.point.seq_len)
        session.measured[cell.label] = (cell, {"attributable_peak_bytes": peak})

    monkeypatch.setattr(memory_budget, "_measure_one", measure)
    session = _session()
    memory_budget.confirm_memory_budget(session, lambda *_: None)
    record = session.recorder.info["memory_sequence_budget"]
    return record, {f["mode"]: f for f in record["fits"]}, measuring, session.recorder.info


def test_the_longest_sequence_follows_from_the_stored_fit(confirmed):
    record, fits, _, _ = confirmed
    assert record["budget_bytes"] == BUDGET
    for mode, fit in fits.items():
        # the line through the two swept lengths, inverted at the budget
        longest = math.floor((BUDGET - fit["intercept_bytes"]) / fit["bytes_per_position"])
        assert fit["predicted_seq_len"] == longest
        assert fit["bytes_per_position"] == pytest.approx(LINES[mode][0])
    assert fits["torch-eager"]["predicted_seq_len"] == 40
    assert fits["jax-jit"]["predicted_seq_len"] == 80


def test_a_prediction_within_the_table_is_measured_there(confirmed):
    _, fits, measuring, _ = confirmed
    fit = fits["torch-eager"]
    assert fit["clipped"] is False and fit["measured_seq_len"] == 40
    assert fit["measured_bytes"] == pytest.approx(_peak("torch-eager", 40))
    assert fit["outcome"] == "fits the budget"
    assert fit["cell_size"] == "tiny seq=40"
    assert {(c.mode, c.point.seq_len) for c in measuring} == {("torch-eager", 40), ("jax-jit", 64)}


def test_a_prediction_past_the_position_table_is_clipped_and_says_so(confirmed):
    record, fits, _, _ = confirmed
    fit = fits["jax-jit"]
    assert fit["position_limit"] == builtin("gpt").size("tiny").config["max_positions"] == 64
    assert fit["clipped"] is True and fit["measured_seq_len"] == 64
    assert fit["predicted_seq_len"] == 80  # the fit's own figure is kept
    notes = sequence_budget_notes({"memory_sequence_budget": record})
    (clipped,) = [n for n in notes if "jax-jit" in n]
    assert "longest sequence predicted 80" in clipped
    assert "clipped to the position table's 64" in clipped
    assert "measured at 64" in clipped
    (within,) = [n for n in notes if "torch-eager" in n]
    assert "clipped" not in within and "measured at 40" in within


def test_the_confirming_cells_get_named_fields_for_the_exports(confirmed):
    record, _, _, _ = confirmed
    by_cell = budget_confirmations({"memory_sequence_budget": record})
    fields = by_cell["gpt", "tiny seq=64", "train", "jax-jit"]
    assert fields["budget_bytes"] == BUDGET
    assert fields["predicted_seq_len"] == 80 and fields["measured_seq_len"] == 64
    assert fields["clipped"] is True and fields["position_limit"] == 64
    assert set(by_cell) == {
        ("gpt", "tiny seq=40", "train", "torch-eager"),
        ("gpt", "tiny seq=64", "train", "jax-jit"),
    }


def test_no_batch_budget_is_stored_for_a_sweep_over_lengths_only(confirmed):
    *_, info = confirmed
    assert set(info) == {"memory_sequence_budget"}


def test_longest_sequence_is_none_where_memory_does_not_grow_or_nothing_fits():
    fit = memory_budget.SequenceFit(0.5, MB, (16, 32), batch_size=8)
    assert fit.longest_sequence(BUDGET) is None
    fit = memory_budget.SequenceFit(MB, 9 * MB, (16, 32), batch_size=8)
    assert fit.longest_sequence(BUDGET) is None  # the fixed part alone is over it


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (("--seq-lens", "16,32", "--memory-budget", "0"), ("--memory-budget", "'0'")),
        (("--seq-lens", "16,32", "--memory-budget", "lots"), ("--memory-budget", "'lots'")),
        (("--seq-lens", "16", "--memory-budget", "1GiB"), ("--memory-budget", "--seq-lens")),
        (
            ("--seq-lens", "16,32", "--memory-budget", "1GiB", "--gradient-checkpointing", "on"),
            ("--gradient-checkpointing", "'lstm'"),
        ),
    ],
)
def test_a_sequence_budget_sweep_refuses_bad_input_in_one_line(
    monkeypatch, capsys, tmp_path, extra, fragments
):
    out = tmp_path / "out"
    workload = "lstm" if "--gradient-checkpointing" in extra else "gpt"  # lstm: no option
    args = ("sweep", workload, "--size", "tiny", "--out", out, *extra)
    result = run_main(monkeypatch, capsys, *args)
    assert_one_line_error(result, *fragments)
    assert not out.exists()


def test_the_recommendations_say_what_each_mode_fits_within_the_budget(confirmed):
    from twinbench.report.recommend import recommend
    from twinbench.report.summary import RunSummary
    from twinbench.store import RunRecord

    record, fits, _, _ = confirmed
    run = RunRecord(1, "now", None, "finished", {}, {}, {"memory_sequence_budget": record})
    advice = [r for r in recommend(RunSummary(run, [], [], [], [], [])) if r.kind == "memory"]
    assert {r.subject for r in advice} == {"gpt/tiny bs=8 train"}
    (eager,) = [r.text for r in advice if r.text.startswith("torch-eager")]
    assert "longest sequence predicted 40" in eager and "measured at 40" in eager
    (jit,) = [r.text for r in advice if r.text.startswith("jax-jit")]
    assert "clipped to the position table's 64" in jit
