"""JAX's feature checks: the planted user code op by op and under jax.jit, and the rewrites
JAX asks for (``lax.cond`` for a branch on a value, ``jax.debug.print`` for a print)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from twinbench.dynamic import features, planted
from twinbench.dynamic.features import FeatureCheck, Outcome

NAME = "jax"


def configure(_threads: int) -> None:
    """XLA sizes its pools from the CPU affinity the worker pinned."""


def branch_with_cond(x: jax.Array) -> jax.Array:
    """`planted.branch_on_value` as JAX wants it under jit: both branches traced, one chosen."""
    chosen: jax.Array = lax.cond(x.sum() > 0, lambda v: v * 2, lambda v: v - 1, x)
    return chosen


def debug_print_value(x: jax.Array) -> jax.Array:
    """`planted.print_value` as JAX wants it under jit: printed when the step runs."""
    jax.debug.print("value: {}", x)
    return x + 1


def _branch(fn: Callable[[jax.Array], jax.Array], sabotaged: bool) -> None:
    x, y = jnp.array(features.POSITIVE), jnp.array(features.NEGATIVE)
    want = np.asarray(x) * 2 + (1 if sabotaged else 0)
    features.expect(np.array_equal(fn(x), want), f"branch on a positive sum gave {fn(x)}")
    features.expect(
        np.array_equal(fn(y), np.asarray(y) - 1), f"branch on a negative sum gave {fn(y)}"
    )


def _printing(fn: Callable[[jax.Array], jax.Array], sabotaged: bool) -> str:
    def run() -> None:
        jax.block_until_ready(  # type: ignore[no-untyped-call]
            fn(jnp.array(features.PRINTED))
        )
        jax.effects_barrier()  # type: ignore[no-untyped-call]  # debug callbacks have printed

    _, text = features.printed(run)
    return features.expect_printed(text, sabotaged)


def checks(_backend: str) -> list[FeatureCheck]:
    """The checks (XLA is JAX's only compiler, so ``_backend`` changes nothing)."""

    def if_eager(sabotaged: bool) -> Outcome:
        _branch(planted.branch_on_value, sabotaged)
        return Outcome("ordinary Python on a concrete array's value")

    def if_jit(sabotaged: bool) -> Outcome:
        _branch(jax.jit(planted.branch_on_value), sabotaged)
        return Outcome("works")  # not expected: jit traces with abstract values

    def cond_jit(sabotaged: bool) -> Outcome:
        _branch(jax.jit(branch_with_cond), sabotaged)
        return Outcome("works, rewritten with lax.cond: no Python branch, no retrace")

    def print_eager(sabotaged: bool) -> Outcome:
        return Outcome(f"prints {_printing(planted.print_value, sabotaged)[:60]!r}")

    def print_jit(sabotaged: bool) -> Outcome:
        return Outcome(f"prints {_printing(jax.jit(planted.print_value), sabotaged)[:60]!r}")

    def debug_print_jit(sabotaged: bool) -> Outcome:
        text = _printing(jax.jit(debug_print_value), sabotaged)
        return Outcome(f"jax.debug.print prints {text[:40]!r} at run time")

    def shape_error(fn: Callable[..., Any], sabotaged: bool) -> Outcome:
        def call() -> None:
            jax.block_until_ready(fn(jnp.ones((2, 3)), jnp.ones((4, 5))))  # type: ignore[no-untyped-call]

        return features.surfaces_at_planted_line(call, sabotaged)

    def error_eager(sabotaged: bool) -> Outcome:
        return shape_error(planted.planted_shape_error, sabotaged)

    def error_jit(sabotaged: bool) -> Outcome:
        return shape_error(jax.jit(planted.planted_shape_error), sabotaged)

    return features.feature_checks(
        NAME,
        branch=[("op by op", if_eager), ("jax.jit", if_jit), ("jax.jit + lax.cond", cond_jit)],
        print=[
            ("op by op", print_eager),
            ("jax.jit", print_jit),
            ("jax.jit + jax.debug.print", debug_print_jit),
        ],
        shape_error=[("op by op", error_eager), ("jax.jit", error_jit)],
    )
