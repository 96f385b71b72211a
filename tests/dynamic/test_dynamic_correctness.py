"""A strategy's losses against torch-eager's: strict over the first steps, then within a drift
bound, since rounding moves a long schedule apart even when every step is right."""

from __future__ import annotations

import numpy as np

from twinbench.dynamic.suite import CURVE_STEPS, DRIFT_RTOL, _correctness

REFERENCE = {"loss": list(np.linspace(9.0, 8.7, 100))}


def _judged(losses: np.ndarray) -> dict[str, object]:
    return _correctness("torch-compile", REFERENCE, {"loss": list(losses)})


def test_rounding_drift_late_in_a_long_schedule_passes() -> None:
    ref = np.asarray(REFERENCE["loss"])
    drift = np.where(np.arange(100) < CURVE_STEPS, 0.0, 4e-3)  # 0.4 % after step 20
    judged = _judged(ref * (1 + drift))
    assert judged["passed"] is True
    assert "later steps within 1%" in str(judged["detail"])


def test_a_difference_in_the_first_steps_fails_at_the_curve_tolerance() -> None:
    losses = np.asarray(REFERENCE["loss"]).copy()
    losses[3] *= 1 + 1e-3  # far past float32 rounding at step 3, far inside the drift bound
    judged = _judged(losses)
    assert judged["passed"] is False and judged["first_bad_step"] == 3
    assert "torch-eager" in str(judged["detail"]) and "torch-compile" in str(judged["detail"])


def test_a_later_step_past_the_drift_bound_fails_and_is_named() -> None:
    losses = np.asarray(REFERENCE["loss"]).copy()
    losses[60] *= 1 + 2 * DRIFT_RTOL
    judged = _judged(losses)
    assert judged["passed"] is False and judged["first_bad_step"] == 60
    assert "step 60 drifts past 1%" in str(judged["detail"])


def test_a_schedule_no_longer_than_the_window_is_compared_strictly_throughout() -> None:
    short = {"loss": REFERENCE["loss"][:CURVE_STEPS]}
    losses = np.asarray(short["loss"]) * (1 + 4e-3)
    judged = _correctness("torch-compile", short, {"loss": list(losses)})
    assert judged["passed"] is False
