"""PyTorch's feature checks: the planted user code run eagerly and under torch.compile.

Graph breaks are counted by ``torch._dynamo.explain``, which traces the function the way
torch.compile does and reports each break with its reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch._dynamo

from twinbench.dynamic import features, planted
from twinbench.dynamic.features import FeatureCheck, Outcome

NAME = "torch"


def configure(threads: int) -> None:
    """Use the worker's thread budget (0: torch's default)."""
    if threads:
        torch.set_num_threads(threads)


def _explained(fn: Callable[..., Any], *args: Any) -> dict[str, Any]:
    explanation, _ = features.printed(
        lambda: torch._dynamo.explain(fn)(*args)
    )  # explain runs fn too
    reasons = [str(b.reason).splitlines()[0] for b in explanation.break_reasons]
    return {
        "graph_breaks": int(explanation.graph_break_count),
        "graphs": int(explanation.graph_count),
        "reasons": reasons,
    }


def _breaks_text(facts: dict[str, Any]) -> str:
    reasons = f" ({facts['reasons'][0][:80]})" if facts["reasons"] else ""
    return f"{facts['graph_breaks']} graph break(s){reasons}"


def _branch(fn: Callable[[torch.Tensor], torch.Tensor], sabotaged: bool) -> None:
    x, y = torch.tensor(features.POSITIVE), torch.tensor(features.NEGATIVE)
    want = x * 2 + (1 if sabotaged else 0)
    features.expect(torch.equal(fn(x), want), f"branch on a positive sum gave {fn(x).tolist()}")
    features.expect(torch.equal(fn(y), y - 1), f"branch on a negative sum gave {fn(y).tolist()}")


def _printing(fn: Callable[[torch.Tensor], torch.Tensor], sabotaged: bool) -> str:
    x = torch.tensor(features.PRINTED)
    _, text = features.printed(lambda: fn(x))
    return features.expect_printed(text, sabotaged)


def checks(backend: str) -> list[FeatureCheck]:
    """The checks, torch.compile using ``backend``."""

    def compiled(fn: Callable[..., Any]) -> Callable[..., Any]:
        torch._dynamo.reset()  # each check traces from scratch
        return torch.compile(fn, backend=backend)

    def if_eager(sabotaged: bool) -> Outcome:
        _branch(planted.branch_on_value, sabotaged)
        return Outcome("ordinary Python on the tensor's value")

    def if_compiled(sabotaged: bool) -> Outcome:
        _branch(compiled(planted.branch_on_value), sabotaged)
        facts = _explained(planted.branch_on_value, torch.tensor(features.POSITIVE))
        return Outcome(f"works with {_breaks_text(facts)}", facts)

    def print_eager(sabotaged: bool) -> Outcome:
        return Outcome(f"prints {_printing(planted.print_value, sabotaged)[:60]!r}")

    def print_compiled(sabotaged: bool) -> Outcome:
        text = _printing(compiled(planted.print_value), sabotaged)
        facts = _explained(planted.print_value, torch.tensor(features.PRINTED))
        return Outcome(f"prints {text[:40]!r}; {_breaks_text(facts)}", facts)

    def shape_error(fn: Callable[..., Any], sabotaged: bool) -> Outcome:
        return features.surfaces_at_planted_line(
            lambda: fn(torch.ones(2, 3), torch.ones(4, 5)), sabotaged
        )

    def error_eager(sabotaged: bool) -> Outcome:
        return shape_error(planted.planted_shape_error, sabotaged)

    def error_compiled(sabotaged: bool) -> Outcome:
        return shape_error(compiled(planted.planted_shape_error), sabotaged)

    return features.feature_checks(
        NAME,
        branch=[("eager", if_eager), ("torch.compile", if_compiled)],
        print=[("eager", print_eager), ("torch.compile", print_compiled)],
        shape_error=[("eager", error_eager), ("torch.compile", error_compiled)],
    )
