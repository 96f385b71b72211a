"""What one dynamic-shapes suite run measures: `DynamicSettings`, its scenarios and strategies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, TypedDict

from twinbench.errors import TwinbenchError
from twinbench.spec import SIZE_NAMES
from twinbench.validation import one_of, positive, seed

SCENARIOS = ("seq-len", "batch", "generate", "control-flow")
SEQUENCE_WORKLOADS = ("gpt", "lstm", "gru", "bert")  # a sequence dimension the schedule can vary
BATCH_WORKLOADS = ("mlp", "gpt")  # rows the schedule can vary and a masked loss can pad
# The batch scenario's phase per workload: the MLP trains on an epoch's last partial batch; the
# decoder serves requests, forward passes only (its per-row schedule is serving traffic).
INFER_WORKLOADS = ("gpt",)
AXIS = {"seq-len": 1, "batch": 0}  # the dimension each scenario varies
# Padding is exact only where nothing real sees a padded entry: the causal decoder's positions
# (padded on the right), the encoder's (padded on the right, masked out of every attention)
# and the rows of the MLP and the decoder. The recurrent nets' head reads the last hidden
# state, which padding would move.
PADDABLE_WORKLOADS = ("gpt", "mlp", "bert")
LENGTH_DISTRIBUTIONS = ("lognormal", "uniform")
TORCH_BACKENDS = ("inductor", "aot_eager", "eager")
DEFAULT_STEPS = {"tiny": 8, "small": 100, "full": 100}
DEFAULT_PROMPTS = {"tiny": 4, "small": 8, "full": 8}
END_TOKEN = 0  # greedy decoding stops here or at the end of the position table


@dataclass(frozen=True)
class Strategy:
    """One way of running a schedule of changing shapes.

    ``compile``: ``none`` (eager / op by op), ``auto`` (torch.compile's default ``dynamic=None``),
    ``dynamic`` (``dynamic=True``), ``mark`` (``mark_dynamic`` on the varying dimension),
    ``static`` (one graph per shape: torch ``dynamic=False``, ``jax.jit``). ``padding``:
    ``none``, ``bucket`` or ``max``.
    """

    name: str
    framework: str
    compile: str
    padding: str = "none"


STRATEGIES = (
    Strategy("torch-eager", "torch", "none"),
    Strategy("torch-compile", "torch", "auto"),
    Strategy("torch-compile-dynamic", "torch", "dynamic"),
    Strategy("torch-mark-dynamic", "torch", "mark"),
    Strategy("torch-compile-bucketed", "torch", "static", "bucket"),
    Strategy("jax-jit", "jax", "static"),
    Strategy("jax-jit-bucketed", "jax", "static", "bucket"),
    Strategy("jax-jit-pad-max", "jax", "static", "max"),
    Strategy("jax-eager", "jax", "none"),
)
BY_NAME = {s.name: s for s in STRATEGIES}


class TrainerOptions(TypedDict):
    """What each side's ``Trainer`` takes besides the workload, size and strategy."""

    backend: str  # torch.compile's backend (inductor, aot_eager, eager)
    # padding leaks into the result: the loss counts padded positions (or rows) too, or the
    # encoder's attention sees them (a planted bug the checks catch)
    leak_padding: bool
    seed: int
    axis: int  # the varying dimension: 0 the batch size, 1 the sequence length


# Generation as each framework's users write it: a Python loop with a growing KV cache (eager,
# and the decode step compiled), and a fixed-size cache in lax.while_loop under jit.
GENERATE_STRATEGIES = ("torch-eager", "torch-compile", "jax-jit")
STRATEGY_NAMES = tuple(BY_NAME)
REFERENCE = "torch-eager"  # every strategy's losses are compared with its


@dataclass(frozen=True)
class DynamicSettings:
    """One run: a scenario on a workload at a size, over ``steps`` steps of changing shapes.

    ``workload`` None means the scenario's first (gpt for seq-len, mlp for batch); the workload
    decides the phase (`phase`): every workload trains, except gpt in the batch scenario, which
    serves (forward passes only, no gradients). ``lengths``
    is the distribution of the varying dimension — the sequence length (seq-len) or the batch
    size (batch): ``lognormal``, ``uniform`` or explicit values (``"12,30,7"``, cycled);
    ``bucket`` the bucket width of the bucketed strategies (None: powers of two); ``repeats``
    the worker processes each strategy's schedule runs in, so its wall time has a CI;
    ``torch_backend`` the torch.compile backend (``eager`` keeps Dynamo's tracing, guards and
    recompiles but skips code generation); ``leak_padding`` plants a mask bug (padding counted
    in the loss, or seen by the encoder's attention), and ``sabotage`` makes the named feature
    checks expect a wrong value, for tests that prove the checks catch what they claim to.
    """

    kind: ClassVar[str] = "dynamic"

    scenario: str = "seq-len"
    workload: str | None = None
    size: str = "tiny"
    steps: int | None = None
    bucket: int | None = None
    lengths: str = "lognormal"
    strategies: tuple[str, ...] | None = None
    repeats: int = 2  # as a run's cells: two processes, so a wall time has a CI
    torch_backend: str = "inductor"
    threads: int | None = None
    seed: int = 0
    leak_padding: bool = False
    sabotage: tuple[str, ...] = ()

    def validate(self) -> None:
        """Refuse unknown names, counts ≤ 0 and lengths the workload cannot take."""
        seed(self.seed)
        one_of("scenario", [self.scenario], SCENARIOS)
        one_of("size", [self.size], SIZE_NAMES)
        one_of("torch backend", [self.torch_backend], TORCH_BACKENDS)
        positive("--repeats", self.repeats, integer=True)
        if self.steps is not None:
            positive("--steps", self.steps, integer=True)
        if self.bucket is not None:
            positive("--bucket", self.bucket, integer=True)
        if self.threads is not None:
            positive("threads", self.threads, integer=True)
        if self.scenario in AXIS:
            self._validate_schedule()
        if self.scenario == "generate":
            if self.workload_name != "gpt":
                from twinbench.registry import builtin

                builtin(self.workload_name)  # an unknown name: the registry's one-line error
                raise TwinbenchError(
                    f"workload '{self.workload_name}' does not generate; valid: gpt"
                )
            one_of("generation strategy", self.strategies or (), GENERATE_STRATEGIES)
            self._validate_lengths(self.longest - 1, "its position table, less one new token")

    def _validate_schedule(self) -> None:
        from twinbench.registry import builtin

        valid = SEQUENCE_WORKLOADS if self.scenario == "seq-len" else BATCH_WORKLOADS
        if self.workload_name not in valid:
            builtin(self.workload_name)  # an unknown name: the registry's own one-line error
            what = "has no sequence dimension for" if self.scenario == "seq-len" else "is not in"
            raise TwinbenchError(
                f"workload '{self.workload_name}' {what} the {self.scenario} scenario; "
                f"valid: {', '.join(valid)}"
            )
        one_of("strategy", self.strategies or (), STRATEGY_NAMES)
        unpaddable = [s for s in self.chosen_strategies if BY_NAME[s].padding != "none"]
        name = self.workload_name
        if self.strategies is not None and unpaddable and name not in PADDABLE_WORKLOADS:
            raise TwinbenchError(
                f"strategy '{unpaddable[0]}' pads, which would change {name}'s result (its "
                f"head reads the last step); padding runs on: {', '.join(PADDABLE_WORKLOADS)}"
            )
        what = "its position table" if self.scenario == "seq-len" else "its preset batch"
        self._validate_lengths(self.longest, what)

    def _validate_lengths(self, longest: int, what: str) -> None:
        if self.lengths in LENGTH_DISTRIBUTIONS:
            return
        from twinbench.dynamic.schedule import explicit_lengths

        try:
            given = explicit_lengths(self.lengths)
        except ValueError:
            given = []
        if not given:
            raise TwinbenchError(
                f"--lengths '{self.lengths}' is invalid; valid: "
                f"{', '.join(LENGTH_DISTRIBUTIONS)} or comma-separated lengths, e.g. 12,30,7"
            )
        for n in given:
            if not 1 <= n <= longest:
                raise TwinbenchError(
                    f"length {n} is past what {self.workload_name} at {self.size} takes; valid: "
                    f"1 to {longest} ({what})"
                )

    @property
    def workload_name(self) -> str:
        """The workload: as given, or the scenario's first."""
        if self.workload is not None:
            return self.workload
        return BATCH_WORKLOADS[0] if self.scenario == "batch" else SEQUENCE_WORKLOADS[0]

    @property
    def phase(self) -> str:
        """``infer`` (forward passes only) for a serving workload in the batch scenario, else
        ``train``."""
        serving = self.scenario == "batch" and self.workload_name in INFER_WORKLOADS
        return "infer" if serving else "train"

    @property
    def longest(self) -> int:
        """The longest sequence (seq-len) or largest batch (batch) the workload takes here."""
        from twinbench.dynamic.schedule import max_length
        from twinbench.registry import builtin

        size = builtin(self.workload_name).size(self.size)
        return size.batch_size if self.scenario == "batch" else max_length(size)

    @property
    def step_count(self) -> int:
        """Steps of the schedule (prompts, for generate): as given, or the size's default."""
        if self.steps is not None:
            return self.steps
        return (DEFAULT_PROMPTS if self.scenario == "generate" else DEFAULT_STEPS)[self.size]

    @property
    def chosen_strategies(self) -> tuple[str, ...]:
        """The strategies to run: as given, or every one the workload supports."""
        if self.strategies is not None:
            return self.strategies
        if self.scenario == "generate":
            return GENERATE_STRATEGIES
        if self.workload_name in PADDABLE_WORKLOADS:
            return STRATEGY_NAMES
        return tuple(s.name for s in STRATEGIES if s.padding == "none")

    def to_dict(self) -> dict[str, Any]:
        """The settings as stored with the run."""
        return {
            "scenario": self.scenario,
            "workload": self.workload_name,
            "phase": self.phase,
            "size": self.size,
            "steps": self.step_count,
            "bucket": self.bucket,
            "lengths": self.lengths,
            "strategies": list(self.chosen_strategies),
            "repeats": self.repeats,
            "torch_backend": self.torch_backend,
            "threads": self.threads,
            "seed": self.seed,
            "leak_padding": self.leak_padding,
            "dtype": "float32",
            "device": "cpu",
        }
