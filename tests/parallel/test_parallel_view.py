"""The report's view of a stored parallel run: registered by kind, rendered from the stored dict
alone, old runs (stored before the step time had a CI) included."""

from twinbench.suite import view_for

CELL = {"framework": "torch", "impl": "ddp", "strategy": "dp", "devices": 2, "global_batch": 32,
        "status": "ok", "error": None,
        "parity": [{"optimizer": "sgd", "max_abs": 1e-8, "max_rel": 1e-6, "floor": 2e-8,
                    "passed": True, "detail": ""}]}  # fmt: skip
ROW = {"framework": "torch", "impl": "ddp", "strategy": "dp", "scaling": "strong", "devices": 2,
       "global_batch": 32, "per_device_batch": 16, "step_s": 0.002, "iqr_s": 0.0001,
       "throughput": 16000.0, "speedup": 1.6, "efficiency": 0.8, "comm_share": 0.25}  # fmt: skip


def stored(row):
    return {"settings": {"workload": "mlp", "size": "tiny", "parity_steps": 5}, "simulated": True,
            "cores": 2, "cells": [CELL], "cross": [], "scaling": [row]}  # fmt: skip


def test_the_view_renders_the_ci_beside_the_median():
    view = view_for("parallel")
    assert view is not None and view.title == "The parallel suite"
    row = {**ROW, "step_ci_low_s": 0.0019, "step_ci_high_s": 0.0021}
    markdown = view.markdown(stored(row))
    assert "| torch/ddp | dp | strong | 2 | 32 | 16 | 2 ms | 1.9 ms–2.1 ms |" in markdown
    assert "simulated" in markdown and "| pass |" in markdown


def test_a_run_stored_before_the_ci_still_renders_and_draws():
    view = view_for("parallel")
    assert view is not None and view.figures is not None
    assert "| 2 ms | — | 100 µs |" in view.markdown(stored(ROW))
    assert [name for name, _ in view.figures(stored(ROW))] == ["scaling"]
