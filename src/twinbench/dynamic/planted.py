"""The user code of the feature checks: the same three functions run under both frameworks.

Plain Python on whatever array the caller passes (a torch tensor or a JAX array), as a user's
training step would be: a branch on a tensor's value, a print of a tensor, and a matmul whose
shapes the checks get wrong on purpose, so they can see whether the error names this file's line.
"""

from typing import Any


def branch_on_value(x: Any) -> Any:
    if x.sum() > 0:  # a Python `if` on a tensor's value: data-dependent control flow
        return x * 2
    return x - 1


def print_value(x: Any) -> Any:
    print("value:", x)
    return x + 1


def planted_shape_error(a: Any, b: Any) -> Any:
    return a @ b  # the checks pass shapes that do not fit
