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
    return _save(fig, path, f"{doc['title']} — bars: ours (dots: seeds), ticks: paper", dpi=110)


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
        path = _save(fig, stem.with_name(f"{stem.name}_{name}_vs_depth.png"),
                     f"{doc['title']} ({doc['profile']} profile)", dpi=110)
        out.append((path, f"{ylabel} vs depth"))
    return out


def unhealthy_curves(doc: dict) -> dict[tuple, list[dict]]:
    """{(data set, model, preset): its cells that recorded loss curves} for each row without a verdict for
    health reasons (an empty list where none of its cells recorded any)."""
    cells = {(r["dataset"], r["model"], r["preset"]): [] for r in doc["rows"]
             if r.get("health", {}).get("status", "ok") != "ok"}
    for cell in doc["cells"]:
        key = (cell["dataset"], cell["model"], cell["preset"])
        if key in cells and cell.get("epoch_loss"):
            cells[key].append(cell)
    return cells


def loss_curves(doc: dict, path: Path, limit: int = 12) -> Path | None:
    """Training (solid) and held-out (dashed) loss per epoch of the cells behind rows without a verdict for
    health reasons, one panel per row (at most `limit`), one line per seed; the dotted line is the class
    prior's entropy, where a net that learned nothing sits."""
    cells = unhealthy_curves(doc)
    rows = [r for r in doc["rows"] if cells.get((r["dataset"], r["model"], r["preset"]))][:limit]
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
    return _save(fig, path, dpi=100)


COST_VARIANTS = {"baseline": "o", "se": "*", "se_weighted": "P", "dsn": "s", "snapshot": "D", "independent": "^"}


COST_AXES = (("train_seconds", "training time per cell (s, log)"), ("params", "parameters (log)"),
             ("flops_per_sample", "forward FLOPs per sample (log)"))


def cost_figure(doc: dict, path: Path) -> Path | None:
    """Accuracy against training time, parameters and forward FLOPs (one row each), one column per data set and
    preset: is SE cheaper than the ensembles and controls it is compared with, at equal accuracy? (marker: the
    row's variant; colour: its pair)"""
    rows = [r for r in doc["rows"] if r["variant"] in COST_VARIANTS and r.get("train_seconds") and r["accuracy"]
            and r["accuracy"]["mean"] is not None]
    panels = list(dict.fromkeys((r["dataset"], r["preset"]) for r in rows))
    if not rows or len({r["variant"] for r in rows}) < 3:
        return None
    fig, axes = plt.subplots(len(COST_AXES), len(panels), figsize=(4.8 * len(panels), 3.6 * len(COST_AXES)),
                             squeeze=False)
    pairs = list(dict.fromkeys(r["pair"] for r in rows))
    for (key, label), line in zip(COST_AXES, axes, strict=True):
        for ax, (dataset, preset) in zip(line, panels, strict=True):
            for r in (r for r in rows if (r["dataset"], r["preset"]) == (dataset, preset) and r.get(key)):
                ax.plot(r[key], r["accuracy"]["mean"], COST_VARIANTS[r["variant"]], markersize=8,
                        color=f"C{pairs.index(r['pair'])}", alpha=0.8)
            ax.set_xscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(f"{dataset} [{preset}]", fontsize=9)
    handles = [plt.Line2D([], [], linestyle="", marker=m, color="gray", label=v) for v, m in COST_VARIANTS.items()]
    handles += [plt.Line2D([], [], linestyle="", marker="o", color=f"C{i}", label=p) for i, p in enumerate(pairs)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    return _save(fig, path, f"{doc['title']}: accuracy against training cost, parameters and FLOPs (means over "
                 "seeds)", rect=(0, 0.04, 1, 1))  # room for the legend below


ANALYSED_VARIANTS = ("baseline", "se", "dsn", "snapshot", "independent")


def _analysis_panels(doc: dict, need: str) -> tuple[list[dict], list[tuple]]:
    rows = [r for r in doc["rows"] if r["variant"] in ANALYSED_VARIANTS and (r.get("analysis") or {}).get(need)]
    return rows, list(dict.fromkeys((r["dataset"], r["preset"], r["pair"]) for r in rows))


def _save(fig, path: Path, title: str | None = None, dpi: int = 90,
          rect: tuple[float, float, float, float] = (0, 0, 1, 1)) -> Path:
    """Title, lay out, write and close a figure."""
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _label_panel(ax, panel: tuple, xlabel: str, ylabel: str) -> None:
    """Axis labels, the panel's (data set, preset, pair) as its title, and a small legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(" / ".join(str(p) for p in panel), fontsize=8)
    ax.legend(fontsize=6)


def _grid(count: int, width: float = 4.2, height: float = 3.8):
    columns = min(4, count)
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.axis("off")
    return fig, axes.flat


def reliability_figure(doc: dict, path: Path) -> Path | None:
    """Reliability diagrams (accuracy against confidence per bin, all seeds' test rows pooled), one panel per
    data set, preset and pair: baseline, SE, DSN, snapshots and the independent ensemble, before temperature
    scaling (solid) and after (dashed)."""
    rows, panels = _analysis_panels(doc, "reliability")
    if not panels:
        return None
    fig, axes = _grid(len(panels))
    for ax, panel in zip(axes, panels, strict=False):
        ax.plot([0, 1], [0, 1], color="gray", linewidth=0.8)
        for r in (r for r in rows if (r["dataset"], r["preset"], r["pair"]) == panel):
            color = f"C{ANALYSED_VARIANTS.index(r['variant'])}"
            for when, style in (("before", "-"), ("after", "--")):
                bins = r["analysis"]["reliability"].get(when)
                if not bins:
                    continue
                kept = [i for i, n in enumerate(bins["rows"]) if n > 0]
                ax.plot([bins["confidence"][i] / bins["rows"][i] for i in kept],
                        [bins["correct"][i] / bins["rows"][i] for i in kept], style, marker=".", color=color,
                        label=f"{r['variant']} ({when} T)" if when == "after" else r["variant"])
        _label_panel(ax, panel, "confidence (top class score)", "accuracy")
    return _save(fig, path, f"{doc['title']}: reliability of each row's vote (dashed: after temperature scaling)")


def anytime_figure(doc: dict, path: Path) -> Path | None:
    """Accuracy against forward FLOPs per sample, one panel per data set, preset and pair: stopping at each tap
    of SE or DSN (the vote of the heads so far) or after the first k members or snapshots, and SE's
    confidence-threshold early exit; bands: ± one std over seeds."""
    rows, panels = _analysis_panels(doc, "anytime")
    if not panels:
        return None
    baselines = {(r["dataset"], r["preset"], r["pair"]): r for r in doc["rows"] if r["variant"] == "baseline"}
    fig, axes = _grid(len(panels))
    for ax, panel in zip(axes, panels, strict=False):
        for r in (r for r in rows if (r["dataset"], r["preset"], r["pair"]) == panel):
            color, curve = f"C{ANALYSED_VARIANTS.index(r['variant'])}", r["analysis"]["anytime"]
            x = [p["flops"] for p in curve]
            y = [p["accuracy"] for p in curve]
            band = [p["accuracy_std"] or 0.0 for p in curve]
            ax.plot(x, y, "-o", color=color, markersize=3, label=f"{r['variant']}: stop at tap / member")
            ax.fill_between(x, [a - b for a, b in zip(y, band, strict=True)],
                            [a + b for a, b in zip(y, band, strict=True)], color=color, alpha=0.15)
            exits = r["analysis"].get("early_exit")
            if exits:
                full = curve[-1]["flops"]
                ax.plot([p["flops_share"] * full for p in exits], [p["accuracy"] for p in exits], ":^",
                        color=color, markersize=3, label=f"{r['variant']}: early exit")
        base = baselines.get(panel)
        if base and base.get("flops_per_sample") and base["accuracy"] and base["accuracy"]["mean"] is not None:
            ax.plot(base["flops_per_sample"], base["accuracy"]["mean"], "ks", label="baseline")
        ax.set_xscale("log")
        _label_panel(ax, panel, "forward FLOPs per sample (log)", "test accuracy (%)")
    return _save(fig, path, f"{doc['title']}: anytime accuracy and early exit against compute")
