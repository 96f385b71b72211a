"""Verdicts and the feature table follow the measurements: synthetic cells, no worker."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from twinbench.deploy import DeploySettings, suite
from twinbench.deploy.advice import advice
from twinbench.deploy.rows import rows
from twinbench.deploy.suite import feature_table, verdicts
from twinbench.deploy.view import render_markdown
from twinbench.suite import no_progress


def _cell(path: str, center: float, *, passed: bool = True) -> dict[str, Any]:
    rng = np.random.default_rng(len(path))
    groups = [list(center * (1 + 0.01 * rng.standard_normal(50))) for _ in range(3)]
    return {
        "workload": "mlp",
        "path": path,
        "framework": path.split("-")[0],
        "group": "native",
        "status": "ok",
        "error": None,
        "size_bytes": 1000,
        "dynamic_batch": "yes",
        "fidelity": {"1": {"passed": passed, "max_abs": 0.0, "max_rel": 0.0}},
        "fidelity_passed": passed,
        "batch_sizes": [1],
        "cold_start": {"samples": [center * 1e4, center * 1.01e4, center * 0.99e4]},
        "latency": {"1": {}},
        "latency_groups": {"1": groups},
    }


def test_the_faster_artefact_wins_and_equal_ones_tie() -> None:
    rows = verdicts([_cell("torch-aoti", 2e-5), _cell("jax-stablehlo", 1e-5)])
    by = {r["what"]: r for r in rows}
    latency = by["latency at batch 1"]
    assert latency["verdict"].startswith("jax-stablehlo") and "faster" in latency["verdict"]
    assert 1.8 < latency["ci_low"] <= latency["ratio_torch_over_jax"] <= latency["ci_high"] < 2.2
    assert by["cold start"]["verdict"].startswith("jax-stablehlo")
    tie = verdicts([_cell("torch-aoti", 1e-5), _cell("jax-stablehlo", 1e-5)])
    assert "no significant difference" in {r["what"]: r for r in tie}["cold start"]["verdict"]


def test_an_artefact_failing_fidelity_gets_no_verdict() -> None:
    rows = verdicts([_cell("torch-aoti", 2e-5, passed=False), _cell("jax-stablehlo", 1e-5)])
    assert [r["verdict"] for r in rows] == ["no verdict: torch-aoti fails fidelity"]


def test_feature_table_flips_when_a_check_fails() -> None:
    good = _cell("jax-stablehlo", 1e-5)
    (before,) = feature_table([good])
    assert (before["exported"], before["fidelity"], before["dynamic_batch"]) == (
        "yes",
        "pass",
        "yes",
    )
    bad = copy.deepcopy(good)
    bad["fidelity"]["1"]["passed"] = False
    bad["fidelity_passed"] = False
    (after,) = feature_table([bad])
    assert after["fidelity"] == "fail"
    refused = {**good, "size_bytes": None, "status": "ok", "error": "RuntimeError: no"}
    (row,) = feature_table([refused])
    assert row["exported"] == "failed: RuntimeError: no"


def test_markdown_shows_a_refused_export_with_its_error() -> None:
    refused = {**_cell("torch-onnx", 1e-5), "size_bytes": None, "latency": {}, "cold_start": None}
    refused["error"] = "UnsupportedOperator: aten::weird"
    data = {
        "settings": {"size": "tiny", "dtype": "float32", "device": "cpu", "threads": 2,
                     "repeats": 1, "budget_s": 0.1},
        "cells": [refused],
        "comparisons": [],
        "verdicts": [],
        "features": feature_table([refused]),
        "failures": [],
    }  # fmt: skip
    text = render_markdown(data)
    assert "failed: UnsupportedOperator: aten::weird" in text


def _served(path: str, p50: float, cold: float, size: int) -> dict[str, Any]:
    cell = _cell(path, p50)
    latency = {"p50_s": p50, "ci_low_s": p50 * 0.99, "ci_high_s": p50 * 1.01}
    cell.update(latency={"1": latency}, cold_start={"median_s": cold}, size_bytes=size)
    return cell


def test_advice_follows_the_numbers() -> None:
    fast = _served("torch-onnx", 1e-5, cold=2.0, size=4096)
    slow = _served("jax-stablehlo", 3e-5, cold=0.5, size=1024)
    lines = advice({"cells": [fast, slow]})
    assert any("lowest latency at batch 1: torch-onnx" in line for line in lines)
    assert not any("within noise" in line for line in lines)
    assert any("quickest cold start: jax-stablehlo" in line for line in lines)
    assert any("smallest artefact: jax-stablehlo (1.0 KiB)" in line for line in lines)
    swapped = advice(
        {
            "cells": [
                _served("torch-onnx", 3e-5, 2.0, 4096),
                _served("jax-stablehlo", 1e-5, 0.5, 1024),
            ]
        }
    )
    assert any("lowest latency at batch 1: jax-stablehlo" in line for line in swapped)


def test_advice_warns_off_wrong_and_refused_artefacts() -> None:
    wrong = _served("torch-aoti", 1e-6, cold=0.1, size=10)
    wrong["fidelity_passed"] = False
    wrong["fidelity"]["1"].update(passed=False, max_abs=0.25)
    refused = {**_cell("jax-onnx", 1e-5), "size_bytes": None, "error": "ValueError: no plugin"}
    refused.update(latency={}, fidelity={}, fidelity_passed=None, cold_start=None)
    lines = advice({"cells": [wrong, refused, _served("jax-stablehlo", 2e-5, 0.5, 100)]})
    assert any(line.startswith("mlp: do not ship torch-aoti") and "0.25" in line for line in lines)
    assert any("jax-onnx cannot ship this model" in line and "no plugin" in line for line in lines)
    assert not any("lowest latency at batch 1: torch-aoti" in line for line in lines)


def test_without_a_cpp_compiler_the_aoti_cell_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    assert suite.cpp_compiler() is None
    settings = DeploySettings(size="tiny", out=tmp_path)
    cell = suite._export(settings, "mlp", "torch-aoti", tmp_path, no_progress)
    assert cell["status"] == "unavailable" and "C++ compiler" in cell["error"]
    (row,) = feature_table([cell])
    assert row["exported"].startswith("not available: no C++ compiler")
    assert any("torch-aoti is not available here" in line for line in advice({"cells": [cell]}))


def test_rows_name_a_failed_export_and_the_other_frameworks_check() -> None:
    served = {**_cell("torch-onnx", 1e-5), "runtime": "ONNX Runtime", "group": "onnx"}
    served["fidelity"] = {"1": {"passed": True, "max_abs": 3e-7, "max_rel": 1e-6}}
    refused = {
        **_cell("jax-onnx", 1e-5),
        "runtime": "ONNX Runtime",
        "group": "onnx",
        "status": "error",
        "error": "ValueError: no plugin for scan",
        "size_bytes": None,
        "fidelity": {},
        "latency": {},
        "cold_start": None,
    }
    comparison = {
        "workload": "mlp",
        "group": "onnx",
        "checks": {"1": {"passed": False, "max_abs": 0.5, "max_rel": 0.25}},
    }
    data = {"cells": [served, refused], "features": [], "comparisons": [comparison]}
    first, second = rows(data)
    assert (first["path"], first["batch_size"], first["exported"]) == ("torch-onnx", 1, True)
    assert (first["fidelity_max_abs"], first["matches_other_framework"]) == (3e-7, False)
    assert first["other_framework_max_abs"] == 0.5
    assert (second["exported"], second["error"]) == (False, "ValueError: no plugin for scan")
    assert second["latency_p50_s"] is None and second["cold_start_median_s"] is None
