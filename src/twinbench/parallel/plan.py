"""What a parallel run does, checked before any process starts. Imports no framework.

A `ParallelSettings` names the workload, the strategies (``dp`` data parallel, ``tp`` tensor
parallel), the device counts and the multi-node rendezvous; `cells` expands it into `Cell` s, one
launch each. Data parallelism splits the global batch over the devices; tensor parallelism splits
the weights of paired Linear layers (Megatron style: the first column-wise, the second row-wise)
and gives every device the whole batch.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from twinbench.errors import TwinbenchError

STRATEGIES = ("dp", "tp")
SCALINGS = ("weak", "strong")
FRAMEWORKS = ("torch", "jax")
# How each framework spreads one program over devices: torch runs one process per device
# (launched by torch.distributed.run); JAX runs one process over a Mesh of all devices, or one
# process per device joined by jax.distributed.
IMPLEMENTATIONS = {
    ("torch", "dp"): ("ddp",),
    ("torch", "tp"): ("dtensor",),
    ("jax", "dp"): ("mesh", "processes"),
    ("jax", "tp"): ("mesh", "processes"),
}
JAX_LAUNCHES = ("mesh", "processes")
DEVICES = ("cpu", "cuda")
# A CPU has one device; more are simulated (XLA host devices, gloo processes) and share its cores.
# The cap keeps a typo such as --devices 64 from starting 64 framework processes.
MAX_SIMULATED_DEVICES = 8
TP_STYLES = ("colwise", "rowwise")


@dataclass(frozen=True)
class MultiNode:
    """Where this machine sits in a multi-machine run (defaults: one machine, localhost)."""

    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None  # torch: HOST:PORT of the c10d rendezvous
    coordinator_address: str | None = None  # JAX: HOST:PORT of jax.distributed's coordinator
    num_processes: int | None = None
    process_id: int | None = None
    connect_timeout_s: float = 60.0

    @property
    def torch_multinode(self) -> bool:
        return self.nnodes > 1 or self.rdzv_endpoint is not None

    @property
    def jax_multinode(self) -> bool:
        return self.coordinator_address is not None


@dataclass(frozen=True)
class ParallelSettings:
    """Everything one ``twinbench parallel`` invocation runs."""

    workload: str = "mlp"
    workload_file: str | None = None
    size: str = "tiny"
    frameworks: tuple[str, ...] = FRAMEWORKS
    strategies: tuple[str, ...] = STRATEGIES
    devices: tuple[int, ...] = (1, 2)
    scalings: tuple[str, ...] = SCALINGS
    jax_launch: tuple[str, ...] = ("mesh",)
    device: str = "cpu"
    per_device_batch: int | None = None  # weak scaling; default: the size preset's batch
    global_batch: int | None = None  # strong scaling and tp; default: the size preset's batch
    parity_steps: int = 5
    parity_optimizers: tuple[str, ...] = ("sgd", "adam")
    timing: bool = True
    warmup: int = 3
    repeats: int = 10
    block: int = 5
    threads: int = 1
    seed: int = 0
    timeout_s: float = 300.0
    multinode: MultiNode = field(default_factory=MultiNode)
    fault: Mapping[str, Any] | None = None  # tests only: {"rank": r, "step": k, "kind": ...}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Cell:
    """One launch: a framework's implementation of a strategy on ``devices`` devices."""

    framework: str
    impl: str
    strategy: str
    devices: int
    global_batch: int
    scalings: tuple[str, ...]  # the scaling series this cell belongs to (N = 1 is in both)

    @property
    def label(self) -> str:
        return (
            f"{self.framework}/{self.impl} {self.strategy} N={self.devices} B={self.global_batch}"
        )


def tp_plan(workload: str, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, str]:
    """Module path -> ``colwise`` | ``rowwise`` for tensor parallelism, from canonical shapes.

    ``mlp``: Linear layers paired in order, (0, 1), (2, 3), …; an unpaired last layer (the
    classifier) stays replicated. ``gpt``: each block's MLP, ``c_fc`` column-wise and ``c_proj``
    row-wise. The pair's hidden activations stay sharded between the two layers; the row-wise
    layer's all-reduce makes the output whole again.
    """
    modules = sorted({name.rsplit(".", 1)[0] for name in shapes if name.endswith(".kernel")})
    if workload == "mlp":
        layers = sorted(
            (m for m in modules if re.fullmatch(r"layers\.\d+", m)), key=lambda m: int(m[7:])
        )
        plan = {}
        for first, second in zip(layers[0::2], layers[1::2], strict=False):
            plan[first], plan[second] = "colwise", "rowwise"
        return plan
    if workload == "gpt":
        plan = {}
        for module in modules:
            if module.endswith(".mlp.c_fc"):
                plan[module] = "colwise"
            elif module.endswith(".mlp.c_proj"):
                plan[module] = "rowwise"
        return plan
    return {}


def check_tp_plan(
    workload: str, plan: Mapping[str, str], shapes: Mapping[str, tuple[int, ...]], n: int
) -> None:
    """Every split dimension must divide by ``n``; a one-line error says which does not."""
    if not plan:
        raise TwinbenchError(
            f"tensor parallelism has no plan for workload '{workload}'; "
            "plans exist for: mlp, gpt (give --strategy dp)"
        )
    for module, style in plan.items():
        rows, cols = shapes[f"{module}.kernel"]  # canonical kernel: (in, out)
        split = cols if style == "colwise" else rows
        if split % n:
            valid = [d for d in range(1, MAX_SIMULATED_DEVICES + 1) if split % d == 0]
            raise TwinbenchError(
                f"tensor parallelism splits {module} ({style}) over {split} features, which "
                f"{n} devices do not divide; valid --devices here: {', '.join(map(str, valid))}"
            )


def _check_choice(kind: str, values: tuple[Any, ...], valid: tuple[Any, ...]) -> None:
    if not values:
        raise TwinbenchError(f"give at least one {kind}; valid: {', '.join(map(str, valid))}")
    for value in values:
        if value not in valid:
            raise TwinbenchError(f"unknown {kind} '{value}'; valid: {', '.join(map(str, valid))}")


def _check_positive(name: str, value: float | int | None, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    bad = isinstance(value, bool) or value < 0 or (value == 0 and not allow_zero)
    if bad:
        least = "≥ 0" if allow_zero else "> 0"
        raise TwinbenchError(f"{name} must be {least}, got {value}")


def check_address(flag: str, address: str | None) -> None:
    """HOST:PORT with a port in 1..65535."""
    if address is None:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TwinbenchError(f"{flag} '{address}' is invalid; give HOST:PORT, e.g. 10.0.0.1:29500")


def available_devices(settings: ParallelSettings, gpus: int) -> int:
    """How many devices the run may use: simulated on CPU, the GPUs of every node on CUDA."""
    if settings.device == "cpu":
        return MAX_SIMULATED_DEVICES
    nodes = max(settings.multinode.nnodes, settings.multinode.num_processes or 1)
    return gpus * nodes


def validate(
    settings: ParallelSettings, shapes: Mapping[str, tuple[int, ...]], batch_size: int, gpus: int
) -> None:
    """Refuse bad input before any launch, in one line that says what is valid."""
    s, m = settings, settings.multinode
    _check_choice("framework", s.frameworks, FRAMEWORKS)
    _check_choice("strategy", s.strategies, STRATEGIES)
    _check_choice("scaling", s.scalings, SCALINGS)
    _check_choice("JAX launch", s.jax_launch, JAX_LAUNCHES)
    _check_choice("device", (s.device,), DEVICES)
    _check_choice("parity optimizer", s.parity_optimizers, ("sgd", "adam", "adamw"))
    if not s.devices:
        raise TwinbenchError("give at least one device count, e.g. --devices 1,2,4")
    limit = available_devices(s, gpus)
    for n in s.devices:
        if isinstance(n, bool) or n < 1:
            raise TwinbenchError(f"--devices takes counts ≥ 1, got {n}")
        if n > limit:
            where = (
                f"1..{limit} simulated CPU devices"
                if s.device == "cpu"
                else f"1..{limit} ({gpus} GPU(s) per node)"
                if limit
                else "none: no GPU found (use --device cpu)"
            )
            raise TwinbenchError(f"{n} devices requested; valid on {s.device}: {where}")
    for name in ("parity_steps", "warmup"):
        _check_positive(name.replace("_", " "), getattr(s, name), allow_zero=True)
    for name in ("repeats", "block", "threads", "timeout_s", "per_device_batch", "global_batch"):
        _check_positive(name.replace("_", " "), getattr(s, name))
    _check_positive("connect timeout", m.connect_timeout_s)
    global_batch = s.global_batch or batch_size
    if "dp" in s.strategies and "strong" in s.scalings:
        for n in s.devices:
            if global_batch % n:
                valid = [d for d in range(1, global_batch + 1) if global_batch % d == 0]
                raise TwinbenchError(
                    f"global batch {global_batch} does not divide over {n} devices (strong "
                    f"scaling splits it); valid --devices: {', '.join(map(str, valid[:12]))}, "
                    "or give --global-batch"
                )
    if "tp" in s.strategies:
        plan = tp_plan(s.workload, shapes)
        for n in s.devices:
            check_tp_plan(s.workload, plan, shapes, n)
    _validate_multinode(s)


def _validate_multinode(s: ParallelSettings) -> None:
    m = s.multinode
    check_address("--rdzv-endpoint", m.rdzv_endpoint)
    check_address("--coordinator-address", m.coordinator_address)
    if m.nnodes < 1 or not 0 <= m.node_rank < m.nnodes:
        raise TwinbenchError(
            f"--node-rank {m.node_rank} is outside 0..{m.nnodes - 1} for --nnodes {m.nnodes}"
        )
    if m.torch_multinode:
        if s.frameworks != ("torch",):
            raise TwinbenchError("--nnodes/--rdzv-endpoint run torch only; add --framework torch")
        if m.nnodes > 1 and m.rdzv_endpoint is None:
            raise TwinbenchError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (node 0's address)")
        for n in s.devices:
            if n % m.nnodes:
                raise TwinbenchError(
                    f"{n} devices do not divide over {m.nnodes} nodes; give --devices as "
                    f"multiples of {m.nnodes}"
                )
    if m.jax_multinode:
        if s.frameworks != ("jax",):
            raise TwinbenchError("--coordinator-address runs JAX only; add --framework jax")
        if m.num_processes is None or m.process_id is None:
            raise TwinbenchError("--coordinator-address needs --num-processes and --process-id")
        if m.num_processes < 1 or not 0 <= m.process_id < m.num_processes:
            raise TwinbenchError(
                f"--process-id {m.process_id} is outside 0..{m.num_processes - 1} "
                f"for --num-processes {m.num_processes}"
            )
        for n in s.devices:
            if n % m.num_processes:
                raise TwinbenchError(
                    f"{n} devices do not divide over {m.num_processes} processes; give "
                    f"--devices as multiples of {m.num_processes}"
                )
    elif m.num_processes is not None or m.process_id is not None:
        raise TwinbenchError("--num-processes/--process-id need --coordinator-address")


def cells(settings: ParallelSettings, batch_size: int) -> list[Cell]:
    """The launches a run makes, deduplicated: N = 1 belongs to the weak and strong series."""
    s = settings
    per_device = s.per_device_batch or batch_size
    global_batch = s.global_batch or batch_size
    found: dict[tuple[str, str, str, int, int], list[str]] = {}
    for framework in s.frameworks:
        for strategy in s.strategies:
            impls = IMPLEMENTATIONS[(framework, strategy)]
            if framework == "jax":
                impls = tuple(i for i in impls if i in s.jax_launch)
                if s.multinode.jax_multinode:
                    impls = ("processes",)
            scalings = s.scalings if strategy == "dp" else ("strong",)
            for impl in impls:
                for scaling in scalings:
                    for n in sorted(set(s.devices)):
                        batch = per_device * n if scaling == "weak" else global_batch
                        found.setdefault((framework, impl, strategy, n, batch), []).append(scaling)
    return [Cell(*key, scalings=tuple(sc)) for key, sc in found.items()]


def request(settings: ParallelSettings, cell: Cell, out_dir: str) -> dict[str, Any]:
    """The JSON request a cell's worker processes read."""
    s = settings
    return {
        "workload": s.workload,
        "workload_file": s.workload_file,
        "size": s.size,
        "strategy": cell.strategy,
        "impl": cell.impl,
        "devices": cell.devices,
        "global_batch": cell.global_batch,
        "device": s.device,
        "seed": s.seed,
        "parity_steps": s.parity_steps,
        "parity_optimizers": list(s.parity_optimizers),
        "timing": s.timing,
        "warmup": s.warmup,
        "repeats": s.repeats,
        "block": s.block,
        "timeout_s": s.timeout_s,
        "out_dir": out_dir,
        "fault": dict(s.fault) if s.fault else None,
    }
