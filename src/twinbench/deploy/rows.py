"""A stored deploy run as one flat table, for CSV: one row per workload, path and batch size.

Every measured figure is a column named with what it is and its unit: the export (done or the
error, time, size), the cold start (median over the serving processes with its CI, and its
parts), the single-call latency at that batch size (p50 with its CI, p95, p99, throughput) and
the fidelity there (against the eager twin and against the other framework's artefact). The
per-cell columns repeat on each of a cell's batch sizes, so every row reads on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Row = Mapping[str, Any]


def rows(data: Row) -> list[dict[str, Any]]:
    """The run's table: one dict per workload × path × batch size, in the run's order."""
    features = {(f["workload"], f["path"]): f for f in data["features"]}
    others = {(c["workload"], c["group"]): c["checks"] for c in data["comparisons"]}
    table = []
    for cell in data["cells"]:
        feature = features.get((cell["workload"], cell["path"]), {})
        other = others.get((cell["workload"], cell["group"]), {})
        for batch in cell.get("batch_sizes") or [None]:
            table.append({**_cell_columns(cell, feature), **_batch_columns(cell, other, batch)})
    return table


def _cell_columns(cell: Row, feature: Row) -> dict[str, Any]:
    cold = cell.get("cold_start") or {}
    return {
        "workload": cell["workload"],
        "path": cell["path"],
        "framework": cell["framework"],
        "runtime": cell["runtime"],
        "status": cell["status"],
        "exported": cell.get("size_bytes") is not None,
        "error": cell["error"],
        "dynamic_batch": feature.get("dynamic_batch"),
        "symbolic_batch_error": cell.get("dynamic_error"),
        "export_s": cell.get("export_s"),
        "exporter_setup_s": (cell.get("phases") or {}).get("setup_s"),
        "artefact_bytes": cell.get("size_bytes"),
        "device": cell.get("device"),
        "serving_processes": len(cell.get("serve_pids") or []),
        "cold_start_median_s": cold.get("median_s"),
        "cold_start_ci_low_s": cold.get("ci_low_s"),
        "cold_start_ci_high_s": cold.get("ci_high_s"),
        "cold_start_import_median_s": cold.get("median_import_s"),
        "cold_start_load_median_s": cold.get("median_load_s"),
        "cold_start_first_call_median_s": cold.get("median_first_call_s"),
    }


def _batch_columns(cell: Row, other: Row, batch: int | None) -> dict[str, Any]:
    key = str(batch)
    latency = (cell.get("latency") or {}).get(key, {})
    check = (cell.get("fidelity") or {}).get(key, {})
    matched = other.get(key, {})
    return {
        "batch_size": batch,
        "latency_p50_s": latency.get("p50_s"),
        "latency_p50_ci_low_s": latency.get("ci_low_s"),
        "latency_p50_ci_high_s": latency.get("ci_high_s"),
        "latency_p95_s": latency.get("p95_s"),
        "latency_p99_s": latency.get("p99_s"),
        "latency_calls": latency.get("n"),
        "throughput_rows_per_s": latency.get("throughput_per_s"),
        "fidelity_passed": check.get("passed"),
        "fidelity_max_abs": check.get("max_abs"),
        "fidelity_max_rel": check.get("max_rel"),
        "fidelity_atol": check.get("atol"),
        "fidelity_rtol": check.get("rtol"),
        "matches_other_framework": matched.get("passed"),
        "other_framework_max_abs": matched.get("max_abs"),
        "other_framework_max_rel": matched.get("max_rel"),
    }
