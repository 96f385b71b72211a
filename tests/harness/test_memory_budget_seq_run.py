"""The longest sequence within a memory budget, from a real sweep of gpt tiny over 16 and 32
positions in eager torch and jitted JAX: predicted from the stored fit, measured there (or at
the position table's 64, marked clipped) and shown by every report. Six cells and a parity
check, about a minute and a half on two idle cores: behind the slow marker."""

import json
import math

import pytest

from twinbench.harness.runner import RunSettings, run
from twinbench.report import export, markdown
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
def sequence_budget(tmp_path_factory):
    out = tmp_path_factory.mktemp("sequence-budget")
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
    run_id = run(settings)
    with ResultStore(out / DB_NAME) as store:
        cells, info = store.cells(run_id), store.run(run_id).info
    assert all(c.status == "ok" for c in cells), [c.error for c in cells]
    return cells, info, load_summary(out, run_id)


@pytest.mark.parametrize("mode", MODES)
def test_the_longest_sequence_is_predicted_from_the_fit_and_measured(sequence_budget, mode):
    cells, info, _ = sequence_budget
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


def test_every_report_carries_the_prediction(sequence_budget, tmp_path):
    _, info, summary = sequence_budget
    text = markdown.render(summary)
    for fit in info["memory_sequence_budget"]["fits"]:
        assert f"{fit['mode']}: longest sequence predicted {fit['predicted_seq_len']:,}" in text
        assert ("clipped to the position table's 64" in text) or not fit["clipped"]
    frame = export.cells_frame(summary)
    confirming = frame[frame["memory_budget.predicted_seq_len"].notna()]
    assert sorted(confirming["mode"]) == sorted(MODES)
    assert set(confirming["memory_budget.budget_bytes"]) == {BUDGET}
    for _, row in confirming.iterrows():
        assert row["seq_len"] == row["memory_budget.measured_seq_len"]
    data = json.loads(export.json_text(export.export_dict(summary)))
    assert data["run"]["info"]["memory_sequence_budget"]["budget_bytes"] == BUDGET
