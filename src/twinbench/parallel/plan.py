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
from typing import Any, ClassVar

from twinbench.errors import TwinbenchError
from twinbench.modes import FRAMEWORKS
from twinbench.validation import in_range, not_empty, one_of, positive, seed

STRATEGIES = ("dp", "tp")
SCALINGS = ("weak", "strong")
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
PARITY_OPTIMIZERS = ("sgd", "adam", "adamw")
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
        """True when torchrun joins processes on other machines."""
        return self.nnodes > 1 or self.rdzv_endpoint is not None

    @property
    def jax_multinode(self) -> bool:
        """True when jax.distributed joins processes on other machines."""
        return self.coordinator_address is not None


@dataclass(frozen=True)
class ParallelSettings:
    """Everything one ``twinbench parallel`` invocation runs.

    Timing runs ``warmup`` untimed steps, then ``repeats`` timed blocks of ``block`` steps each:
    every block is one sample of the mean step time. The counts are fixed, not budgeted,
    because every process of a cell must run the same steps (their collectives must match).

    Three checks refuse what cannot run, each in one line naming the value and what is valid:
    `validate` reads only the settings, `check_workload` the workload's shapes, and
    `check_environment` this machine (its cores and GPUs).
    """

    kind: ClassVar[str] = "parallel"

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
        """Every setting, the multi-node ones nested under ``multinode``."""
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Refuse a bad value (`TwinbenchError`, one line); reads only the settings."""
        seed(self.seed)
        for what, given, valid in (
            ("framework", self.frameworks, FRAMEWORKS),
            ("strategy", self.strategies, STRATEGIES),
            ("scaling", self.scalings, SCALINGS),
            ("JAX launch", self.jax_launch, JAX_LAUNCHES),
            ("parity optimizer", self.parity_optimizers, PARITY_OPTIMIZERS),
        ):
            not_empty(what, given, valid)
            one_of(what, given, valid)
        one_of("device", [self.device], DEVICES)
        _check_device_counts(self)
        in_range("--steps", self.parity_steps, low=0, integer=True)
        in_range("--warmup", self.warmup, low=0, integer=True)
        for flag, count in (
            ("--repeats", self.repeats),
            ("--block", self.block),
            ("--threads", self.threads),
        ):
            positive(flag, count, integer=True)
        for flag, batch in (
            ("--per-device-batch", self.per_device_batch),
            ("--global-batch", self.global_batch),
        ):
            if batch is not None:
                positive(flag, batch, integer=True)
        positive("--timeout", self.timeout_s)
        _check_multinode(self)

    def check_workload(self, shapes: Mapping[str, tuple[int, ...]], batch_size: int) -> None:
        """Refuse device counts the workload cannot be split over: a data-parallel global batch
        (strong scaling) or a tensor-parallel layer that ``n`` does not divide."""
        global_batch = self.global_batch or batch_size
        if "dp" in self.strategies and "strong" in self.scalings:
            for n in self.devices:
                if global_batch % n:
                    valid = [d for d in range(1, global_batch + 1) if global_batch % d == 0]
                    raise TwinbenchError(
                        f"global batch {global_batch} does not divide over {n} devices (strong "
                        f"scaling splits it); valid --devices: {', '.join(map(str, valid[:12]))}, "
                        "or give --global-batch"
                    )
        if "tp" in self.strategies:
            plan = tp_plan(self.workload, shapes)
            for n in self.devices:
                check_tp_plan(self.workload, plan, shapes, n)

    def check_environment(self, *, cores: int | None = None, gpus: int | None = None) -> None:
        """Refuse what this machine cannot run: more threads per device than the cores this
        process may use, more CUDA devices than its GPUs (times the nodes). ``cores`` and
        ``gpus`` default to what this machine has."""
        from twinbench.harness.environment import fingerprint, usable_cores

        cores = usable_cores() if cores is None else cores
        in_range("--threads", self.threads, low=1, high=cores, integer=True)
        if self.device != "cuda":
            return
        gpus = len(fingerprint()["gpus"]) if gpus is None else gpus
        nodes = max(self.multinode.nnodes, self.multinode.num_processes or 1)
        limit = gpus * nodes
        for n in self.devices:
            if n > limit:
                where = f"1..{limit} ({gpus} GPU(s) per node)" if limit else "none: no GPU found"
                raise TwinbenchError(
                    f"{n} devices requested; valid on cuda: {where} (or give --device cpu)"
                )


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


def check_address(flag: str, address: str | None) -> None:
    """HOST:PORT with a port in 1..65535."""
    if address is None:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise TwinbenchError(f"{flag} '{address}' is invalid; give HOST:PORT, e.g. 10.0.0.1:29500")


def _check_device_counts(s: ParallelSettings) -> None:
    if not s.devices:
        raise TwinbenchError("no device count given; valid: counts ≥ 1, e.g. --devices 1,2,4")
    for n in s.devices:
        in_range("--devices", n, low=1, integer=True)
        if s.device == "cpu" and n > MAX_SIMULATED_DEVICES:
            raise TwinbenchError(
                f"{n} devices requested; valid on cpu: 1..{MAX_SIMULATED_DEVICES} simulated "
                "CPU devices"
            )


def _check_multinode(s: ParallelSettings) -> None:
    m = s.multinode
    positive("--connect-timeout", m.connect_timeout_s)
    check_address("--rdzv-endpoint", m.rdzv_endpoint)
    check_address("--coordinator-address", m.coordinator_address)
    in_range("--nnodes", m.nnodes, low=1, integer=True)
    if not 0 <= m.node_rank < m.nnodes:
        raise TwinbenchError(
            f"--node-rank {m.node_rank} is outside 0..{m.nnodes - 1} for --nnodes {m.nnodes}"
        )
    if m.torch_multinode:
        _check_torch_multinode(s)
    if m.jax_multinode:
        _check_jax_multinode(s)
    elif m.num_processes is not None or m.process_id is not None:
        raise TwinbenchError("--num-processes/--process-id need --coordinator-address")


def _check_torch_multinode(s: ParallelSettings) -> None:
    m = s.multinode
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


def _check_jax_multinode(s: ParallelSettings) -> None:
    m = s.multinode
    if s.frameworks != ("jax",):
        raise TwinbenchError("--coordinator-address runs JAX only; add --framework jax")
    if m.num_processes is None or m.process_id is None:
        raise TwinbenchError("--coordinator-address needs --num-processes and --process-id")
    in_range("--num-processes", m.num_processes, low=1, integer=True)
    if not 0 <= m.process_id < m.num_processes:
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
