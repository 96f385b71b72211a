"""Memory against the sequence length, from a real sweep of gpt tiny over 16 and 32 positions
in eager torch and jitted JAX with a 9 MiB budget: the fit stored with the run and quoted in its
recommendations; the longest sequence within the budget predicted from it, measured there (or
at the position table's 64, marked clipped) and shown by every report. Six cells and a parity
check, 2 min 31 s loaded: behind the slow marker."""

import json
import math

import pytest

from twinbench.harness.runner import RunSettings, run
from twinbench.report import export, markdown
from twinbench.report.recommend import recommend
from twinbench.report.summary import load_summary
from twinbench.store import DB_NAME, ResultStore

SHORT, LONG = 16, 32
TABLE = 64  # gpt tiny's position table
MODES = ("torch-eager", "jax-jit")
# gpt tiny, batch 8: about 1.3-1.9 MiB fixed and 95-150 KiB a position, so the prediction
# falls near or past the table's 64 positions
BUDGET = 9 * 2**20

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gpt_sequence_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sequence")
    settings = RunSettings(
        workloads=("gpt",),
        sizes=("tiny",),
        modes=MODES,
        threads=1,
        budget=0.2,
        repeats=1,
        parity_steps=2,
        seq_lens=(SHORT, LONG),
        memory_budget=BUDGET,
        out=out,
    )
    events = []
    run_id = run(settings, progress=lambda event, info: events.append((event, info)))
    with ResultStore(out / DB_NAME) as store:
        cells, info = store.cells(run_id), store.run(run_id).info
    summary = load_summary(out, run_id)
    assert all(c.status == "ok" for c in cells), [c.error for c in cells]
    peaks = {(c.mode, c.metrics["seq_len"]): c.metrics["attributable_peak_bytes"] for c in cells}
    return peaks, info, summary, cells, events


@pytest.mark.parametrize("mode", MODES)
def test_the_fit_against_the_sequence_length_is_stored(gpt_sequence_sweep, mode):
    peaks, info, _, _, _ = gpt_sequence_sweep
    (fit,) = [f for f in info["memory_sequence_fits"] if f["mode"] == mode]
    assert fit["seq_lens"] == [SHORT, LONG] and fit["batch_size"] == 8  # the tiny preset's
    # the activations (and the token batch) grow with the length
    assert peaks[mode, LONG] > peaks[mode, SHORT]
    slope = (peaks[mode, LONG] - peaks[mode, SHORT]) / (LONG - SHORT)
    assert fit["bytes_per_position"] == pytest.approx(slope)  # two points: the line through them
    assert fit["bytes_per_token"] == pytest.approx(slope / 8)
    # at least the batch's two int32 token arrays, and each position's activations
    assert fit["bytes_per_token"] > 2 * 4


def test_the_recommendations_quote_the_fit(gpt_sequence_sweep):
    _, _, summary, _, _ = gpt_sequence_sweep
    texts = [r.text for r in recommend(summary) if r.subject == "gpt/tiny bs=8 train"]
    (text,) = [t for t in texts if "against sequence length" in t]
    assert all(mode in text for mode in MODES)


@pytest.mark.parametrize("mode", MODES)
def test_the_longest_sequence_is_predicted_from_the_fit_and_measured(gpt_sequence_sweep, mode):
    _, info, _, cells, _ = gpt_sequence_sweep
    record = info["memory_sequence_budget"]
    assert record["budget_bytes"] == BUDGET and "memory_budget" not in info
    (fit,) = [f for f in record["fits"] if f["mode"] == mode]
    by_length = {
        c.metrics["seq_len"]: c.metrics["attributable_peak_bytes"] for c in cells if c.mode == mode
    }
    assert len(by_length) == 3  # the two swept lengths and the confirming one
    slope = (by_length[LONG] - by_length[SHORT]) / (LONG - SHORT)
    intercept = by_length[SHORT] - slope * SHORT
    predicted = math.floor((BUDGET - intercept) / slope)
    assert abs(fit["predicted_seq_len"] - predicted) <= 1  # float rounding at the floor
    length = fit["measured_seq_len"]
    if fit["predicted_seq_len"] > TABLE:
        assert fit["clipped"] is True and length == TABLE
    else:
        assert fit["clipped"] is False and length == fit["predicted_seq_len"]
    assert length not in (SHORT, LONG)  # a length of its own, measured there
    assert fit["measured_bytes"] == by_length[length]
    assert fit["outcome"] in ("fits the budget", "over the budget")
    assert (fit["outcome"] == "fits the budget") == (by_length[length] <= BUDGET)


def test_every_report_carries_the_prediction(gpt_sequence_sweep):
    _, info, summary, _, _ = gpt_sequence_sweep
    text = markdown.render(summary)
    for fit in info["memory_sequence_budget"]["fits"]:
        assert f"{fit['mode']} within " in text
        assert f"longest sequence predicted {fit['predicted_seq_len']:,}" in text
        assert ("clipped to the position table's 64" in text) or not fit["clipped"]
    frame = export.cells_frame(summary)
    confirming = frame[frame["memory_budget.predicted_seq_len"].notna()]
    assert sorted(confirming["mode"]) == sorted(MODES)
    assert set(confirming["memory_budget.budget_bytes"]) == {BUDGET}
    for _, row in confirming.iterrows():
        assert row["seq_len"] == row["memory_budget.measured_seq_len"]
    data = json.loads(export.json_text(export.export_dict(summary)))
    assert data["run"]["info"]["memory_sequence_budget"]["budget_bytes"] == BUDGET


def test_the_progress_count_takes_in_the_confirming_cells(gpt_sequence_sweep):
    *_, events = gpt_sequence_sweep
    (start,) = [info for event, info in events if event == "start"]
    added = [info for event, info in events if event == "cell-added"]
    done = [info for event, info in events if event == "process-done"]
    assert added  # the confirming cells, at lengths the sweep did not run
    # every process the display was told of, and no more, finished
    assert len(done) == start["processes"] + sum(a["processes"] for a in added)
