"""Framework adapters. Each backend is imported only when its framework is needed.

`Runner` and `Bench` (`twinbench.backends.protocols`) are what parity and the timing harness
ask of a backend; `twinbench.backends.layouts` is the one table of torch ⇄ canonical layouts.
"""

from __future__ import annotations

from twinbench.backends.protocols import Activation, Bench, Runner
from twinbench.canonical import Canonical, init_canonical
from twinbench.spec import Framework, Size, Workload, available_frameworks, require_framework

__all__ = [
    "Activation",
    "Bench",
    "Runner",
    "canonical_shapes",
    "initial_weights",
    "make_runner",
    "parameter_counts",
]


def make_runner(
    framework: Framework,
    workload: Workload,
    size: Size,
    *,
    dtype: str = "float32",
    device: str = "cpu",
) -> Runner:
    """The parity runner (`TorchRunner` or `JaxRunner`) for one twin of ``workload``."""
    require_framework(framework)
    if framework == "torch":
        from twinbench.backends.torch_backend import TorchRunner

        return TorchRunner(workload, size, dtype=dtype, device=device)
    from twinbench.backends.jax_backend import JaxRunner

    return JaxRunner(workload, size, dtype=dtype, device=device)


def canonical_shapes(
    workload: Workload,
    size: Size,
    framework: Framework | None = None,
    *,
    statistics: bool = True,
) -> dict[str, tuple[int, ...]]:
    """Canonical weight shapes, read off one twin built without allocating memory.

    Both twins have the same canonical shapes (parity checks it), so any twin will do:
    ``framework`` names the one to use; by default torch when importable, else JAX. Without
    ``statistics``, only the trainable parameters (no BatchNorm running means and variances).
    """
    if framework is None:
        framework = "torch" if "torch" in available_frameworks() else "jax"
    if framework == "torch":
        from twinbench.backends import torch_backend

        return torch_backend.canonical_shapes(
            torch_backend.build_on_meta(workload, size), statistics=statistics
        )
    require_framework(framework)  # say what to install when it is missing
    from twinbench.backends import jax_backend

    return jax_backend.canonical_shapes(
        jax_backend.build_abstract(workload, size), statistics=statistics
    )


def initial_weights(
    workload: Workload, size: Size, seed: int = 0, framework: Framework | None = None
) -> Canonical:
    """The one canonical init both twins load: `twinbench.canonical.init_canonical`, or the
    workload's own ``init`` where it declares one (e.g. GPT-2's N(0, 0.02²) embeddings).

    It depends on the seed and the shapes only, so it is the same whichever twin gave the shapes.
    """
    init = getattr(workload, "init", None) or init_canonical
    return init(canonical_shapes(workload, size, framework), seed)


def parameter_counts(workload: Workload) -> dict[str, int]:
    """Number of parameters at each size preset of ``workload``."""
    from twinbench.canonical import parameter_count

    return {
        name: parameter_count(canonical_shapes(workload, size, statistics=False))
        for name, size in workload.sizes.items()
    }
