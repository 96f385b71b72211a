"""SQLite results store: runs, cells with their raw samples, and parity checks.

Raw per-step samples are kept so any statistic can be recomputed later. Each write is its
own committed transaction, so an interrupted run loses at most the cell being measured.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinbench.errors import TwinbenchError

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 2
DEFAULT_DIR = Path("twinbench-results")
DB_NAME = "results.sqlite"

FINAL_RUN_STATUSES = ("finished", "interrupted", "failed")
# A run still 'running' whose process is gone from this host: it will never finish.
ABANDONED = "abandoned"
CELL_STATUSES = ("ok", "error", "crashed", "timeout", "skipped")
KEY_COLUMNS = ("workload", "size", "framework", "mode", "phase", "dtype", "device")

# IF NOT EXISTS: two processes may race to create the same new database.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        environment_json TEXT NOT NULL,
        settings_json TEXT NOT NULL,
        pid INTEGER,
        host TEXT)""",
    """CREATE TABLE IF NOT EXISTS run_info (
        run_id INTEGER NOT NULL REFERENCES runs (id),
        key TEXT NOT NULL,
        value_json TEXT NOT NULL,
        PRIMARY KEY (run_id, key))""",
    """CREATE TABLE IF NOT EXISTS cells (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES runs (id),
        workload TEXT NOT NULL,
        size TEXT NOT NULL,
        framework TEXT NOT NULL,
        mode TEXT NOT NULL,
        phase TEXT NOT NULL,
        dtype TEXT NOT NULL,
        device TEXT NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        metrics_json TEXT NOT NULL,
        recorded_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS cells_run ON cells (run_id)",
    """CREATE INDEX IF NOT EXISTS cells_key
        ON cells (workload, size, framework, mode, phase, dtype, device)""",
    """CREATE TABLE IF NOT EXISTS samples (
        cell_id INTEGER NOT NULL REFERENCES cells (id),
        idx INTEGER NOT NULL,
        seconds REAL NOT NULL,
        PRIMARY KEY (cell_id, idx)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS parity (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES runs (id),
        workload TEXT NOT NULL,
        size TEXT NOT NULL,
        passed INTEGER NOT NULL,
        summary_json TEXT NOT NULL)""",
)


def _add_run_process(conn: sqlite3.Connection) -> None:
    """Schema 2: each run records the pid and host of the process that runs it."""
    conn.execute("ALTER TABLE runs ADD COLUMN pid INTEGER")
    conn.execute("ALTER TABLE runs ADD COLUMN host TEXT")


# MIGRATIONS[v] upgrades a database from schema v to v + 1 inside a transaction.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _add_run_process}


class StoreError(TwinbenchError):
    """The results database cannot be opened, read or written."""


@dataclass
class CellKey:
    """What names a cell: within a run no two cells share all seven, and `compare` matches the
    cells of two runs by them (the columns of ``KEY_COLUMNS``)."""

    workload: str
    size: str
    framework: str
    mode: str
    phase: str
    dtype: str
    device: str

    def key_fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in KEY_COLUMNS}


@dataclass
class CellRecord(CellKey):
    """One measured (workload, size, framework, mode, phase, dtype, device) combination."""

    status: str
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    samples: list[float] = field(default_factory=list)
    id: int | None = None

    def sample_groups(self) -> list[list[float]]:
        """The samples split by the worker process that measured them, in process order.

        A cell stored before cells were measured in several processes is one group.
        """
        counts = self.metrics.get("process_sample_counts")
        if not counts or sum(counts) != len(self.samples):
            return [list(self.samples)]
        groups, start = [], 0
        for count in counts:
            groups.append(list(self.samples[start : start + count]))
            start += count
        return groups


@dataclass
class RunRecord:
    """One invocation of the benchmark, with its environment, settings and extra info."""

    id: int
    started_at: str
    finished_at: str | None
    status: str
    environment: dict[str, Any]
    settings: dict[str, Any]
    info: dict[str, Any]
    pid: int | None = None  # of the process that ran it (None before schema 2)
    host: str | None = None


class ResultStore:
    """A twinbench results database, created on first use and never overwritten."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """Open or create the database at path, upgrading older schemas.

        Raises StoreError if the location is unwritable, the file is not a healthy twinbench
        database (it is then left untouched), or it was written by a newer twinbench.
        ``read_only`` (reports, comparisons) opens an existing database without writing to it,
        also on read-only media, and neither creates nor upgrades one.
        """
        self.path = Path(path)
        if read_only:
            self._open_read_only()
            return
        version = _inspect_existing(self.path) if self.path.exists() else None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot write results to {self.path}: {exc}") from exc
        self._conn.row_factory = sqlite3.Row
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            if version is None:
                self._create_schema()
            else:
                self._migrate(version)
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"cannot write results to {self.path}: {exc}") from exc
        except BaseException:
            self._conn.close()
            raise

    def _open_read_only(self) -> None:
        if not self.path.is_file():
            raise StoreError(f"no twinbench results database at {self.path}")
        if self.path.stat().st_size == 0:
            raise StoreError(
                f"{self.path} is empty, not a twinbench database; it was left untouched"
            )
        if _inspect_existing(self.path) is None:
            raise StoreError(f"{self.path} holds no tables, not a twinbench database")
        self._conn = _connect_read_only(self.path)
        self._conn.row_factory = sqlite3.Row

    def close(self) -> None:
        """Close the database connection (safe to call twice)."""
        self._conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write results to {self.path}: {exc}") from exc

    def _create_schema(self) -> None:
        with self._transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    def _migrate(self, version: int) -> None:
        for from_version in range(version, SCHEMA_VERSION):
            step = MIGRATIONS.get(from_version)
            if step is None:
                raise StoreError(
                    f"{self.path} has schema {version}, which this twinbench cannot upgrade"
                )
            with self._transaction() as conn:
                step(conn)
                conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'",
                    (str(from_version + 1),),
                )

    def _require_run(self, run_id: int) -> None:
        if self._conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            ids = [row[0] for row in self._conn.execute("SELECT id FROM runs ORDER BY id")]
            known = f"runs: {_format_ids(ids)}" if ids else "it holds no runs yet"
            raise StoreError(f"no run {run_id} in {self.path}; {known}")

    def start_run(self, *, environment: dict[str, Any], settings: dict[str, Any]) -> int:
        """Record a new run with status 'running' and return its id."""
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO runs (started_at, status, environment_json, settings_json, pid, host)"
                " VALUES (?, 'running', ?, ?, ?, ?)",
                (_now(), _dumps(environment), _dumps(settings), os.getpid(), socket.gethostname()),
            )
        return _row_id(cursor)

    def finish_run(self, run_id: int, *, status: str) -> None:
        """Mark a run 'finished', 'interrupted' or 'failed' and stamp its finish time."""
        if status not in FINAL_RUN_STATUSES:
            raise ValueError(f"run status must be one of {FINAL_RUN_STATUSES}, got {status!r}")
        self._require_run(run_id)
        with self._transaction() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?",
                (status, _now(), run_id),
            )

    def set_run_info(self, run_id: int, key: str, value: Any) -> None:
        """Store (or replace) a JSON-serialisable piece of extra information about a run."""
        self._require_run(run_id)
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO run_info (run_id, key, value_json) VALUES (?, ?, ?)"
                " ON CONFLICT (run_id, key) DO UPDATE SET value_json = excluded.value_json",
                (run_id, key, _dumps(value)),
            )

    def record_parity(
        self, run_id: int, *, workload: str, size: str, passed: bool, summary: dict[str, Any]
    ) -> None:
        """Record the outcome of a numerical parity check between the two twins."""
        self._require_run(run_id)
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO parity (run_id, workload, size, passed, summary_json)"
                " VALUES (?, ?, ?, ?, ?)",
                (run_id, workload, size, int(passed), _dumps(summary)),
            )

    def record_cell(self, run_id: int, cell: CellRecord) -> int:
        """Commit a cell and its raw samples atomically and return the new cell id."""
        if cell.status not in CELL_STATUSES:
            raise ValueError(f"cell status must be one of {CELL_STATUSES}, got {cell.status!r}")
        self._require_run(run_id)
        with self._transaction() as conn:
            columns = ("run_id", *KEY_COLUMNS, "status", "error", "metrics_json", "recorded_at")
            values = (
                run_id,
                *(getattr(cell, key) for key in KEY_COLUMNS),
                cell.status,
                cell.error,
                _dumps(cell.metrics),
                _now(),
            )
            placeholders = ", ".join("?" * len(columns))
            cursor = conn.execute(
                f"INSERT INTO cells ({', '.join(columns)}) VALUES ({placeholders})", values
            )
            cell_id = _row_id(cursor)
            conn.executemany(
                "INSERT INTO samples (cell_id, idx, seconds) VALUES (?, ?, ?)",
                ((cell_id, idx, float(s)) for idx, s in enumerate(cell.samples)),
            )
        return cell_id

    def runs(self) -> list[RunRecord]:
        """All runs, oldest first."""
        info: dict[int, dict[str, Any]] = {}
        for row in self._conn.execute("SELECT run_id, key, value_json FROM run_info"):
            info.setdefault(row["run_id"], {})[row["key"]] = _loads(row["value_json"], None)
        return [
            _run_record(row, info.get(row["id"], {}))
            for row in self._conn.execute("SELECT * FROM runs ORDER BY id")
        ]

    def latest_run_id(self) -> int | None:
        """Id of the most recently started run, or None if there are none."""
        row = self._conn.execute("SELECT max(id) FROM runs").fetchone()
        return None if row[0] is None else int(row[0])

    def run(self, run_id: int) -> RunRecord:
        """The run with this id; StoreError listing the valid ids if there is none."""
        self._require_run(run_id)
        row = self._conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        info = {
            r["key"]: _loads(r["value_json"], None)
            for r in self._conn.execute(
                "SELECT key, value_json FROM run_info WHERE run_id = ?", (run_id,)
            )
        }
        return _run_record(row, info)

    def cells(self, run_id: int) -> list[CellRecord]:
        """The run's cells in recording order, with their raw samples."""
        self._require_run(run_id)
        samples: dict[int, list[float]] = {}
        for row in self._conn.execute(
            "SELECT s.cell_id, s.seconds FROM samples AS s JOIN cells AS c ON c.id = s.cell_id"
            " WHERE c.run_id = ? ORDER BY s.cell_id, s.idx",
            (run_id,),
        ):
            samples.setdefault(row["cell_id"], []).append(row["seconds"])
        return [
            _cell_record(row, samples.get(row["id"], []))
            for row in self._conn.execute(
                "SELECT * FROM cells WHERE run_id = ? ORDER BY id", (run_id,)
            )
        ]

    def parity(self, run_id: int) -> list[dict[str, Any]]:
        """The run's parity results as {workload, size, passed, summary} dicts."""
        self._require_run(run_id)
        return [
            {
                "workload": row["workload"],
                "size": row["size"],
                "passed": bool(row["passed"]),
                "summary": _loads(
                    row["summary_json"],
                    {"error": f"stored parity summary unreadable (parity row {row['id']})"},
                ),
            }
            for row in self._conn.execute(
                "SELECT * FROM parity WHERE run_id = ? ORDER BY id", (run_id,)
            )
        ]


def load_results(path: str | Path, run_id: int | None = None) -> pd.DataFrame:
    """Load cells as a DataFrame: one row per cell, metrics flattened into columns.

    ``run_status`` is the run's status: ``running`` while its process runs, ``abandoned`` when
    that process is gone from this host without finishing it.

    path is the database file or the directory holding results.sqlite; run_id limits the
    rows to one run (default: all runs). Key columns win over metrics of the same name.
    """
    import pandas as pd

    db = Path(path)
    if db.is_dir():
        db = db / DB_NAME
    if not db.is_file():
        raise StoreError(f"no twinbench results database at {db}")
    base_columns = ["run_id", *KEY_COLUMNS, "status", "error", "run_status"]
    rows: list[dict[str, Any]] = []
    with ResultStore(db, read_only=True) as store:
        runs = [store.run(run_id)] if run_id is not None else store.runs()
        for run in runs:
            rid = run.id
            for cell in store.cells(rid):
                row: dict[str, Any] = {"run_id": rid, "status": cell.status, "error": cell.error}
                row["run_status"] = run.status  # "abandoned": its process is gone
                row.update({key: getattr(cell, key) for key in KEY_COLUMNS})
                for name, value in cell.metrics.items():
                    row.setdefault(name, value)
                rows.append(row)
    if not rows:
        return pd.DataFrame(columns=base_columns)
    frame = pd.json_normalize(rows)  # also flattens nested metric dicts as "outer.inner"
    return frame[base_columns + [c for c in frame.columns if c not in base_columns]]


def _inspect_existing(path: Path) -> int | None:
    """Validate an existing file read-only; return its schema version, None if it is empty."""
    untouched = "it was left untouched"
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a results database; {untouched}")
    try:
        conn = _connect_read_only(path)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path} ({exc}); {untouched}") from exc
    try:
        check = conn.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            problem = check[0] if check else "no result"
            raise StoreError(f"{path} is corrupted (quick_check: {problem}); {untouched}")
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        if not tables:
            return None
        row = None
        if ("meta",) in tables:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a readable SQLite database ({exc}); {untouched}") from exc
    finally:
        conn.close()
    if row is None or not str(row[0]).isdigit():
        raise StoreError(f"{path} is not a twinbench results database; {untouched}")
    version = int(row[0])
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer twinbench (schema {version}, this version reads up"
            f" to {SCHEMA_VERSION}); upgrade twinbench or use another --out"
        )
    return version


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that never writes ``path``. A WAL database on read-only media cannot be
    opened with ``mode=ro`` alone (SQLite would create its ``-shm`` file): there it is opened
    ``immutable``, which is safe because nothing can write to such media."""
    uri = path.resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        conn.close()
        if os.access(path.resolve().parent, os.W_OK) and _writable_mount(path):
            raise
    return sqlite3.connect(f"{uri}?immutable=1", uri=True)


def _writable_mount(path: Path) -> bool:
    """False when ``path`` lies on a file system mounted read-only (root ignores modes)."""
    try:
        return not os.statvfs(path).f_flag & os.ST_RDONLY
    except OSError:
        return True


def _loads(text: str, fallback: Any) -> Any:
    """A stored JSON value, or ``fallback`` when the row holds no readable JSON."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return fallback


# Metrics stored under an older name, read under the name that says what they are.
LEGACY_METRIC_NAMES = {
    "peak_memory_bytes": "process_peak_memory_bytes",
    "peak_rss_bytes": "process_peak_rss_bytes",
}


def _cell_record(row: sqlite3.Row, samples: list[float]) -> CellRecord:
    """A stored cell; one whose metrics cannot be read is shown as an error naming its row."""
    metrics = _loads(row["metrics_json"], None)
    status, error = row["status"], row["error"]
    if not isinstance(metrics, dict):
        metrics, status = {}, "error"
        error = f"stored metrics unreadable (cells row id {row['id']})"
    metrics = {LEGACY_METRIC_NAMES.get(name, name): value for name, value in metrics.items()}
    return CellRecord(
        **{key: row[key] for key in KEY_COLUMNS},
        status=status,
        error=error,
        metrics=metrics,
        samples=samples,
        id=row["id"],
    )


def _run_record(row: sqlite3.Row, info: dict[str, Any]) -> RunRecord:
    columns = row.keys()
    pid = row["pid"] if "pid" in columns else None
    host = row["host"] if "host" in columns else None
    status = row["status"]
    if status == "running" and pid is not None and host == socket.gethostname():
        status = status if _process_exists(int(pid)) else ABANDONED
    return RunRecord(
        id=row["id"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        status=status,
        environment=_loads(row["environment_json"], {}),
        settings=_loads(row["settings_json"], {}),
        info=info,
        pid=pid,
        host=host,
    )


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _row_id(cursor: sqlite3.Cursor) -> int:
    assert cursor.lastrowid is not None  # always set after a successful single-row INSERT
    return cursor.lastrowid


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def json_ready(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±inf) replaced by None, for strict JSON; a
    dataclass instance becomes the dict of its fields."""
    if is_dataclass(value) and not isinstance(value, type):
        return json_ready(asdict(value))
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def json_default(value: object) -> Any:
    """``json.dumps``'s ``default``: NumPy scalars and arrays as plain numbers and lists, with
    non-finite floats as None (metrics hold them; numpy is not imported just to detect them)."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return json_ready(tolist())
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=json_default)


def _format_ids(ids: list[int]) -> str:
    """Render [1, 2, 3, 5] as '1..3, 5'."""
    spans: list[list[int]] = []
    for i in ids:
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ", ".join(str(lo) if lo == hi else f"{lo}..{hi}" for lo, hi in spans)
