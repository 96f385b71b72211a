"""A run's cells as CSV or JSON, for notebooks, spreadsheets and other tools.

CSV has one row per cell and one column per metric, laid out exactly as
``twinbench.load_results`` lays out its DataFrame (run_id, the cell key, status, error, then the
metrics, nested ones flattened as ``outer.inner``), with ``memory_budget.*`` columns more where
a cell was measured to confirm a ``--memory-budget`` prediction (`budget_confirmations`: the
budget, the predicted batch or sequence length, whether it was clipped, the outcome). A suite
run whose report view lays its result out as rows (`twinbench.suite.SuiteView.rows`) is written
as those rows instead, after run_id and kind: a suite stores its result with the run, not as
cells. JSON keeps everything: the run with its environment fingerprint, settings and extra info
(``memory_budget`` and ``memory_sequence_budget`` among it), every cell with its metrics and raw
samples, the parity results (loss curves included), the verdicts and the notes. JSON is strict: a
NaN or infinite value is written as null.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from twinbench.harness.memory import MEMORY_FIELDS
from twinbench.report.memory import budget_confirmations, is_memory
from twinbench.report.summary import RunSummary
from twinbench.store import KEY_COLUMNS, CellRecord, json_default, json_ready
from twinbench.suite import view_for

if TYPE_CHECKING:
    import pandas as pd

FORMAT_VERSION = 1
BASE_COLUMNS = ("run_id", *KEY_COLUMNS, "status", "error", "run_status")
SUITE_COLUMNS = ("run_id", "kind")

Exportable = RunSummary | Sequence[CellRecord]
Destination = str | Path | IO[str]


def _cells_and_run_id(data: Exportable) -> tuple[list[CellRecord], int | None]:
    if isinstance(data, RunSummary):
        return list(data.cells), data.run.id
    return list(data), None


def cells_frame(data: Exportable) -> pd.DataFrame:
    """One row per cell, every metric a column (``run_id`` is empty for bare cells)."""
    import pandas as pd

    cells, run_id = _cells_and_run_id(data)
    confirming = budget_confirmations(data.run.info) if isinstance(data, RunSummary) else {}
    rows = []
    for cell in cells:
        row: dict[str, Any] = {"run_id": run_id, "status": cell.status, "error": cell.error}
        row["run_status"] = data.run.status if isinstance(data, RunSummary) else None
        row.update({key: getattr(cell, key) for key in KEY_COLUMNS})
        for name, value in cell.metrics.items():
            row.setdefault(name, value)  # key columns win over metrics of the same name
        budget = confirming.get((cell.workload, cell.size, cell.phase, cell.mode))
        if budget is not None:  # a cell measured to confirm a --memory-budget prediction
            row["memory_budget"] = budget
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=list(BASE_COLUMNS))
    frame = pd.json_normalize(rows)
    return frame[list(BASE_COLUMNS) + [c for c in frame.columns if c not in BASE_COLUMNS]]


def suite_rows(summary: RunSummary) -> list[dict[str, Any]] | None:
    """A suite run's result as its view lays it out in rows; None for a run of cells or a
    suite whose view has no rows."""
    kind = str(summary.run.settings.get("kind") or "")
    if not kind:
        return None
    view, stored = view_for(kind), summary.run.info.get(kind)
    if view is None or view.rows is None or not isinstance(stored, dict):
        return None
    return view.rows(stored)


def suite_frame(summary: RunSummary, rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The suite's rows after run_id and kind, columns in the order they first appear."""
    import pandas as pd

    base = {"run_id": summary.run.id, "kind": summary.run.settings["kind"]}
    frame = pd.DataFrame([{**base, **row} for row in rows])
    return frame if rows else pd.DataFrame(columns=list(SUITE_COLUMNS))


def export_dict(data: Exportable) -> dict[str, Any]:
    """Everything about the run as plain JSON-ready data (raw samples included)."""
    cells, run_id = _cells_and_run_id(data)
    exported: dict[str, Any] = {"format": "twinbench-export", "version": FORMAT_VERSION}
    if isinstance(data, RunSummary):
        run = data.run
        exported["run"] = {
            "id": run.id,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "status": run.status,
            "environment": run.environment,
            "settings": run.settings,
            "info": run.info,
        }
    else:
        exported["run"] = None
    exported["cells"] = [
        {
            "run_id": run_id,
            **{key: getattr(cell, key) for key in KEY_COLUMNS},
            "status": cell.status,
            "error": cell.error,
            "metrics": cell.metrics,
            "samples": list(cell.samples),
        }
        for cell in cells
    ]
    if isinstance(data, RunSummary):
        exported["parity"] = data.parity
        exported["verdicts"] = [
            {
                "workload": v.workload,
                "size": v.size,
                "phase": v.phase,
                "comparison": v.comparison,
                "quantity": "attributable peak memory" if is_memory(v) else "time",
                "torch_mode": v.torch_mode,
                "jax_mode": v.jax_mode,
                "ratio_torch_over_jax": None if v.ratio is None else v.ratio.ratio,
                "ci_low": None if v.ratio is None else v.ratio.ci_low,
                "ci_high": None if v.ratio is None else v.ratio.ci_high,
                "significant": None if v.ratio is None else v.ratio.significant,
                "text": v.text,
            }
            for v in data.verdicts
        ]
        exported["notes"] = data.notes
    exported["memory_fields"] = MEMORY_FIELDS  # what each cell's memory figure is
    return exported


def json_text(value: Any) -> str:
    """Strict JSON (NaN and infinities become null), indented for people reading it."""
    return json.dumps(json_ready(value), indent=2, allow_nan=False, default=json_default)


def to_json(data: Exportable, path: Destination) -> Path | None:
    """Write ``export_dict(data)`` as JSON to a path, to ``"-"`` (stdout) or to an open file.

    Returns the path written, or None for a stream.
    """
    return _write(json_text(export_dict(data)) + "\n", path)


def to_csv(data: Exportable, path: Destination) -> Path | None:
    """Write ``cells_frame(data)`` — or, for a suite run with rows, ``suite_frame`` — as CSV to a
    path, to ``"-"`` (stdout) or to an open file."""
    if isinstance(data, RunSummary) and (rows := suite_rows(data)) is not None:
        return _write(suite_frame(data, rows).to_csv(index=False), path)
    return _write(cells_frame(data).to_csv(index=False), path)


def _write(text: str, path: Destination) -> Path | None:
    if isinstance(path, str | Path):
        if str(path) == "-":
            sys.stdout.write(text)
            return None
        target = Path(path)
        target.write_text(text, encoding="utf-8")
        return target
    path.write(text)
    return None
