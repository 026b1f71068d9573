"""A picture of a table: our accuracy per row (mean, with each seed as a dot) beside the paper's."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402


def accuracy_figure(doc: dict, path: Path) -> Path:
    """One panel per data set: a bar per measured row, the paper's number as a black tick."""
    datasets = list(dict.fromkeys(r["dataset"] for r in doc["rows"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4.5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets, strict=True):
        rows = [r for r in doc["rows"] if r["dataset"] == dataset and (r["accuracy"] or r["paper"])]
        labels = [r["model"] + (f" [{r['preset']}]" if r.get("preset") else "") for r in rows]
        for i, row in enumerate(rows):
            values = (row["accuracy"] or {}).get("values") or []
            if values:
                ax.barh(i, row["accuracy"]["mean"], color="tab:blue", alpha=0.6)
                ax.plot(values, [i] * len(values), ".", color="tab:blue", markersize=4)
            if row["paper"] is not None:
                ax.plot([row["paper"]] * 2, [i - 0.4, i + 0.4], color="black", linewidth=2)
        ax.set_yticks(range(len(rows)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("test accuracy (%)")
        ax.set_title(dataset)
        measured = [v for r in rows for v in ((r["accuracy"] or {}).get("values") or [])]
        paper = [r["paper"] for r in rows if r["paper"] is not None]
        low = min(measured + paper, default=0)
        ax.set_xlim(max(0, low - 5), min(100, max(measured + paper, default=100) + 2))
    fig.suptitle(f"{doc['title']} — bars: ours (dots: seeds), ticks: paper", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
