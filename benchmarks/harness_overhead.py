"""What does twinbench's timing loop add to each step?

Times a step that does nothing through ``twinbench.harness.timing`` exactly as a cell does
(calibrated block, one synchronisation per block): each sample is then the loop's own cost per
step — the iteration, the call, and the block's two timer reads and sync spread over the block.
Prints it next to the 1 % of a 1 ms step that it must stay under.
"""

from __future__ import annotations

import statistics

from twinbench.harness import timing


def main() -> None:
    def step() -> None:
        return None

    def sync(_out: object) -> None:
        return None

    block = timing.calibrate_block(step, sync)
    samples = timing.time_blocks(step, sync, block, seconds=2.0)
    per_step = statistics.median(samples)
    print(f"block of {block} empty steps; {len(samples)} blocks")
    print(f"harness cost per step: {per_step * 1e9:.1f} ns = {per_step / 1e-3:.4%} of a 1 ms step "
          f"(target < 1%) -> {'OK' if per_step < 1e-5 else 'MISSED'}")


if __name__ == "__main__":
    main()
