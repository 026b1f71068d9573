"""sharens: deep sharing ensembles (SE) and the suite that checks the paper's tables.

Use SE in your own code:

    from sharens import SharingEnsemble, build_backbone, vote
    se = SharingEnsemble(build_backbone("pyramid_dnn", 16, first_width=256, depth=8), num_classes=26, heads_per_tap=5)
    logits = se(x)                  # (batch, heads, classes)
    loss = se.loss(logits, y)       # the weighted sum of every head's cross-entropy
    predicted = vote(logits).argmax(-1)

Run a table: `sharens.run(benchmarks.get_table("table7_uci"), profile="smoke")` (what `python -m sharens reproduce`
does; the library never imports `benchmarks`, the caller hands it the table).
"""

from __future__ import annotations

from pathlib import Path

from sharens.model.backbones import BACKBONES, build_backbone
from sharens.model.ensemble import FusedHeads, SharingEnsemble, TappedBackbone
from sharens.model.voting import VOTES, Ballot, vote

__all__ = ["BACKBONES", "VOTES", "Ballot", "FusedHeads", "SharingEnsemble", "TappedBackbone", "build_backbone", "run",
           "vote"]
__version__ = "0.1.0"


def run(table, profile: str = "smoke", *, seeds: int | None = None, rows: list[str] | None = None,
        device: str = "cpu", jobs: int = 1, out: str | Path | None = None, data_root: str | Path | None = None):
    """Run (or resume) a table (a `sharens.suite.table.Table`, e.g. `benchmarks.get_table(id)`) at a profile and
    write its report; returns the run (`sharens.execution.runner.TableRun`:
    its cell records, errors and outcomes). `out` defaults to where the profile's committed results live."""
    import torch

    from sharens.execution.runner import run_table
    from sharens.report import markdown as report
    from sharens.suite.store import results_folder

    out = Path(out) if out is not None else results_folder(profile)
    done = run_table(table, profile, out=out, seeds=seeds, rows=rows, device=torch.device(device), jobs=jobs,
                     data_root=Path(data_root) if data_root is not None else None, throughput=True)
    if done.reported:
        report.write(table, profile, done.reported, out, done.outcomes, done.throughput)
    return done
