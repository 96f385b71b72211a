"""Input checking, rendering and storage of the optimizer suite."""

from __future__ import annotations

import pytest

from twinbench.errors import TwinbenchError
from twinbench.optim_suite import OptimSettings, make_problem, render_markdown, run_optim
from twinbench.store import DB_NAME, ResultStore
from twinbench.suite import record, view_for


@pytest.mark.parametrize(
    ("kwargs", "named", "valid"),
    [
        ({"problems": ("rosenbrok",)}, "rosenbrok", "linreg, logreg, rosenbrock"),
        ({"methods": ("newton_cg",)}, "newton_cg", "newton, bfgs, lbfgs"),
        ({"optimizers": ("rmsprop",)}, "rmsprop", "sgd, sgd_momentum, adam, adamw"),
        ({"workloads": ("resnet",)}, "resnet", "linreg, mlp, xor"),
        ({"size": "huge"}, "huge", "tiny, small, full"),
        ({"dim": 0}, "dimension 0", "> 0"),
        ({"dim": -3}, "dimension -3", "> 0"),
        ({"dim": 1, "problems": ("rosenbrock",)}, "got 1", ">= 2"),
        ({"gtol": 0.0}, "0.0", "> 0"),
        ({"gtol": -1e-6}, "-1e-06", "> 0"),
        ({"gtol": float("inf")}, "inf", "finite"),
        ({"max_iter": 0}, "max_iter 0", "integer > 0"),
        ({"repeats": 2.5}, "repeats 2.5", "integer > 0"),
        ({"steps": -1}, "steps -1", "integer > 0"),
    ],
)
def test_bad_setting_raises_one_line_naming_the_value(kwargs, named, valid):
    with pytest.raises(TwinbenchError) as info:
        OptimSettings(**kwargs).validate()
    message = str(info.value)
    assert "\n" not in message and named in message and valid in message


def test_rosenbrock_needs_two_dimensions():
    with pytest.raises(TwinbenchError, match="rosenbrock.*>= 2, got 1"):
        make_problem("rosenbrock", 1)


def test_report_renders_and_is_stored(tmp_path):
    settings = OptimSettings(
        quick=True,
        problems=("linreg",),
        methods=("newton",),
        workloads=("xor",),
        optimizers=("adamw",),
        steps=20,
    )
    report = run_optim(settings)
    text = render_markdown(report.to_dict())
    assert "| xor (tiny) | adamw | 20 | agree |" in text
    assert "linreg (d=8) | newton | jax | converged" in text
    run_id = record(report, tmp_path)
    with ResultStore(tmp_path / DB_NAME) as store:
        run = store.run(run_id)
    assert run.status == "finished" and run.settings["kind"] == "optim"
    assert run.info["optim"]["second_order"][1]["framework"] == "jax"


def test_view_renders_a_run_stored_before_wall_times_had_a_ci():
    old = {
        "settings": {**OptimSettings().to_dict(), "timing": "median of `repeats` calls"},
        "first_order": [],
        "second_order": [
            {
                "problem": "linreg", "dim": 8, "method": "newton", "framework": "torch",
                "implementation": "torch", "status": "converged", "iterations": 1,
                "function_evals": 2, "hessian_evals": 2, "final_objective": 0.5,
                "grad_norm": 1e-12, "wall_s": 0.002, "wall_samples": [0.002],
                "first_call_s": 0.01, "distance_other": 0.0, "distance_reference": 1e-13,
                "reference_kind": "numpy lstsq", "note": "", "x": [0.0] * 8,
            }
        ],
    }  # fmt: skip
    view = view_for("optim")
    assert view is not None and view.title
    assert "| linreg (d=8) | newton | torch | converged | 1 | 2 | 2 | 10 |" in view.markdown(old)
