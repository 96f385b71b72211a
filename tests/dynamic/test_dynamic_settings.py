"""Bad input is refused in one line before anything runs; the schedule is seeded and bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers import assert_one_line_error, run_main
from twinbench.dynamic.schedule import (
    bucket_of,
    draw_lengths,
    padded_lengths,
    padding_share,
    sequence_batches,
)
from twinbench.dynamic.settings import DynamicSettings
from twinbench.errors import TwinbenchError
from twinbench.registry import builtin


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"steps": 0}, ["--steps 0", "integer > 0"]),
        ({"bucket": 0}, ["--bucket 0", "integer > 0"]),
        ({"bucket": -4}, ["--bucket -4"]),
        ({"repeats": 0}, ["--repeats 0"]),
        ({"workload": "mlp"}, ["'mlp' has no sequence dimension", "gpt, lstm, gru"]),
        ({"workload": "nope"}, ["unknown workload 'nope'"]),
        ({"scenario": "batch", "workload": "lstm"}, ["'lstm' is not in the batch", "mlp, gpt"]),
        ({"scenario": "batch", "workload": "gpt", "lengths": "2,9"}, ["length 9", "1 to 8"]),
        ({"scenario": "batch", "lengths": "4,33"}, ["length 33", "1 to 32", "preset batch"]),
        ({"scenario": "generate", "workload": "lstm"}, ["'lstm' does not generate", "gpt"]),
        ({"scenario": "generate", "strategies": ("jax-jit-bucketed",)}, ["generation strategy"]),
        ({"scenario": "shapes"}, ["unknown scenario 'shapes'", "seq-len"]),
        ({"size": "huge"}, ["unknown size 'huge'", "tiny"]),
        ({"lengths": "10,65"}, ["length 65", "1 to 64", "position table"]),
        ({"lengths": "10,0"}, ["length 0"]),
        ({"lengths": "zipf"}, ["--lengths 'zipf'", "lognormal, uniform"]),
        ({"strategies": ("jax-pjit",)}, ["unknown strategy 'jax-pjit'", "jax-jit-bucketed"]),
        ({"torch_backend": "tvm"}, ["unknown torch backend 'tvm'", "inductor"]),
        (
            {"workload": "lstm", "strategies": ("jax-jit-pad-max",)},
            ["'jax-jit-pad-max' pads", "lstm", "padding runs on: gpt"],
        ),
    ],
)
def test_bad_settings_are_one_line(changes: dict[str, object], fragments: list[str]) -> None:
    with pytest.raises(TwinbenchError) as caught:
        DynamicSettings(**changes).validate()  # type: ignore[arg-type]
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_the_defaults_are_valid_and_skip_padding_where_it_would_change_the_result() -> None:
    DynamicSettings().validate()
    lstm = DynamicSettings(workload="lstm")
    lstm.validate()
    assert "jax-jit-bucketed" in DynamicSettings().chosen_strategies
    assert not any("bucketed" in s or "pad" in s for s in lstm.chosen_strategies)


def test_the_workload_decides_the_phase_and_bert_pads_in_seq_len() -> None:
    serving = DynamicSettings(scenario="batch", workload="gpt")
    serving.validate()
    assert serving.phase == "infer" and serving.to_dict()["phase"] == "infer"
    assert serving.longest == builtin("gpt").size("tiny").batch_size
    assert "jax-jit-bucketed" in serving.chosen_strategies
    assert DynamicSettings(scenario="batch").phase == "train"  # the mlp trains
    assert DynamicSettings(workload="gpt").phase == "train"  # seq-len trains
    bert = DynamicSettings(workload="bert", strategies=("jax-jit-pad-max",))
    bert.validate()  # the mask makes padding exact for the encoder
    assert bert.phase == "train" and bert.longest == 64
    assert "torch-compile-bucketed" in DynamicSettings(workload="bert").chosen_strategies


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--steps", "0"], "--steps 0"),
        (["--bucket", "0"], "--bucket 0"),
        (["--workload", "mlp"], "'mlp'"),
        (["--lengths", "3,999"], "length 999"),
        (["--scenario", "batch", "--workload", "bert"], "'bert' is not in the batch scenario"),
    ],
)
def test_cli_refuses_bad_input_with_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    fragment: str,
    tmp_path: Path,
) -> None:
    result = run_main(monkeypatch, capsys, "dynamic", *args, "--out", tmp_path)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "results.sqlite").exists()  # nothing ran, nothing stored


def test_lengths_are_seeded_and_stay_in_the_table() -> None:
    first = draw_lengths("lognormal", 500, 64, seed=3)
    assert first == draw_lengths("lognormal", 500, 64, seed=3)
    assert first != draw_lengths("lognormal", 500, 64, seed=4)
    assert min(first) >= 2 and max(first) <= 64
    assert 12 <= float(np.median(first)) <= 20  # a quarter of the table, the log-normal's median
    assert draw_lengths("7,30", 5, 64, seed=0) == [7, 30, 7, 30, 7]


@pytest.mark.parametrize(
    ("length", "bucket", "padded"),
    [(1, None, 1), (5, None, 8), (8, None, 8), (9, None, 16), (60, None, 64), (5, 16, 16),
     (17, 16, 32), (63, 48, 64)],
)  # fmt: skip
def test_buckets(length: int, bucket: int | None, padded: int) -> None:
    assert bucket_of(length, bucket, longest=64) == padded


def test_padded_sequences_keep_their_label() -> None:
    bert = builtin("bert")
    size = bert.size("tiny")
    (plain,) = sequence_batches(bert.batches(size, 0), [6], [6])
    (padded,) = sequence_batches(bert.batches(size, 0), [6], [16])
    assert set(padded) == {"tokens", "labels", "mask"}
    np.testing.assert_array_equal(padded["labels"], plain["labels"])
    np.testing.assert_array_equal(padded["tokens"][:, :6], plain["tokens"])
    assert padded["mask"][:, :6].all() and not padded["mask"][:, 6:].any()


def test_padded_batches_keep_the_real_positions_and_mask_the_rest() -> None:
    gpt = builtin("gpt")
    size = gpt.size("tiny")
    lengths = [5, 12]
    padded = padded_lengths(lengths, "bucket", None, 64)
    assert padded == [8, 16]
    assert padding_share(lengths, padded) == pytest.approx(1 - 17 / 24)
    plain = list(sequence_batches(gpt.batches(size, 0), lengths, lengths))
    padded_batches = list(sequence_batches(gpt.batches(size, 0), lengths, padded))
    for n, p, a, b in zip(lengths, padded, plain, padded_batches, strict=True):
        assert b["tokens"].shape == (size.batch_size, p)
        np.testing.assert_array_equal(b["tokens"][:, :n], a["tokens"])
        np.testing.assert_array_equal(b["targets"][:, :n], a["targets"])
        assert b["mask"][:, :n].all() and not b["mask"][:, n:].any()


def test_an_interrupted_run_stores_the_strategies_that_finished(tmp_path, monkeypatch, capsys):
    from twinbench.dynamic import suite
    from twinbench.store import DB_NAME, ResultStore

    real_run, started = suite._run_strategy, []

    def run_then_stop(settings, name, *args):  # Ctrl-C while the second strategy runs
        started.append(name)
        if len(started) == 2:
            raise KeyboardInterrupt
        return real_run(settings, name, *args)

    monkeypatch.setattr(suite, "_run_strategy", run_then_stop)
    out = tmp_path / "out"
    result = run_main(
        monkeypatch,
        capsys,
        "dynamic",
        "--workload",
        "lstm",
        "--steps",
        "3",
        "--strategy",
        "torch-eager",
        "--strategy",
        "jax-jit",
        "--threads",
        "1",
        "--repeats",
        "1",
        "--out",
        str(out),
    )
    assert result.returncode == 130, result.stderr
    with ResultStore(out / DB_NAME) as store:
        run = store.run(store.latest_run_id())
    assert run.status == "interrupted"
    stored = run.info["dynamic"]
    assert stored["interrupted"] is True
    assert [s["strategy"] for s in stored["strategies"]] == ["torch-eager"]
    assert "Interrupted" in run.info["suite_report"]
