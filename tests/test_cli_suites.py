"""`twinbench optim` and `twinbench autodiff` from the command line: stored runs, clear errors.

The commands run in this process through the console script's ``main`` (``cli``): exit codes
and stderr as a shell sees them, without a fresh interpreter's seconds of imports per call (the
real entry point is tests/test_cli_core.py's subject); the suites' workers are still processes.
"""

import pytest

from twinbench.store import DB_NAME, ResultStore


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["optim", "--problem", "himmelblau"], "himmelblau"),
        (["optim", "--method", "adagrad"], "adagrad"),
        (["optim", "--dim", "0"], "0"),
        (["optim", "--gtol", "-1"], "-1"),
        (["autodiff", "--function", "sphere"], "sphere"),
        (["autodiff", "--transform", "gradd"], "gradd"),
        (["autodiff", "--dim", "-3"], "-3"),
        (["autodiff", "--batch-sizes", "0"], "0"),
    ],
)
def test_bad_suite_options_give_one_line_and_exit_2(cli, tmp_path, args, named):
    done = cli(*args, "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert named in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out" / DB_NAME).exists()


def test_optim_newton_run_is_stored_and_reported(cli, tmp_path):
    out = tmp_path / "out"
    done = cli("optim", "--quick", "--no-first-order", "--problem", "linreg", "--method",
                     "newton", "--out", str(out))
    assert done.returncode == 0, done.stderr
    # captured, stderr is no terminal: each progress message is a line of its own there
    assert "second order: linreg (d=" in done.stderr and "newton [jax]" in done.stderr
    with ResultStore(out / DB_NAME) as store:
        run = store.run(store.latest_run_id())
    assert run.settings["kind"] == "optim"
    rows = run.info["optim"]["second_order"]
    assert {(r["framework"], r["iterations"]) for r in rows} == {("torch", 1), ("jax", 1)}
    report = cli("report", "--results", str(out))
    assert report.returncode == 0, report.stderr
    markdown = (out / f"report-run{run.id}.md").read_text()
    assert "## The optim suite" in markdown and "| linreg" in markdown


def test_autodiff_quick_grad_is_stored_with_its_checks(cli, tmp_path):
    out = tmp_path / "out"
    done = cli("autodiff", "--quick", "--function", "rosenbrock", "--transform", "grad",
                     "--batch-sizes", "2", "--no-memory", "--mode", "eager", "--out", str(out))
    assert done.returncode == 0, done.stderr
    with ResultStore(out / DB_NAME) as store:
        run = store.run(store.latest_run_id())
    assert run.settings["kind"] == "autodiff"
    checks = run.info["autodiff"]["checks"]
    assert {c["framework"] for c in checks} == {"torch", "jax"}
    assert all(c["status"] == "pass" and c["rel_err_fd"] < c["tol_fd"] for c in checks)
    assert "rosenbrock grad" in run.info["suite_report"]


def test_ctrl_c_in_a_suite_that_keeps_nothing_says_so_and_exits_130(cli, tmp_path, monkeypatch):
    import twinbench.optim_suite

    def interrupted(settings, progress):
        raise KeyboardInterrupt

    monkeypatch.setattr(twinbench.optim_suite, "run_optim", interrupted)
    out = tmp_path / "out"
    result = cli("optim", "--no-first-order", "--problem", "linreg", "--out", out)
    assert result.returncode == 130, result.stderr
    assert "interrupted (SIGINT): this suite keeps nothing of a partial run" in result.stderr
    assert "Traceback" not in result.stderr and not (out / DB_NAME).exists()
