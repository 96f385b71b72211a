"""The blocked timing loop: one synchronisation per block, per-step samples."""

import time

from twinbench.harness import timing


class CountingStep:
    def __init__(self, seconds: float = 0.0) -> None:
        self.steps = 0
        self.syncs = 0
        self.seconds = seconds

    def step(self) -> int:
        self.steps += 1
        if self.seconds:
            time.sleep(self.seconds)
        return self.steps

    def sync(self, out: object) -> None:
        assert out == self.steps  # the sync waits on the last step's output
        self.syncs += 1


def test_one_sync_per_block_and_at_least_one_block():
    counter = CountingStep()
    samples = timing.time_blocks(counter.step, counter.sync, block=7, seconds=0.0)
    assert len(samples) == 1
    assert (counter.steps, counter.syncs) == (7, 1)


def test_samples_are_per_step_times():
    counter = CountingStep(seconds=0.002)
    samples = timing.time_blocks(counter.step, counter.sync, block=3, seconds=0.0)
    # sleep() lasts at least what it is asked for, so a per-step sample cannot be shorter
    assert samples[0] >= 0.002
    assert samples[0] < 3 * 0.002 * 50  # and it is per step, not per block of three


def test_warm_up_runs_the_minimum_steps():
    counter = CountingStep()
    steps = timing.warm_up(counter.step, counter.sync)
    assert steps == counter.steps >= timing.WARMUP_MIN_STEPS
