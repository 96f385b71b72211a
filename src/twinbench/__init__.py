"""twinbench: PyTorch or JAX for this workload, on this machine — and how sure are we?

Importing twinbench imports neither framework; each is loaded when a twin needs it.
"""

from twinbench.canonical import Canonical
from twinbench.errors import TwinbenchError
from twinbench.parity import ParityReport, ParityResult, parity
from twinbench.registry import builtin, from_file
from twinbench.spec import OptimizerConfig, Size, Workload, WorkloadSpec
from twinbench.store import load_results

__all__ = [
    "Canonical",
    "OptimizerConfig",
    "ParityReport",
    "ParityResult",
    "Size",
    "TwinbenchError",
    "Workload",
    "WorkloadSpec",
    "builtin",
    "from_file",
    "load_results",
    "parity",
]
