"""Where SE's extra training time goes: torch.profiler over one epoch of a baseline cell and of its SE cell.

    python bench/profile_step.py [MODEL] [STEPS]     (MODEL: a key of IMAGE_MODELS; default table2_cnn)

Prints, per operator, the self CPU time per step of each and SE minus baseline, largest differences first.
Both models are built and trained as `test_train_step` builds them (a `full` cell's network, its table's
batch, a cell's thread count), each after one warm-up epoch.
"""

from __future__ import annotations

import sys

from test_train_step import IMAGE_MODELS, cell, our_loop
from torch.profiler import ProfilerActivity, profile

from sharens.execution.cell import fixed_threads
from sharens.suite.plan import CELL_THREADS


def self_times(loop, steps: int) -> dict[str, float]:
    """{operator: self CPU ms per step} over one epoch of `loop`."""
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        loop()
    return {event.key: event.self_cpu_time_total / 1e3 / steps for event in profiler.key_averages()}


def main(model: str = "table2_cnn", steps: str = "3") -> None:
    table_id, dataset, baseline_row, se_row = IMAGE_MODELS[model]
    times = {}
    with fixed_threads(CELL_THREADS):
        for row in (baseline_row, se_row):
            net, data = cell(table_id, dataset, row, int(steps))
            loop = our_loop(net, data)
            loop()  # warm-up: allocator, kernels' first calls
            times[row] = self_times(loop, len(data.y_train) // net.batch_size)
    base, se = times[baseline_row], times[se_row]
    total = {row: sum(t.values()) for row, t in times.items()}
    print(f"{model}: {total[baseline_row]:.0f} ms/step baseline, {total[se_row]:.0f} SE "
          f"({total[se_row] / total[baseline_row]:.3f}x)\n")
    print(f"{'operator':50s} {'baseline':>9s} {'SE':>9s} {'SE - base':>10s}  (self CPU ms per step)")
    for op in sorted(set(base) | set(se), key=lambda o: -abs(se.get(o, 0) - base.get(o, 0)))[:15]:
        print(f"{op[:50]:50s} {base.get(op, 0):9.1f} {se.get(op, 0):9.1f} {se.get(op, 0) - base.get(op, 0):+10.1f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
