"""The HTML report of a 50-cell run, opened from disk in headless Chromium."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from twinbench.report import html
from twinbench.report.summary import load_summary

BENCH = Path(__file__).parents[2] / "benchmarks" / "report_speed.py"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no chromium on PATH: apt-get install -y chromium")


def _build_store(out: Path) -> None:
    spec = importlib.util.spec_from_file_location("report_speed", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build_store(out)


@pytest.mark.browser
def test_report_renders_in_chromium_with_plots_and_no_console_errors(tmp_path: Path):
    _build_store(tmp_path)
    page = html.write(load_summary(tmp_path), tmp_path / "report.html")
    browser = _chromium()
    profile = tmp_path / "profile"
    url = page.resolve().as_uri()
    dom = subprocess.run(
        [
            browser,
            *FLAGS,
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=5000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "<h1>twinbench run 1</h1>" in dom.stdout
    assert dom.stdout.count("<svg") >= 22  # 10 workload + 11 parity figures + 1 sweep
    assert dom.stdout.count('class="hl"') == 22  # 11 workloads × 2 twin sources
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    refused = [line for line in dom.stderr.splitlines() if "Refused to" in line]
    assert not refused, refused  # the page's CSP would name anything it tried to fetch

    shot_dir = Path(tempfile.gettempdir()) / "twinbench-browser"
    shot_dir.mkdir(exist_ok=True)
    shot = shot_dir / "report.png"
    shot.unlink(missing_ok=True)
    subprocess.run(
        [
            browser,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={shot}",
            "--window-size=1400,3000",
            "--hide-scrollbars",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 3000)
    print(f"screenshot: {shot}")
    assert re.search(r"\d+ of 50 cells measured", dom.stdout)
