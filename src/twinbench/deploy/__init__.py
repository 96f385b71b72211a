"""The deploy suite: torch.export → AOTInductor, jax.export → StableHLO, and ONNX Runtime for
both — fidelity, cold start, latency and size of the shipped model.

``settings`` says what a run measures, ``torch_paths`` / ``jax_paths`` each framework's
exporters and loader (side by side), ``onnx_runtime`` the runtime both ONNX files share,
``inputs`` the batches and artefact descriptions, ``fidelity`` the output checks, ``worker`` the
exporting and serving processes, ``suite`` the run and ``view`` the report's rendering.
Importing this package imports neither framework.
"""

from twinbench.deploy.settings import GROUPS, PATHS, DeploySettings
from twinbench.deploy.suite import DeployResult, feature_table, run_deploy

__all__ = ["GROUPS", "PATHS", "DeployResult", "DeploySettings", "feature_table", "run_deploy"]
