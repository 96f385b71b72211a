"""What a parallel run found: one `CellResult` per launch, gathered in a `ParallelReport` (a
`twinbench.suite.SuiteResult`). Imports no framework."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from twinbench.parallel.scaling import scaling_rows
from twinbench.store import json_ready


@dataclass
class CellResult:
    """One launch: what it was, how it ended, its parity checks and its timing."""

    framework: str
    impl: str
    strategy: str
    devices: int
    global_batch: int
    scalings: list[str]
    status: str = "ok"
    error: str | None = None
    processes: int | None = None
    platform: str | None = None
    param_specs: dict[str, str] = field(default_factory=dict)
    parity: list[dict[str, Any]] = field(default_factory=list)
    timing: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        """The cell as its progress line and its errors name it."""
        return f"{self.framework}/{self.impl} {self.strategy} N={self.devices}"


@dataclass
class ParallelReport:
    """Everything one ``twinbench parallel`` found: a `twinbench.suite.SuiteResult`."""

    kind: ClassVar[str] = "parallel"

    settings: dict[str, Any]
    simulated: bool
    cores: int
    cells: list[CellResult] = field(default_factory=list)
    cross: list[dict[str, Any]] = field(default_factory=list)

    @property
    def settings_dict(self) -> dict[str, Any]:
        """The flat settings stored with the run (the nested multi-node ones and the tests'
        fault hook stay in `to_dict`)."""
        flat = {k: v for k, v in self.settings.items() if not isinstance(v, dict) and k != "fault"}
        return dict(json_ready(flat))

    @property
    def failures(self) -> list[CellResult]:
        """The cells that ended without a result (a cell run on another node is not one)."""
        return [c for c in self.cells if c.status not in ("ok", "skipped")]

    @property
    def parity_passed(self) -> bool:
        """N devices against one, in each framework (the cross-framework rows only inform:
        judging the twins is ``twinbench parity``'s job)."""
        return all(p["passed"] for c in self.cells for p in c.parity)

    @property
    def failed(self) -> bool:
        """True when a cell failed or N devices did not match one device."""
        return bool(self.failures) or not self.parity_passed

    def scaling(self) -> list[dict[str, Any]]:
        """The scaling table's rows (see `scaling_rows`)."""
        return scaling_rows(self.cells)

    def to_dict(self) -> dict[str, Any]:
        """Settings, cells, cross-framework checks and scaling rows, JSON-ready."""
        data = {
            "settings": self.settings,
            "simulated": self.simulated,
            "cores": self.cores,
            "cells": [asdict(c) for c in self.cells],
            "cross": self.cross,
            "scaling": self.scaling(),
        }
        return dict(json_ready(data))
