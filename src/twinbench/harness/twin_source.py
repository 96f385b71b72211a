"""A twin's code as a reader sees it: its own file, then the workload-private modules it imports.

Twins of related workloads may share a private module (``twinbench.workloads._*``: the
recurrent stack that ``lstm`` and ``gru`` both build on, say). The source a report shows and the
lines of code it compares must cover that code too, or a twin that moved half of itself into a
shared module would look half as long. Found by reading the file, never by importing it.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

SHARED_PREFIX = "twinbench.workloads._"


def twin_files(path: Path) -> list[Path]:
    """``path`` and the files of the private modules it imports, in the order it imports them."""
    files = [path]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            if not name.startswith(SHARED_PREFIX):
                continue
            spec = importlib.util.find_spec(name)
            if spec is not None and spec.origin and Path(spec.origin) not in files:
                files.append(Path(spec.origin))
    return files


def twin_text(path: Path) -> str:
    """The twin's file followed by each private module it imports, each under a header line."""
    parts = [path.read_text()]
    for extra in twin_files(path)[1:]:
        parts.append(f"\n# ---- {extra.name}: shared with related workloads ----\n\n")
        parts.append(extra.read_text())
    return "".join(parts)


def count_code_lines(path: Path) -> int:
    """Lines of the twin and its private modules that are neither blank nor comments
    (docstrings count: they are part of the code)."""
    return sum(
        1
        for file in twin_files(path)
        for line in file.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    )
