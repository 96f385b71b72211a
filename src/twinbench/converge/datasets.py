"""Real data that ships inside installable packages, loaded offline and split once.

Nothing is downloaded: scikit-learn bundles ``digits``, ``cancer`` (breast cancer Wisconsin) and
``wine`` as CSV files in its wheel, statsmodels bundles ``co2``, ``sunspots`` and ``macrodata``,
and every Python installation ships ``pydoc_data.topics`` (the reference documentation's text).

Splits are fixed, so every run, seed and framework sees the same validation set (a run's seed
moves the initial weights and the order of the training batches, never the split):

* tables (``digits``, ``cancer``, ``wine``): a stratified random split with `SPLIT_SEED`
  (scikit-learn's ``train_test_split``), `VALIDATION_FRACTION` held out;
* series (``co2``, ``sunspots``, ``macro``) and ``text``: chronological, the last part held out —
  a random split of a series would let the model read the future it is asked to forecast.

Standardisation (zero mean, unit variance per feature) is fitted on the training part only and
applied to both parts, so no validation statistic leaks into training.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import numpy.typing as npt

from twinbench.errors import TwinbenchError

SPLIT_SEED = 0
VALIDATION_FRACTION = 0.2
TEXT_VALIDATION_FRACTION = 0.1
INSTALL = "pip install 'twinbench[converge]'"

Array = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int32]


@dataclass(frozen=True)
class DatasetInfo:
    """Where a dataset comes from and what it is; ``module`` is the package it ships in."""

    name: str
    module: str  # importable module that ships the data ("sklearn", "statsmodels", "pydoc_data")
    package: str  # what pip installs for it ("" for the standard library)
    description: str


DATASETS = {
    info.name: info
    for info in (
        DatasetInfo("digits", "sklearn", "scikit-learn", "1,797 8×8 images of digits, 10 classes"),
        DatasetInfo("cancer", "sklearn", "scikit-learn", "569 tumours × 30 features, 2 classes"),
        DatasetInfo("wine", "sklearn", "scikit-learn", "178 wines × 13 features, 3 classes"),
        DatasetInfo("co2", "statsmodels", "statsmodels", "2,284 weekly CO₂ readings, 1958-2001"),
        DatasetInfo("sunspots", "statsmodels", "statsmodels", "309 yearly sunspot counts"),
        DatasetInfo("macro", "statsmodels", "statsmodels", "203 quarters of US macro series"),
        DatasetInfo("text", "pydoc_data", "", "Python's reference documentation, ~0.5 MB"),
    )
}


def require(name: str) -> DatasetInfo:
    """The dataset's info; a one-line error naming what to install when its package is missing."""
    if name not in DATASETS:
        raise TwinbenchError(f"unknown dataset '{name}'; valid: {', '.join(DATASETS)}")
    info = DATASETS[name]
    if importlib.util.find_spec(info.module) is None:
        raise TwinbenchError(
            f"dataset '{name}' ships with {info.package}, which is not installed; "
            f"install it with {INSTALL} (or pip install {info.package})"
        )
    return info


# ---- tables -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A classification table split into training and validation parts, standardised.

    ``x_*`` are float32 (n, features), or (n, 8, 8, 1) NHWC images for ``digits``; ``y_*``
    int32 class indices.
    """

    name: str
    x_train: Array
    y_train: Labels
    x_val: Array
    y_val: Labels
    classes: int


def standardise(train: np.ndarray, *others: np.ndarray) -> list[Array]:
    """``train`` and ``others`` scaled by the mean and standard deviation of ``train`` alone
    (per feature, over the first axis); a constant feature keeps a scale of 1."""
    from sklearn.preprocessing import StandardScaler

    flat = train.reshape(len(train), -1)
    scaler = StandardScaler().fit(flat)
    return [
        scaler.transform(a.reshape(len(a), -1)).reshape(a.shape).astype(np.float32)
        for a in (train, *others)
    ]


def split_table(name: str, x: np.ndarray, y: np.ndarray, *, seed: int = SPLIT_SEED) -> Table:
    """A stratified split of ``(x, y)`` with ``seed``, standardised from the training part."""
    from sklearn.model_selection import train_test_split

    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=VALIDATION_FRACTION, random_state=seed, stratify=y
    )
    x_train, x_val = standardise(x_train, x_val)
    classes = int(np.max(y)) + 1
    return Table(name, x_train, y_train.astype(np.int32), x_val, y_val.astype(np.int32), classes)


def _sklearn_table(name: str) -> Table:
    from sklearn import datasets

    loader = {
        "digits": datasets.load_digits,
        "cancer": datasets.load_breast_cancer,
        "wine": datasets.load_wine,
    }[name]
    bunch = loader()
    x = np.asarray(bunch.data, np.float64)
    if name == "digits":
        x = x.reshape(-1, 8, 8, 1)  # NHWC, one grey channel
    return split_table(name, x, np.asarray(bunch.target))


# ---- series -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """A multichannel series (T, channels), float32, standardised from its training part.

    Forecasting windows whose *target* lies before ``split`` train, the others validate; a
    validation window's inputs may reach back into the training part (that history is known).
    Channel 0 is the one forecast.
    """

    name: str
    values: Array
    split: int
    channels: tuple[str, ...]


def split_series(name: str, values: np.ndarray, channels: tuple[str, ...]) -> Series:
    """``values`` (T, channels) split chronologically, standardised from the first part."""
    split = int(round(len(values) * (1 - VALIDATION_FRACTION)))
    train, held_out = standardise(values[:split], values[split:])
    return Series(name, np.concatenate([train, held_out]), split, channels)


MACRO_GROWTH = ("realgdp", "realcons", "realinv", "realdpi")  # log growth per quarter
MACRO_CHANGE = ("tbilrate", "unemp")  # change per quarter
MACRO_LEVEL = ("infl",)  # annualised inflation, already a rate


def _statsmodels_series(name: str) -> Series:
    from statsmodels import datasets

    if name == "co2":
        frame = datasets.co2.load_pandas().data  # 59 missing weeks, filled linearly
        values = frame["co2"].interpolate(limit_direction="both").to_numpy()[:, None]
        return split_series(name, values, ("co2",))
    if name == "sunspots":
        values = datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy()[:, None]
        return split_series(name, values, ("sunactivity",))
    frame = datasets.macrodata.load_pandas().data  # inflation first: the channel forecast
    columns = [frame[c].to_numpy()[1:] for c in MACRO_LEVEL]
    columns += [np.diff(np.log(frame[c].to_numpy())) for c in MACRO_GROWTH]
    columns += [np.diff(frame[c].to_numpy()) for c in MACRO_CHANGE]
    channels = (*(f"{c} growth" for c in MACRO_GROWTH), *(f"{c} change" for c in MACRO_CHANGE))
    return split_series(name, np.stack(columns, axis=1), (*MACRO_LEVEL, *channels))


# ---- text ---------------------------------------------------------------------------------------

# Printable ASCII, newline and tab; any other character reads as UNKNOWN (id 0).
ALPHABET = "\0\t\n" + "".join(chr(c) for c in range(32, 127))


@dataclass(frozen=True)
class Text:
    """Characters as int32 ids into `ALPHABET`, split chronologically."""

    name: str
    train: Labels
    val: Labels
    alphabet: str


def encode(text: str) -> Labels:
    """``text`` as ids into `ALPHABET` (0 for a character outside it)."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    lookup = np.zeros(128, dtype=np.int32)
    lookup[[ord(ch) for ch in ALPHABET]] = np.arange(len(ALPHABET), dtype=np.int32)
    return np.where(codes < 128, lookup[np.minimum(codes, 127)], 0).astype(np.int32)


def _text() -> Text:
    from pydoc_data.topics import topics

    ids = encode("\n\n".join(topics[key] for key in sorted(topics)))
    split = int(round(len(ids) * (1 - TEXT_VALIDATION_FRACTION)))
    return Text("text", ids[:split], ids[split:], ALPHABET)


# ---- loading ------------------------------------------------------------------------------------

Dataset = Table | Series | Text

_LOADERS: dict[str, Callable[[str], Dataset]] = {
    "digits": _sklearn_table,
    "cancer": _sklearn_table,
    "wine": _sklearn_table,
    "co2": _statsmodels_series,
    "sunspots": _statsmodels_series,
    "macro": _statsmodels_series,
    "text": lambda _name: _text(),
}


@cache
def load(name: str) -> Dataset:
    """The dataset called ``name``, split and standardised (cached: loading is deterministic)."""
    require(name)
    return _LOADERS[name](name)


def size_text(name: str) -> str:
    """How big the dataset is, split, in one short phrase (for ``twinbench list``)."""
    data = load(name)
    if isinstance(data, Table):
        return f"{len(data.y_train)} train / {len(data.y_val)} validation"
    if isinstance(data, Series):
        return f"{data.split} train / {len(data.values) - data.split} validation steps"
    return f"{len(data.train):,} train / {len(data.val):,} validation characters"
