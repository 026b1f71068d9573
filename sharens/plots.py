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


SWEEP_SUFFIX = {"baseline": "", "se": " +SE", "dsn": " DSN"}
LINESTYLE = {"baseline": "-", "se": "--", "dsn": ":"}


def sweep_line(row: dict) -> tuple[str, str]:
    """(family, variant) of a row on a depth sweep (older documents say only whether it is SE)."""
    sweep = row["sweep"]
    return sweep["family"], sweep.get("variant") or ("se" if sweep["se"] else "baseline")


def sweep_figures(doc: dict, stem: Path) -> list[tuple[Path, str]]:
    """Accuracy vs depth (and, where measured, first-layer gradient norm vs depth): one line per family and
    variant (baseline solid, SE dashed, DSN dotted), one panel per preset; error bars are the std over seeds."""
    rows = [r for r in doc["rows"] if r.get("sweep") and r["accuracy"] and r["accuracy"]["n"]]
    presets = sorted({r["preset"] for r in rows})
    panels = [("accuracy", "test accuracy (%)", lambda r: r["accuracy"], "linear")]
    if any(r.get("first_layer_gradient_norm") for r in rows):
        panels.append(("gradient", "first-layer gradient norm at init", lambda r:
                       (r.get("first_layer_gradient_norm") or {}).get("init"), "log"))
    out = []
    for name, ylabel, value, scale in panels:
        fig, axes = plt.subplots(1, len(presets), figsize=(5.5 * len(presets), 4), squeeze=False)
        for ax, preset in zip(axes[0], presets, strict=True):
            lines = sorted({sweep_line(r) for r in rows if r["preset"] == preset})
            for family, variant in lines:
                points = sorted((r["sweep"]["depth"], value(r)) for r in rows
                                if r["preset"] == preset and sweep_line(r) == (family, variant)
                                and value(r) and value(r)["n"])
                if points:
                    depths, stats = zip(*points, strict=True)
                    ax.errorbar(depths, [s["mean"] for s in stats], yerr=[s["std"] or 0 for s in stats],
                                linestyle=LINESTYLE[variant], marker="o", capsize=3,
                                label=family + SWEEP_SUFFIX[variant])
            ax.set_xlabel("depth (layers)")
            ax.set_ylabel(ylabel)
            ax.set_yscale(scale)
            ax.set_title(f"preset {preset}")
            ax.legend(fontsize=8)
        fig.suptitle(f"{doc['title']} ({doc['profile']} profile)", fontsize=10)
        fig.tight_layout()
        path = stem.with_name(f"{stem.name}_{name}_vs_depth.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        out.append((path, f"{ylabel} vs depth"))
    return out


def loss_curves(doc: dict, path: Path, limit: int = 12) -> Path | None:
    """Training (solid) and held-out (dashed) loss per epoch of the cells behind rows without a verdict for
    health reasons, one panel per row (at most `limit`), one line per seed; the dotted line is the class
    prior's entropy, where a net that learned nothing sits."""
    rows = [r for r in doc["rows"] if r.get("health", {}).get("status", "ok") != "ok"][:limit]
    cells = {(r["dataset"], r["model"], r["preset"]): [] for r in rows}
    for cell in doc["cells"]:
        key = (cell["dataset"], cell["model"], cell["preset"])
        if key in cells and cell.get("epoch_loss"):
            cells[key].append(cell)
    rows = [r for r in rows if cells[(r["dataset"], r["model"], r["preset"])]]
    if not rows:
        return None
    columns = min(4, len(rows))
    fig, axes = plt.subplots(-(-len(rows) // columns), columns, figsize=(4 * columns, 3 * -(-len(rows) // columns)),
                             squeeze=False)
    for ax in axes.flat[len(rows):]:
        ax.axis("off")
    for ax, row in zip(axes.flat, rows, strict=False):
        for cell in cells[(row["dataset"], row["model"], row["preset"])]:
            epochs = range(1, len(cell["epoch_loss"]) + 1)
            line, = ax.plot(epochs, cell["epoch_loss"], label=f"seed {cell['seed']}")
            if cell.get("heldout_loss"):
                ax.plot(epochs, cell["heldout_loss"], "--", color=line.get_color())
            ax.axhline(cell["prior_entropy"], color="grey", linestyle=":", linewidth=1)
        ax.set_title(f"{row['dataset']} {row['model']} [{row['preset']}]: {row['health']['status']}", fontsize=8)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss per head")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


COST_VARIANTS = {"baseline": "o", "se": "*", "se_weighted": "P", "dsn": "s", "snapshot": "D", "independent": "^"}


def cost_figure(doc: dict, path: Path) -> Path | None:
    """Accuracy against training time, one panel per data set and preset: is SE cheaper than the ensembles and
    controls it is compared with, at equal accuracy? (marker: the row's variant; colour: its pair)"""
    rows = [r for r in doc["rows"] if r["variant"] in COST_VARIANTS and r.get("train_seconds") and r["accuracy"]
            and r["accuracy"]["mean"] is not None]
    panels = list(dict.fromkeys((r["dataset"], r["preset"]) for r in rows))
    if not rows or len({r["variant"] for r in rows}) < 3:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4.2), squeeze=False)
    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    for ax, (dataset, preset) in zip(axes[0], panels, strict=True):
        for r in (r for r in rows if (r["dataset"], r["preset"]) == (dataset, preset)):
            ax.plot(r["train_seconds"], r["accuracy"]["mean"], COST_VARIANTS[r["variant"]], markersize=8,
                    color=f"C{pairs.index(r['pair'])}", alpha=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("training time per cell (s, log)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{dataset} [{preset}]", fontsize=9)
    handles = [plt.Line2D([], [], linestyle="", marker=m, color="gray", label=v) for v, m in COST_VARIANTS.items()]
    handles += [plt.Line2D([], [], linestyle="", marker="o", color=f"C{i}", label=p) for i, p in enumerate(pairs)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(f"{doc['title']}: accuracy against training cost (means over seeds)", fontsize=10)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
