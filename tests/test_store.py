import dataclasses
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import cell
from twinbench import store as store_module
from twinbench.store import DB_NAME, CellRecord, ResultStore, StoreError, load_results


def _cell(framework: str = "torch", **overrides: Any) -> CellRecord:
    fields: dict[str, Any] = {
        "size": "S",
        "framework": framework,
        "metrics": {"median_s": 0.0125, "n_samples": 3, "noisy": False},
        "samples": [0.0125, 0.0131, 0.0119],
        "error": None,
        **overrides,
    }
    return cell("compiled", **fields)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "results" / DB_NAME


def test_round_trip(db_path: Path) -> None:
    ok = _cell(metrics={"median_s": np.float64(0.0125), "n_samples": np.int64(3), "noisy": True})
    failed = _cell("jax", status="error", error="XlaRuntimeError: out of memory", samples=[])
    with ResultStore(db_path) as store:
        run_id = store.start_run(
            environment={"python": "3.11.7", "gpu": None}, settings={"sizes": ["S"], "seed": 0}
        )
        store.set_run_info(run_id, "peak_flops", 1.5e12)
        ok_id = store.record_cell(run_id, ok)
        failed_id = store.record_cell(run_id, failed)
        store.record_parity(
            run_id, workload="mlp", size="S", passed=True, summary={"max_abs_diff": 1e-7}
        )

        running = store.run(run_id)
        assert running.status == "running"
        assert running.finished_at is None
        store.finish_run(run_id, status="finished")

        run = store.run(run_id)
        assert run.id == run_id
        assert run.status == "finished"
        assert run.environment == {"python": "3.11.7", "gpu": None}
        assert run.settings == {"sizes": ["S"], "seed": 0}
        assert run.info == {"peak_flops": 1.5e12}
        assert datetime.fromisoformat(run.started_at).utcoffset() is not None
        assert run.finished_at is not None
        assert datetime.fromisoformat(run.finished_at) >= datetime.fromisoformat(run.started_at)
        assert store.runs() == [run]
        assert store.latest_run_id() == run_id

        expected_ok = dataclasses.replace(
            ok, id=ok_id, metrics={"median_s": 0.0125, "n_samples": 3, "noisy": True}
        )
        assert store.cells(run_id) == [expected_ok, dataclasses.replace(failed, id=failed_id)]
        assert store.parity(run_id) == [
            {"workload": "mlp", "size": "S", "passed": True, "summary": {"max_abs_diff": 1e-7}}
        ]


def test_results_persist_after_reopen(db_path: Path) -> None:
    with ResultStore(db_path) as store:
        run_id = store.start_run(environment={}, settings={})
        store.record_cell(run_id, _cell())
        store.set_run_info(run_id, "note", "first")
        store.set_run_info(run_id, "note", "replaced")
    with ResultStore(db_path) as store:
        assert store.latest_run_id() == run_id
        assert store.run(run_id).info == {"note": "replaced"}
        [cell] = store.cells(run_id)
        assert cell.samples == [0.0125, 0.0131, 0.0119]


def test_wal_mode(db_path: Path) -> None:
    with ResultStore(db_path):
        conn = sqlite3.connect(db_path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()


def test_cell_is_committed_before_the_run_finishes(db_path: Path) -> None:
    with ResultStore(db_path) as store:
        run_id = store.start_run(environment={}, settings={})
        store.record_cell(run_id, _cell())
        other = sqlite3.connect(db_path)
        assert other.execute("SELECT count(*) FROM cells").fetchone()[0] == 1
        assert other.execute("SELECT count(*) FROM samples").fetchone()[0] == 3
        other.close()
        with ResultStore(db_path) as reader:
            assert reader.run(run_id).status == "running"
            assert len(reader.cells(run_id)) == 1


def test_load_results(db_path: Path) -> None:
    with ResultStore(db_path) as store:
        first = store.start_run(environment={}, settings={})
        store.record_cell(first, _cell("torch"))
        store.record_cell(
            first, _cell("jax", metrics={"median_s": 0.01, "memory": {"peak_bytes": 2048}})
        )
        second = store.start_run(environment={}, settings={})
        store.record_cell(second, _cell("torch", status="timeout", metrics={}, samples=[]))

    df = load_results(db_path.parent)  # the directory works as well as the file
    assert len(df) == 3
    assert list(df.columns[:10]) == [
        "run_id", "workload", "size", "framework", "mode", "phase", "dtype", "device",
        "status", "error",
    ]  # fmt: skip
    assert {"median_s", "n_samples", "noisy", "memory.peak_bytes"} <= set(df.columns)
    assert df["run_id"].tolist() == [first, first, second]
    assert df["framework"].tolist() == ["torch", "jax", "torch"]
    assert df["median_s"].tolist()[:2] == [0.0125, 0.01]
    assert np.isnan(df["median_s"].iloc[2])
    assert df["memory.peak_bytes"].iloc[1] == 2048

    only_second = load_results(db_path, run_id=second)
    assert only_second["status"].tolist() == ["timeout"]


def test_load_results_without_database_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no twinbench results"):
        load_results(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_garbage_file_is_rejected_and_left_untouched(db_path: Path) -> None:
    db_path.parent.mkdir()
    garbage = bytes(range(256)) * 40
    db_path.write_bytes(garbage)
    with pytest.raises(StoreError, match="left untouched") as excinfo:
        ResultStore(db_path)
    assert str(db_path) in str(excinfo.value)
    assert db_path.read_bytes() == garbage


def test_corrupted_database_is_rejected_and_left_untouched(db_path: Path) -> None:
    with ResultStore(db_path) as store:
        run_id = store.start_run(environment={}, settings={})
        for _ in range(20):
            store.record_cell(run_id, _cell(samples=[0.1] * 500))
    damaged = bytearray(db_path.read_bytes())
    damaged[3 * 4096 : 4 * 4096] = b"\xff" * 4096  # wipe a page in the middle of the file
    db_path.write_bytes(bytes(damaged))
    with pytest.raises(StoreError, match="left untouched"):
        ResultStore(db_path)
    assert db_path.read_bytes() == bytes(damaged)


def test_other_sqlite_database_is_left_untouched(db_path: Path) -> None:
    db_path.parent.mkdir()
    conn = sqlite3.connect(db_path)
    conn.execute("CREATE TABLE unrelated (x INTEGER)")
    conn.commit()
    conn.close()
    before = db_path.read_bytes()
    with pytest.raises(StoreError, match="not a twinbench results database"):
        ResultStore(db_path)
    assert db_path.read_bytes() == before


def test_newer_schema_is_refused(db_path: Path) -> None:
    ResultStore(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=r"newer twinbench \(schema 99"):
        ResultStore(db_path)


def test_older_schema_is_migrated(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ResultStore(db_path).close()

    def add_notes(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE notes (text TEXT)")

    current = store_module.SCHEMA_VERSION
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", current + 1)
    monkeypatch.setattr(store_module, "MIGRATIONS", {current: add_notes})
    ResultStore(db_path).close()
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT value FROM meta").fetchone()[0] == str(current + 1)
    assert conn.execute("SELECT count(*) FROM notes").fetchone()[0] == 0
    conn.close()


def test_unwritable_location(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot write results to"):
        ResultStore(blocker / "sub" / DB_NAME)


def test_unknown_run_lists_valid_ids(db_path: Path) -> None:
    with ResultStore(db_path) as store:
        with pytest.raises(StoreError, match="holds no runs yet"):
            store.run(1)
        for _ in range(3):
            store.start_run(environment={}, settings={})
        with pytest.raises(StoreError, match=r"no run 7 in .*; runs: 1\.\.3$"):
            store.run(7)
        with pytest.raises(StoreError, match="no run 7"):
            store.cells(7)
        with pytest.raises(StoreError, match="no run 7"):
            store.record_cell(7, _cell())


def test_invalid_statuses_are_rejected(db_path: Path) -> None:
    with ResultStore(db_path) as store:
        run_id = store.start_run(environment={}, settings={})
        with pytest.raises(ValueError):
            store.record_cell(run_id, _cell(status="great"))
        with pytest.raises(ValueError):
            store.finish_run(run_id, status="running")
        assert store.cells(run_id) == []
