"""Memory against the sequence length, from a real sweep of gpt tiny over two lengths in eager
torch and jitted JAX: the fit stored with the run and quoted in its recommendations. Four
cells and a parity check, about a minute on two idle cores: behind the slow marker."""

import pytest

from twinbench.harness.runner import RunSettings, run
from twinbench.report.recommend import recommend
from twinbench.report.summary import load_summary
from twinbench.store import DB_NAME, ResultStore

SHORT, LONG = 16, 64  # gpt tiny's position table holds 64
MODES = ("torch-eager", "jax-jit")

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
        out=out,
    )
    run_id = run(settings)
    with ResultStore(out / DB_NAME) as store:
        cells, info = store.cells(run_id), store.run(run_id).info
    summary = load_summary(out, run_id)
    assert all(c.status == "ok" for c in cells), [c.error for c in cells]
    peaks = {(c.mode, c.metrics["seq_len"]): c.metrics["attributable_peak_bytes"] for c in cells}
    return peaks, info, summary


@pytest.mark.parametrize("mode", MODES)
def test_the_fit_against_the_sequence_length_is_stored(gpt_sequence_sweep, mode):
    peaks, info, _ = gpt_sequence_sweep
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
    _, _, summary = gpt_sequence_sweep
    texts = [r.text for r in recommend(summary) if r.subject == "gpt/tiny bs=8 train"]
    (text,) = [t for t in texts if "against sequence length" in t]
    assert all(mode in text for mode in MODES)
