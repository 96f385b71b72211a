"""First-order trajectories: the twins agree, and a planted optimizer mismatch is caught."""

from __future__ import annotations

import optax
import pytest

from twinbench.backends import jax_backend
from twinbench.optim_suite import FIRST_ORDER, compare_first_order, first_order_config

pytest.importorskip("torch")


@pytest.mark.parametrize("workload", ["linreg", "mlp", "xor"])
@pytest.mark.parametrize("optimizer", FIRST_ORDER)
def test_trajectories_agree_over_200_steps(workload, optimizer):
    result = compare_first_order(workload, optimizer, size="tiny", steps=200)
    assert result.status == "agree", result
    assert result.first_bad_step is None


def test_every_hyper_parameter_is_explicit():
    adamw = first_order_config("linreg", "adamw")
    assert adamw.weight_decay > 0 and adamw.eps == 1e-8 and adamw.betas == (0.9, 0.999)
    assert first_order_config("xor", "sgd_momentum").momentum == 0.9
    assert first_order_config("xor", "sgd").momentum == 0.0


def test_adamw_mapped_to_adam_l2_is_detected(monkeypatch):
    original = jax_backend.make_tx

    def adam_plus_l2(config):  # the classic porting slip: coupled decay where torch decouples
        if config.name != "adamw":
            return original(config)
        b1, b2 = config.betas
        return optax.chain(
            optax.add_decayed_weights(config.weight_decay),
            optax.scale_by_adam(b1=b1, b2=b2, eps=config.eps, eps_root=0.0),
            optax.scale_by_learning_rate(config.lr),
        )

    monkeypatch.setattr(jax_backend, "make_tx", adam_plus_l2)
    result = compare_first_order("linreg", "adamw", size="tiny", steps=200)
    assert result.status == "disagree"
    assert result.first_bad_step is not None and result.first_bad_step >= 1


def test_huge_learning_rate_is_recorded_as_diverged():
    result = compare_first_order("linreg", "sgd", size="tiny", steps=200, lr=1e6)
    assert result.status == "diverged"
    assert result.max_abs is None and result.first_bad_step is None
