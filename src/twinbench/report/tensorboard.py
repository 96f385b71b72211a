"""Both twins' parity loss curves as TensorBoard scalars, so TensorBoard overlays the frameworks.

Layout: ``DIR/<workload>-<size>/<framework>`` is one TensorBoard run per twin, the tag is
``loss/<optimizer>`` (from the parity check ``curve[<optimizer>]``) and the step is the index
in the curve. Pointing ``tensorboard --logdir DIR`` at the folder shows, for each workload and
optimizer, the PyTorch and the JAX curve on one chart.

tensorboardX is imported only inside ``write_parity_curves``: importing it imports torch (its
writer checks for ``torch.Tensor``), and reports otherwise never load a framework.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from twinbench.report.summary import RunSummary

EVENT_SUFFIX = ".twinbench"
_CURVE = re.compile(r"^curve\[(?P<optimizer>.+)\]$")


def parity_curves(
    parity: Iterable[dict[str, Any]],
) -> dict[tuple[str, str], dict[str, dict[str, list[float]]]]:
    """{(workload, size): {optimizer: {framework: curve}}} from stored parity records."""
    found: dict[tuple[str, str], dict[str, dict[str, list[float]]]] = {}
    for record in parity:
        summary = record.get("summary") or {}
        for check in summary.get("checks") or []:
            match = _CURVE.match(str(check.get("name", "")))
            if match is None or not check.get("curves"):
                continue
            key = (record["workload"], record["size"])
            found.setdefault(key, {})[match["optimizer"]] = {
                framework: [float(v) for v in values]
                for framework, values in check["curves"].items()
            }
    return found


FOLDER_LENGTH = 100  # characters of a run folder: file names must fit in 255 bytes


def _run_folder(workload: str, size: str) -> str:
    # sizes may carry sweep points ("small bs=64"): keep folder names to safe characters
    folder = re.sub(r"[^A-Za-z0-9_.=-]+", "_", f"{workload}-{size}")
    if len(folder) <= FOLDER_LENGTH:
        return folder
    # a long name: cut, with a short hash of the whole so two long names stay apart
    digest = hashlib.sha1(f"{workload}\0{size}".encode()).hexdigest()[:10]
    return f"{folder[: FOLDER_LENGTH - 11]}-{digest}"


def write_parity_curves(
    data: RunSummary | Iterable[dict[str, Any]], log_dir: str | Path
) -> list[Path]:
    """Write every stored loss curve as scalars under log_dir; return the run folders written.

    Writing again into the same log_dir replaces the event files twinbench wrote there before
    (recognised by their ``.twinbench`` suffix), so TensorBoard never shows a curve twice;
    other files are left alone.
    """
    from tensorboardX import SummaryWriter

    parity = data.parity if isinstance(data, RunSummary) else data
    written = []
    for (workload, size), optimizers in parity_curves(parity).items():
        frameworks = sorted({fw for curves in optimizers.values() for fw in curves})
        for framework in frameworks:
            folder = Path(log_dir) / _run_folder(workload, size) / framework
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.glob(f"events.out.tfevents.*{EVENT_SUFFIX}"):
                old.unlink()
            writer = SummaryWriter(logdir=str(folder), filename_suffix=EVENT_SUFFIX)
            try:
                for optimizer, curves in optimizers.items():
                    for step, value in enumerate(curves.get(framework, [])):
                        writer.add_scalar(f"loss/{optimizer}", value, global_step=step)
            finally:
                writer.close()
            written.append(folder)
    return written
