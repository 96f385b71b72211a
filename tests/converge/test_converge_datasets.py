"""Every dataset loads offline with its documented shape and class balance; the split is
disjoint and seeded; standardisation uses the training part's statistics only."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from twinbench.converge import datasets
from twinbench.converge.datasets import Series, Table, Text, load
from twinbench.errors import TwinbenchError

# Shapes and class counts as scikit-learn's and statsmodels' documentation give them.
TABLES = {
    "digits": ((8, 8, 1), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]),
    "cancer": ((30,), [212, 357]),
    "wine": ((13,), [59, 71, 48]),
}
SERIES = {"co2": (2284, 1), "sunspots": (309, 1), "macro": (202, 7)}  # macro: one quarter diffed


@pytest.mark.parametrize("name", TABLES)
def test_table_shape_and_class_balance(name: str) -> None:
    data = load(name)
    assert isinstance(data, Table)
    shape, counts = TABLES[name]
    assert data.x_train.shape[1:] == data.x_val.shape[1:] == shape
    total = np.bincount(np.concatenate([data.y_train, data.y_val]))
    assert total.tolist() == counts
    assert len(data.y_val) == pytest.approx(0.2 * sum(counts), abs=1)
    # stratified: each class's share of the validation part is its share of the whole
    share = np.bincount(data.y_val, minlength=len(counts)) / len(data.y_val)
    np.testing.assert_allclose(share, np.array(counts) / sum(counts), atol=0.02)


@pytest.mark.parametrize("name", SERIES)
def test_series_shape_and_chronological_split(name: str) -> None:
    data = load(name)
    assert isinstance(data, Series)
    assert data.values.shape == SERIES[name]
    assert len(data.channels) == data.values.shape[1]
    assert data.split == round(0.8 * len(data.values))
    assert np.isfinite(data.values).all()  # co2's missing weeks are filled


def test_text_is_the_reference_documentation() -> None:
    data = load("text")
    assert isinstance(data, Text)
    assert len(data.train) + len(data.val) > 400_000
    assert len(data.val) == pytest.approx(0.1 * (len(data.train) + len(data.val)), abs=1)
    text = "".join(data.alphabet[i] for i in data.train[:200])
    assert "assert" in text
    assert np.mean(data.train == 0) < 0.01  # characters outside the alphabet are rare


def test_encode_maps_unknown_characters_to_zero() -> None:
    ids = datasets.encode("a\n€b")
    assert [datasets.ALPHABET[i] for i in ids] == ["a", "\n", "\0", "b"]


def _split(seed: int) -> tuple[set[float], set[float]]:
    x = np.arange(100, dtype=np.float64)[:, None]  # unique rows, so identity survives scaling
    table = datasets.split_table("toy", x, np.arange(100) % 2, seed=seed)
    return set(table.x_train[:, 0].round(5)), set(table.x_val[:, 0].round(5))


def test_split_is_disjoint_complete_and_seeded() -> None:
    train, val = _split(0)
    assert not train & val
    assert len(train) + len(val) == 100 and len(val) == 20
    assert _split(0) == (train, val)
    assert _split(1) != (train, val)


def test_standardisation_uses_training_statistics_only() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(3.0, 2.0, (500, 4))
    shifted = rng.normal(3.0, 2.0, (100, 4)) + 50.0  # a validation set far from the training one
    scaled_train, scaled_val = datasets.standardise(train, shifted)
    np.testing.assert_allclose(scaled_train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(scaled_train.std(0), 1, atol=1e-5)
    expected = (shifted - train.mean(0)) / train.std(0)
    np.testing.assert_allclose(scaled_val, expected, rtol=1e-5)
    assert scaled_val.mean() > 20  # the shift survives: the validation set was not re-centred


def test_series_standardised_from_the_training_part() -> None:
    from statsmodels.datasets import sunspots

    raw = sunspots.load_pandas().data["SUNACTIVITY"].to_numpy()
    data = load("sunspots")
    assert isinstance(data, Series)
    train = raw[: data.split]
    np.testing.assert_allclose(data.values[:, 0], (raw - train.mean()) / train.std(), rtol=1e-5)


def test_missing_package_is_one_line_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "statsmodels" else real(name)
    )
    with pytest.raises(TwinbenchError) as error:
        datasets.require("sunspots")
    message = str(error.value)
    assert "\n" not in message
    assert "statsmodels" in message and "pip install" in message
    datasets.require("cancer")  # scikit-learn's datasets are still there
