"""Parity loss curves as TensorBoard scalars, read back from the event files byte by byte."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from twinbench.parity import Check, ParityResult
from twinbench.report.tensorboard import parity_curves, write_parity_curves

tensorboardX = pytest.importorskip("tensorboardX")
from tensorboardX.crc32c import crc32c  # noqa: E402
from tensorboardX.proto import event_pb2  # noqa: E402


def _masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC32-C: rotate right by 15 bits and add a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_scalars(event_file: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value)]} from a TFRecord file of Event protos, checking both CRCs."""
    raw = event_file.read_bytes()
    scalars: dict[str, list[tuple[int, float]]] = {}
    offset = 0
    while offset < len(raw):
        header = raw[offset : offset + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", raw[offset + 8 : offset + 12])
        assert header_crc == _masked_crc(header)
        data = raw[offset + 12 : offset + 12 + length]
        (data_crc,) = struct.unpack("<I", raw[offset + 12 + length : offset + 16 + length])
        assert data_crc == _masked_crc(data)
        offset += 16 + length
        event = event_pb2.Event.FromString(data)
        for value in event.summary.value:
            scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    assert offset == len(raw)
    return scalars


def _record(workload: str, size: str, curves: dict[str, dict[str, list[float]]]) -> dict:
    """A stored parity record, built from the real ParityResult so the layout is the store's."""
    checks = [Check("outputs", True, 0.0, 0.0, 1e-5, 1e-5)] + [
        Check(f"curve[{optimizer}]", True, 0.0, 0.0, 1e-6, 1e-5, curves=pair)
        for optimizer, pair in curves.items()
    ]
    result = ParityResult(workload, size, "float32", 5, checks=checks)
    return {"workload": workload, "size": size, "passed": True, "summary": result.to_dict()}


SGD_TORCH = [1.25, 0.9, 0.61, 0.40000001, 0.3]
SGD_JAX = [1.25, 0.9000001, 0.61, 0.4, 0.29999998]
ADAM_TORCH = [1.25, 0.7, 0.33]
ADAM_JAX = [1.25, 0.70000005, 0.33000001]
PARITY = [
    _record(
        "mlp",
        "tiny",
        {
            "sgd": {"torch": SGD_TORCH, "jax": SGD_JAX},
            "adam": {"torch": ADAM_TORCH, "jax": ADAM_JAX},
        },
    ),
    _record("xor", "small bs=64", {"sgd": {"torch": [0.7, 0.6], "jax": [0.7, 0.6]}}),
    {
        "workload": "linreg",
        "size": "tiny",
        "passed": False,
        "summary": {"error": "RuntimeError: twin raised", "checks": []},
    },
]


def _steps(values: list[float]) -> list[tuple[int, float]]:
    return [(step, float(np.float32(v))) for step, v in enumerate(values)]


def test_curves_are_found_per_workload_and_optimizer():
    found = parity_curves(PARITY)
    assert set(found) == {("mlp", "tiny"), ("xor", "small bs=64")}
    assert found[("mlp", "tiny")]["adam"]["jax"] == ADAM_JAX


def test_event_files_hold_the_stored_curves(tmp_path):
    folders = write_parity_curves(PARITY, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in folders) == [
        "mlp-tiny/jax",
        "mlp-tiny/torch",
        "xor-small_bs=64/jax",
        "xor-small_bs=64/torch",
    ]
    expected = {
        "mlp-tiny/torch": {"loss/sgd": SGD_TORCH, "loss/adam": ADAM_TORCH},
        "mlp-tiny/jax": {"loss/sgd": SGD_JAX, "loss/adam": ADAM_JAX},
        "xor-small_bs=64/torch": {"loss/sgd": [0.7, 0.6]},
    }
    for folder, tags in expected.items():
        (event_file,) = (tmp_path / folder).glob("events.out.tfevents.*")
        scalars = read_scalars(event_file)
        # TensorBoard stores scalars as float32: compare with the stored curve rounded alike
        assert scalars == {tag: _steps(values) for tag, values in tags.items()}


def test_writing_again_replaces_the_previous_event_files(tmp_path):
    write_parity_curves(PARITY, tmp_path)
    keep = tmp_path / "mlp-tiny" / "torch" / "notes.txt"
    keep.write_text("mine")
    changed = [_record("mlp", "tiny", {"sgd": {"torch": [2.0, 1.0], "jax": [2.0, 1.0]}})]
    write_parity_curves(changed, tmp_path)
    (event_file,) = (tmp_path / "mlp-tiny" / "torch").glob("events.out.tfevents.*")
    assert read_scalars(event_file) == {"loss/sgd": [(0, 2.0), (1, 1.0)]}
    assert keep.read_text() == "mine"


def test_no_curves_write_nothing(tmp_path):
    assert write_parity_curves(PARITY[2:], tmp_path / "tb") == []
    assert not (tmp_path / "tb").exists()
