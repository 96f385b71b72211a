"""The converge workloads: which zoo twin trains on which dataset, to which quality target.

Each `Task` names a dataset (`twinbench.converge.datasets`), the zoo workload whose twins it
trains (their ``build``/``forward``/``loss_fn``, at a config sized for the data), the optimizer,
the metric and its default target. The data pipeline and the metric live here too, in NumPy, so
both frameworks get the same batches from one seeded pipeline and are scored by the same code.

Forecasting targets are relative to persistence (predict the last observed value): the metric
is validation MSE divided by persistence's validation MSE, and a target of 0.7 means "30 %
below persistence". The language target is validation cross-entropy in bits per character.

Targets were chosen where seeds 0-2 all arrive well inside ``max_steps`` and the curve is still
falling steeply, so that time to target measures training, not luck. Same-seed trajectories of
both frameworks coincide at first and drift apart slowly (float32 rounding), so one framework's
calibration holds for both while the curve is steep, but a target on a plateau is crossed at
steps far apart and fails the steps-to-target parity check: ``cancer`` 0.96 at 150-200 steps
(seeds reach 0.965); ``digits`` 0.95 at 50-125 (seeds 0-4: the same step in both frameworks at
every seed; at 0.97, on the plateau of 0.95-0.97 that follows, the seeds crossed after 100-475
steps and the frameworks up to 75 apart); ``sunspots``
0.4 at 60-100 (it flattens near 0.3 by step 650); ``macro`` 0.7 at 50-60 (near 0.6 by 400;
inflation's persistence is a strong baseline: a 7-lag linear model gets 0.8); ``text`` 3.0 bits
per character at ~450 steps (4.5 after 50; seed 0 of both frameworks 2.99 after 450, still falling
~0.1 per 50 steps).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from twinbench.converge.datasets import ALPHABET, Dataset, Series, Table, Text, load
from twinbench.spec import Batch, OptimizerConfig, Size, Workload, WorkloadSpec

TEXT_VALIDATION_WINDOWS = 128  # non-overlapping windows scored at each evaluation


@dataclass(frozen=True)
class Metric:
    """A validation metric: its name, which way is better, and the targets that make sense."""

    name: str
    higher_is_better: bool
    low: float  # exclusive: a target must lie above it
    high: float | None  # inclusive; None: unbounded

    def met(self, value: float, target: float) -> bool:
        """True when ``value`` reaches ``target``."""
        if not math.isfinite(value):
            return False
        return value >= target if self.higher_is_better else value <= target

    def range_text(self) -> str:
        high = "∞)" if self.high is None else f"{self.high:g}]"
        return f"({self.low:g}, {high}"


ACCURACY = Metric("validation accuracy", higher_is_better=True, low=0.0, high=1.0)
VS_PERSISTENCE = Metric(
    "validation MSE / persistence MSE", higher_is_better=False, low=0.0, high=None
)
BITS_PER_CHAR = Metric(
    "validation bits per character", higher_is_better=False, low=0.0, high=math.log2(len(ALPHABET))
)


@dataclass(frozen=True)
class Task:
    """One converge workload: a zoo twin trained on a real dataset to a quality target."""

    name: str
    description: str
    dataset: str
    twins: str  # the zoo workload whose twins train here
    config: Mapping[str, Any]
    optimizer: OptimizerConfig
    metric: Metric
    target: float
    batch_size: int = 32
    max_steps: int = 2000
    eval_every: int = 10

    @property
    def size(self) -> Size:
        """The twin's size preset for this task (the config sized for the dataset)."""
        return Size("converge", self.config, batch_size=self.batch_size)

    def workload(self) -> Workload:
        """The zoo workload with this task's size as its only preset (init and twins kept)."""
        from twinbench.registry import builtin

        base = builtin(self.twins)
        assert isinstance(base, WorkloadSpec)  # every zoo workload is one
        # a frozen WorkloadSpec is a Workload that mypy reads as read-only attributes
        return cast(Workload, dataclasses.replace(base, sizes={"converge": self.size}))

    def data(self) -> Dataset:
        return load(self.dataset)

    def batches(self, seed: int) -> Iterator[Batch]:
        """The endless, seeded stream of training batches both frameworks train on."""
        data, rng = self.data(), np.random.default_rng(seed)
        if isinstance(data, Table):
            return _epochs(_images(self, data.x_train), data.y_train, self.batch_size, rng)
        if isinstance(data, Series):
            return _windows(data, int(self.config["seq_len"]), self.batch_size, rng)
        return _text_windows(data, int(self.config["seq_len"]), self.batch_size, rng)

    def validation(self) -> Batch:
        """The whole validation split as one batch (inputs and targets)."""
        data = self.data()
        if isinstance(data, Table):
            return {"x": _images(self, data.x_val), "y": data.y_val}
        if isinstance(data, Series):
            seq = int(self.config["seq_len"])
            return _series_batch(data, np.arange(data.split, len(data.values)), seq)
        return _text_validation(data, int(self.config["seq_len"]))

    def score(self, outputs: np.ndarray, batch: Batch) -> float:
        """The metric of the model's ``outputs`` on the validation ``batch``."""
        if self.metric is ACCURACY:
            return float(np.mean(np.argmax(outputs, axis=-1) == batch["y"]))
        if self.metric is VS_PERSISTENCE:
            error = np.mean((outputs[:, 0] - batch["y"][:, 0]) ** 2)
            baseline = np.mean((batch["x"][:, -1, 0] - batch["y"][:, 0]) ** 2)
            return float(error / baseline)
        return float(np.mean(_nats(outputs, batch["targets"])) / math.log(2))


def persistence_mse(task: Task) -> float:
    """Validation MSE of predicting the last observed value (standardised units)."""
    batch = task.validation()
    return float(np.mean((batch["x"][:, -1, 0] - batch["y"][:, 0]) ** 2))


def _images(task: Task, x: np.ndarray) -> np.ndarray:
    """The resnet twins read RGB: a grey image's one channel repeated three times."""
    if task.twins == "resnet" and x.ndim == 4 and x.shape[-1] == 1:
        return np.repeat(x, 3, axis=-1)
    return x


def _epochs(x: np.ndarray, y: np.ndarray, batch: int, rng: np.random.Generator) -> Iterator[Batch]:
    """Shuffled epochs, full batches only (the last partial one is dropped: fixed shapes)."""
    while True:
        order = rng.permutation(len(y))
        for start in range(0, len(y) - batch + 1, batch):
            chosen = order[start : start + batch]
            yield {"x": x[chosen], "y": y[chosen]}


def _series_batch(data: Series, targets: np.ndarray, seq: int) -> Batch:
    """Windows ``x (B, seq, channels)`` ending just before each target step, ``y (B, 1)`` the
    next value of channel 0."""
    index = targets[:, None] - seq + np.arange(seq)  # (B, seq)
    return {"x": data.values[index], "y": data.values[targets, :1]}


def _windows(data: Series, seq: int, batch: int, rng: np.random.Generator) -> Iterator[Batch]:
    """Random training windows: every target step before the split, at least ``seq`` in."""
    while True:
        yield _series_batch(data, rng.integers(seq, data.split, batch), seq)


def _text_windows(data: Text, seq: int, batch: int, rng: np.random.Generator) -> Iterator[Batch]:
    while True:
        starts = rng.integers(0, len(data.train) - seq - 1, batch)
        window = data.train[starts[:, None] + np.arange(seq + 1)]
        yield {"tokens": window[:, :-1], "targets": window[:, 1:]}


def _text_validation(data: Text, seq: int) -> Batch:
    count = min(TEXT_VALIDATION_WINDOWS, (len(data.val) - 1) // seq)
    window = data.val[: count * seq + 1]
    tokens = window[:-1].reshape(count, seq)
    return {"tokens": tokens, "targets": window[1:].reshape(count, seq)}


def _nats(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Cross-entropy of each position in nats, from logits (a stable log-softmax)."""
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=-1))
    picked = np.take_along_axis(shifted, targets[..., None].astype(np.int64), axis=-1)[..., 0]
    result: np.ndarray = log_norm - picked
    return result


def _adam(lr: float) -> OptimizerConfig:
    return OptimizerConfig("adam", lr=lr)


def _tumours(name: str, description: str, features: tuple[int, ...], *, lr: float) -> Task:
    """An ``mlp`` classifying breast tumours to 96 % validation accuracy."""
    return Task(
        name,
        description,
        dataset="cancer",
        twins="mlp",
        config={"features": features, "task": "classify"},
        optimizer=_adam(lr),
        metric=ACCURACY,
        target=0.96,
    )


def _forecast(
    name: str, what: str, step: str, cell: str, window: int, features: int, lr: float, target: float
) -> Task:
    """A one-layer, 32-wide recurrent net (``cell``: lstm or gru) forecasting the next ``step`` of
    ``what`` in the series ``name`` (``features`` channels) from ``window`` steps; the description
    is written from these, so it cannot drift from the configuration."""
    channels = f" of {features} series" if features > 1 else ""
    return Task(
        name,
        f"{cell.upper()} (32 hidden) forecasting next {step}'s {what} from {window} {step}s"
        + channels,
        dataset=name,
        twins=cell,
        config={
            "seq_len": window,
            "hidden": 32,
            "layers": 1,
            "features": features,
            "horizon": 1,
        },
        optimizer=_adam(lr),
        metric=VS_PERSISTENCE,
        target=target,
    )


# series, what is forecast, its time step, recurrent cell, window, channels, Adam's lr, target
FORECASTS = (
    ("sunspots", "sunspot count", "year", "lstm", 20, 1, 5e-3, 0.4),
    ("macro", "US inflation", "quarter", "gru", 8, 7, 1e-3, 0.7),
)

TASKS = {
    task.name: task
    for task in (
        _tumours("cancer", "MLP 30-32-2 classifying breast tumours", (30, 32, 2), lr=1e-3),
        _tumours(
            "cancer-logreg",
            "logistic regression (softmax over 2 classes) on breast tumours",
            (30, 2),
            lr=1e-2,
        ),
        Task(
            "digits",
            "4-stage BatchNorm ResNet (one BasicBlock per stage) on 8×8 digits",
            dataset="digits",
            twins="resnet",
            config={
                "block": "basic",
                "layers": (1, 1, 1, 1),
                "widths": (8, 16, 32, 64),
                "stem": "cifar",
                "image_size": 8,
                "num_classes": 10,
            },
            optimizer=_adam(2e-3),
            metric=ACCURACY,
            target=0.95,
            eval_every=25,
        ),
        *(_forecast(*row) for row in FORECASTS),
        Task(
            "text",
            "character-level GPT (2 layers, d 64) on Python's reference documentation",
            dataset="text",
            twins="gpt",
            config={
                "n_layers": 2,
                "d_model": 64,
                "n_heads": 4,
                "seq_len": 64,
                "vocab_size": len(ALPHABET),
                "max_positions": 64,
            },
            optimizer=_adam(3e-3),
            metric=BITS_PER_CHAR,
            target=3.0,
            max_steps=3000,
            eval_every=50,
        ),
    )
}
