"""Input checking, rendering and storage of the optimizer suite."""

from __future__ import annotations

import pytest

from twinbench.errors import TwinbenchError
from twinbench.optim_suite import make_problem, render_markdown, run_optim_suite, save
from twinbench.store import DB_NAME, ResultStore


@pytest.mark.parametrize(
    ("kwargs", "named", "valid"),
    [
        ({"problems": ["rosenbrok"]}, "rosenbrok", "linreg, logreg, rosenbrock"),
        ({"methods": ["newton_cg"]}, "newton_cg", "newton, bfgs, lbfgs"),
        ({"optimizers": ["rmsprop"]}, "rmsprop", "sgd, sgd_momentum, adam, adamw"),
        ({"workloads": ["resnet"]}, "resnet", "linreg, mlp, xor"),
        ({"dim": 0}, "0", None),
        ({"dim": -3}, "-3", None),
        ({"gtol": 0.0}, "0.0", None),
        ({"gtol": -1e-6}, "-1e-06", None),
        ({"size": "huge"}, "huge", "tiny, small, full"),
    ],
)
def test_bad_input_raises_one_line_naming_the_value(kwargs, named, valid):
    with pytest.raises(TwinbenchError) as info:
        run_optim_suite(**kwargs)
    message = str(info.value)
    assert "\n" not in message and named in message
    if valid:
        assert valid in message


def test_rosenbrock_needs_two_dimensions():
    with pytest.raises(TwinbenchError, match="rosenbrock.*>= 2, got 1"):
        make_problem("rosenbrock", 1)


def test_report_renders_and_is_stored(tmp_path):
    report = run_optim_suite(
        quick=True,
        problems=["linreg"],
        methods=["newton"],
        workloads=["xor"],
        optimizers=["adamw"],
        steps=20,
    )
    text = render_markdown(report)
    assert "| xor (tiny) | adamw | 20 | agree |" in text
    assert "linreg (d=8) | newton | jax | converged" in text
    run_id = save(report, tmp_path)
    with ResultStore(tmp_path / DB_NAME) as store:
        run = store.run(run_id)
    assert run.status == "finished" and run.settings["kind"] == "optim"
    assert run.info["optim"]["second_order"][1]["framework"] == "jax"
