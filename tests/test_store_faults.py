"""Faults in results databases: empty files, read-only media, malformed rows, old schemas and
runs whose process died."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import Result, add_run, assert_one_line_error, cell
from twinbench.store import DB_NAME, ResultStore, load_results

Cli = Callable[..., Result]


def _ok_cell(mode: str, workload: str = "mlp") -> object:
    one = cell(mode, [0.01, 0.011, 0.012], workload=workload)
    one.metrics.update(time_to_first_step_s=0.5, converged=True)
    return one


def test_report_refuses_an_empty_database_file_and_leaves_it_empty(
    cli: Cli, tmp_path: Path
) -> None:
    db = tmp_path / DB_NAME
    db.touch()
    assert_one_line_error(
        cli("report", "--results", tmp_path), "is empty, not a twinbench database"
    )
    assert_one_line_error(cli("compare", "1", "2", "--results", tmp_path), "is empty")
    assert db.read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == [DB_NAME]


def test_a_malformed_metrics_row_is_named_and_the_other_cells_reported(
    cli: Cli, tmp_path: Path
) -> None:
    add_run(tmp_path, [_ok_cell("torch-eager"), _ok_cell("jax-jit")])
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.execute("UPDATE cells SET metrics_json = '{not json' WHERE id = 2")
    result = cli("report", "--results", tmp_path, "--format", "md", columns=250)
    assert result.returncode == 0, result.stdout + result.stderr
    markdown = (tmp_path / "report-run1.md").read_text()
    assert "stored metrics unreadable (cells row id 2)" in markdown
    assert "| 11 |" in markdown  # the torch-eager cell's median, in ms
    frame = load_results(tmp_path)
    assert frame["status"].tolist() == ["ok", "error"]


def test_a_cell_missing_a_metric_is_an_error_row(cli: Cli, tmp_path: Path) -> None:
    add_run(tmp_path, [_ok_cell("torch-eager"), cell("jax-jit", [0.01, 0.02])])
    result = cli("report", "--results", tmp_path, "--format", "terminal", columns=250)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stored metrics unreadable (cells row id 2)" in result.stdout


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs folder that can be remounted read-only (needs root; skipped otherwise)."""
    folder = tmp_path / "media"
    folder.mkdir()
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "none", str(folder)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


def test_a_database_on_read_only_media_is_reported(cli: Cli, read_only_mount: Path) -> None:
    add_run(read_only_mount, [_ok_cell("torch-eager"), _ok_cell("jax-jit")])
    add_run(read_only_mount, [_ok_cell("torch-eager"), _ok_cell("jax-jit")])
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_mount)], check=True)
    result = cli("report", "--results", read_only_mount, "--format", "terminal", columns=250)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "twinbench run 2" in result.stdout
    result = cli("compare", "1", "2", "--results", read_only_mount, columns=250)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(load_results(read_only_mount)) == 4


def test_runs_record_their_process_and_a_dead_one_is_abandoned(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / DB_NAME
    with ResultStore(db) as store:
        alive = store.start_run(environment={}, settings={})
    code = (
        "import os, sys; from twinbench.store import ResultStore; "
        "s = ResultStore(sys.argv[1]); s.start_run(environment={}, settings={}); print(os.getpid())"
    )
    pid = int(
        subprocess.run(
            [sys.executable, "-c", code, str(db)], capture_output=True, text=True, check=True
        ).stdout
    )
    with ResultStore(db, read_only=True) as store:
        mine, dead = store.run(alive), store.run(alive + 1)
    assert (mine.status, dead.status) == ("running", "abandoned")
    assert (dead.pid, dead.host) == (pid, socket.gethostname())
    result = cli("report", "--results", tmp_path, "--format", "terminal")
    assert "(abandoned)" in result.stdout
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO cells (run_id, workload, size, framework, mode, phase, dtype,"
            " device, status, metrics_json, recorded_at) VALUES (2, 'mlp', 'tiny',"
            " 'torch', 'torch-eager', 'train', 'float32', 'cpu', 'ok', '{}', 'now')"
        )
    assert load_results(db)["run_status"].tolist() == ["abandoned"]


def _schema_1_database(db: Path) -> None:
    """A database as twinbench wrote it before runs recorded their process."""
    with ResultStore(db) as store:
        store.start_run(environment={}, settings={})
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE runs DROP COLUMN pid")
        conn.execute("ALTER TABLE runs DROP COLUMN host")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")


def test_a_schema_1_database_is_read_and_upgraded(tmp_path: Path) -> None:
    db = tmp_path / DB_NAME
    _schema_1_database(db)
    before = db.read_bytes()
    with ResultStore(db, read_only=True) as store:  # reading does not upgrade
        assert store.run(1).pid is None
    assert db.read_bytes() == before
    with ResultStore(db) as store:
        assert store.run(store.start_run(environment={}, settings={})).pid is not None
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT value FROM meta").fetchone()[0] == "2"
