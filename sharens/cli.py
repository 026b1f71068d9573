"""`python -m sharens {reproduce,report,list,download}`: the suite's command line."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

from sharens.data import DATASETS, DataError
from sharens.train.speed import SPEED_OPTIONS

PROFILES = ("smoke", "quick", "full")
# a GPU lease's tables, most valuable first: Table 3's seeds (its first comparable verdict), Figure 2, the ResNets
CAMPAIGN = ("table3_cifar10", "figure2_mnist", "resnet_cifar10")


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda asked for, but torch sees no CUDA device; use --device cpu or auto")
    return torch.device(name)


def _tables(ids: list[str] | None) -> list:
    """The tables named (default: every implemented one); raises benchmarks.UnknownTable (a ValueError)."""
    from benchmarks import TABLES, get_table

    return [get_table(t) for t in ids or TABLES]


def cmd_reproduce(args: argparse.Namespace) -> int:
    from sharens.execution.runner import run_table
    from sharens.report import markdown as report

    try:
        tables = _tables(args.table)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.seeds is not None and args.seeds < 1:
        print("error: --seeds must be at least 1", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print("error: --jobs must be at least 1", file=sys.stderr)
        return 2
    device = _device(args.device)
    failed = False
    for table in tables:
        start = time.perf_counter()
        options = dict(seeds=args.seeds, presets=args.preset, device=device, data_root=args.data_root,
                       force=args.force, jobs=args.jobs, speed=args.speed, rows=args.rows,
                       download=not (args.no_download or args.dry_run))  # a dry run fetches nothing
        where = dict(executor=args.executor, address=args.address)
        try:
            profile, planned = _choose_profile(table, args.profile, args.out, options)
            print(_plan_line(table.id, profile, planned, args.jobs), flush=True)
            if args.dry_run:
                continue
            out = _out(args.out, profile)
            run = run_table(table, profile, out=out, **options, **where, throughput=not args.no_throughput)
        except (DataError, ValueError) as exc:
            print(f"error: {table.id}: {exc}", file=sys.stderr)
            failed = True
            continue
        for error in run.errors:
            print(f"error: {table.id}: cell failed: {error}", file=sys.stderr)
        failed |= bool(run.errors)
        if run.reported:
            md, js = report.write(table, profile, run.reported, out, run.outcomes, run.throughput)
            print(f"{table.id}: {len(run.records)} cells in {time.perf_counter() - start:.0f} s -> {md}, {js}")
    return 1 if failed else 0


def _out(asked: Path | None, profile: str) -> Path:
    """The results folder: the one asked for, else where the committed results of the profile live."""
    from sharens.suite.store import results_folder

    return asked or results_folder(profile)


def _choose_profile(table, asked: str, out: Path | None, options: dict):
    """(profile, its planned run): the one asked for, or with `auto` the largest this device can finish
    (`costs.CPU_BUDGET_S` on a CPU; a GPU runs `full`), saying what is left for a GPU and why."""
    from sharens.execution.costs import CPU_BUDGET_S
    from sharens.execution.runner import run_table

    def planned(name):
        return run_table(table, name, out=_out(out, name), **options, execute=False, estimate=True)

    if asked != "auto":
        return asked, planned(asked)
    if options["device"].type == "cuda":
        return "full", planned("full")
    for name in ("full", "quick"):
        run = planned(name)
        wall = run.estimated_seconds / options["jobs"]
        if wall <= CPU_BUDGET_S:
            return name, run
        print(f"{table.id}: `{name}` would take about {_duration(wall)} on this CPU, more than the "
              f"{_duration(CPU_BUDGET_S)} a CPU run is given; left for a GPU (`--device cuda`)", flush=True)
    return "smoke", planned("smoke")


def _plan_line(table_id: str, profile: str, run, jobs: int) -> str:
    """What a run of the table will do, with the cost model's estimate for the cells still to run."""
    line = (f"{table_id} at {profile}: {run.planned} cells planned, {len(run.records)} stored, "
            f"{len(run.errors)} to run" + (f" ({run.resumable} resume from a checkpoint)" if run.resumable else ""))
    if run.errors:
        expected, bound = _duration(run.estimated_seconds / jobs), _duration(run.bound_seconds / jobs)
        line += (f"; estimated {expected}" + (f" (at most {bound}, every epoch cap reached)" if bound != expected
                                               else "") + f" on {run.device_name}"
                 + (f" with {jobs} jobs" if jobs > 1 else ""))
    if run.downloads:
        fetches: dict[str, list[str]] = {}  # one download can serve two data sets (GTZAN's two splits)
        for name, size in run.downloads.items():
            fetches.setdefault(size, []).append(name)
        line += "; would download " + "; ".join(f"{', '.join(names)}: {size}" for size, names in fetches.items())
    return line


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def cmd_report(args: argparse.Namespace) -> int:
    """Rebuild `<table>.{md,json,png}` from the cell records a run stored (no training): from a table document,
    or with --profile from the cell store of the current plan (a run still in progress, or one cut short)."""
    from benchmarks import UnknownTable, get_table
    from sharens.report import markdown as report
    from sharens.suite.store import Outcomes, read_document

    if args.profile:
        try:
            line = _report_stored(get_table(args.table), args.profile, args.out, args.data_root)
        except (UnknownTable, DataError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if line is None:
            print(f"error: no stored cells of {args.table} at {args.profile} under {args.out}/cells", file=sys.stderr)
            return 1
        print(line)
        return 0

    source = args.source or args.out / f"{args.table}.json"
    try:
        table = get_table(args.table)
        doc = read_document(source)
    except UnknownTable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"error: cannot read the stored results {source}: {exc}; run `python -m sharens reproduce "
              f"--table {args.table}` first", file=sys.stderr)
        return 1
    if doc.get("table") != table.id:
        print(f"error: {source} holds table {doc.get('table')!r}, not {table.id!r}", file=sys.stderr)
        return 2
    try:
        md, js = report.write(table, doc["profile"], doc["cells"], args.out,
                              Outcomes.from_pack(source.with_name(f"{table.id}.outcomes.npz")),
                              doc.get("throughput") or [])
    except ValueError as exc:  # a stored cell the table no longer has, or outcomes that fail their checksum
        print(f"error: {source}: {exc}", file=sys.stderr)
        return 1
    print(f"{table.id}: {len(doc['cells'])} stored cells -> {md}, {js}")
    return 0


def cmd_site(args: argparse.Namespace) -> int:
    from sharens.report import readme, site

    index = site.write(args.results)
    print(f"{len(list(args.results.rglob('*.html')))} pages -> {index}")
    if readme.update(args.results.parent / "README.md", args.results):
        print(f"results block -> {args.results.parent / 'README.md'}")
    if args.screenshot:
        try:
            print(f"-> {site.screenshot(index, args.browser)}")
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"error: the screenshot failed: {exc}", file=sys.stderr)
            return 1
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from benchmarks import TABLES, get_table
    from sharens.train.presets import PRESETS, describe

    for table_id in args.table or TABLES:
        table = get_table(table_id)
        print(f"{table.id}: {table.title}")
        print(f"  data sets: {', '.join(table.datasets)}")
        print(f"  rows run: {', '.join(r.label for r in table.rows() if r.variant != 'cited')}")
        if table.cited:
            print(f"  rows cited from the paper, not re-run: {', '.join(table.cited)}")
        for profile in table.profiles.values():
            print(f"  profile {profile.name}: {profile.description}")
            if args.costs:
                print(f"    cost: {_profile_cost(table, profile.name, _device(args.device), args.data_root)}")
        print(f"  presets run by default: {', '.join(table.presets)}")
        for preset in table.preset_overrides.values():
            print(f"  preset {preset.name} (this table's): {describe(preset.config())}; {preset.why}")
    for preset in PRESETS.values():
        print(f"preset {preset.name}: {describe(preset.config())}; {preset.why}")
    return 0


def _profile_cost(table, profile: str, device: torch.device, data_root: Path | None) -> str:
    """The cost model's time for a whole profile of the table, and for what is still to run of it."""
    from sharens.execution.runner import run_table

    try:
        run = run_table(table, profile, out=_out(None, profile), device=device, data_root=data_root,
                        execute=False, estimate=True, estimate_plan=True)
    except DataError as exc:
        return f"unknown ({exc})"
    return (f"at most {_duration(run.plan_bound_seconds)} for its {run.planned} cells on {run.device_name}, "
            f"one at a time; {len(run.records)} stored, the rest about {_duration(run.estimated_seconds)}")


def cmd_download(args: argparse.Namespace) -> int:
    from sharens.data import data_root, download

    for name in args.dataset:
        try:
            download(name, data_root(args.data_root))
        except DataError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


def _seconds(text: str) -> float:
    """'25m', '90s', '1.5h' or plain seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 25m, 90s or 1.5h") from None


def _report_stored(table, profile: str, out: Path, data_root: Path | None) -> str | None:
    """Rewrite a table's report at `profile` from its stored cells (and its older committed ones); the line
    saying so, or None when there is no cell to report."""
    from sharens.execution.runner import run_table
    from sharens.report import markdown as report

    run = run_table(table, profile, out=out, data_root=data_root, execute=False)
    if not run.reported:
        return None
    md, js = report.write(table, profile, run.reported, out, run.outcomes, run.throughput)
    return f"{table.id} at {profile}: {len(run.reported)} stored cells ({len(run.errors)} not run yet) -> {md}, {js}"


def _rebuild_reports(pairs, out: Path, data_root: Path | None) -> None:
    """Rewrite the reports of (table, profile) pairs from their stored cells."""
    from benchmarks import get_table

    for table_id, profile in pairs:
        line = _report_stored(get_table(table_id), profile, out, data_root)
        if line:
            print(line)


def cmd_campaign(args: argparse.Namespace) -> int:
    """The pending `full` network cells of the image tables, most valuable first, within --budget."""
    from benchmarks import get_table
    from sharens.lease.campaign import pack, run_campaign

    tables = [get_table(t) for t in args.table or CAMPAIGN]
    try:
        done = run_campaign(tables, device=_device(args.device), budget_s=args.budget, out=args.out,
                            data_root=args.data_root, speed=args.speed, profile=args.profile)
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    cells = len({path.with_suffix("") for path in done.finished})
    print(f"campaign at {args.profile}: {cells} cells finished in {done.seconds:.0f} s of a {args.budget:.0f} s "
          f"budget; {len(done.left)} left for a later lease")
    for line in done.left[:10] + done.failed:
        print(f"  {line}")
    _rebuild_reports([(t, args.profile) for t in done.tables], args.out, args.data_root)
    if args.pack and done.finished:
        archives, left = pack(done.finished, args.out, args.pack)
        print(f"packed into {', '.join(str(a) for a in archives)}"
              + (f"; {len(left)} files did not fit and stay in {args.out}/cells" if left else ""))
    return 1 if done.failed else 0


def cmd_stage(args: argparse.Namespace) -> int:
    """Stage the campaign's data for a GPU lease: chunk folders to carry one per call, and the script to run."""
    from benchmarks import get_table
    from sharens.lease.staging import stage

    try:
        chunk_bytes = None if args.chunk_mib is None else int(args.chunk_mib * 2**20)
        chunks = stage([get_table(t) for t in args.table or CAMPAIGN], args.dir, chunk_bytes, args.data_root)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for i, chunk in enumerate(chunks, 1):
        step = f"sh {chunk / 'run.sh'} BUDGET" if i == len(chunks) else "true"
        print(f"call {i}: carry {chunk}, run: {step}")
    print(f"then: python -m sharens unpack <the files that came back> --out {Path('results')}")
    return 0


def cmd_unpack(args: argparse.Namespace) -> int:
    """Put the cells a lease brought back into the results folder and rebuild their tables' reports."""
    from sharens.lease.campaign import unpack

    try:
        pairs = unpack(args.archive, args.out)
        _rebuild_reports(pairs, args.out, args.data_root)
    except (DataError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Rerun a sample of committed cells here; exit 1 when a verdict would change, 2 on bad input."""
    from sharens.verify import Sample, lines, verify

    try:
        tables = _tables(args.table)
        sample = Sample(args.sample, args.seed, args.cheapest)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    changed = False
    for table in tables:
        try:
            found = verify(table, args.profile, results=_out(args.results, args.profile), sample=sample,
                           data_root=args.data_root, out=args.out, jobs=args.jobs, force=args.force)
        except (DataError, ValueError, RuntimeError) as exc:
            print(f"error: {table.id}: {exc}", file=sys.stderr)
            return 2
        print("\n".join(lines(found)), flush=True)
        changed |= bool(found["changes"])
    return 1 if changed else 0


def cmd_throughput(args: argparse.Namespace) -> int:
    """Measure the step times of a table's pairs on this device where none are stored, then rewrite its report
    from its stored cells (nothing else is trained)."""
    from sharens.execution.runner import pair_throughput, pending

    try:
        tables = _tables(args.table)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    device = _device(args.device)
    for table in tables:
        out = _out(args.out, args.profile)
        try:
            work = pending(table, args.profile, out=out, device=device, data_root=args.data_root)
            found = pair_throughput(table, work.keyed, work.store, out, device, args.data_root, measure=True)
            line = _report_stored(table, args.profile, out, args.data_root)
        except (DataError, ValueError) as exc:
            print(f"error: {table.id}: {exc}", file=sys.stderr)
            return 2
        print(f"{table.id} at {args.profile}: {len(found)} pair measurements; {line}", flush=True)
    return 0


def cmd_coverage(args: argparse.Namespace) -> int:
    """Simulate the coverage of the interval every verdict rests on and store it where reports quote it."""
    from sharens.judge import coverage

    path = coverage.write()
    found = coverage.stored()
    print(f"{coverage.summary(found)}; widest against its allowance {found['max_width_over_bound']:.2f} -> {path}")
    return 0


def _tables_at_profile(command: argparse.ArgumentParser) -> None:
    """--table (repeatable) and --profile (default full), for the commands that work on committed results."""
    command.add_argument("--table", action="append", metavar="ID",
                         help="table id (repeatable; default: every table)")
    command.add_argument("--profile", choices=PROFILES, default="full")


def _speed_argument(command: argparse.ArgumentParser) -> None:
    command.add_argument("--speed", action="append", choices=SPEED_OPTIONS, default=[], metavar="OPTION",
                         help="switch on a speed.Speed option beyond the device's defaults (repeatable): "
                              f"{', '.join(SPEED_OPTIONS)}. On CUDA bf16, channels_last and batched_members are "
                              "on already; compile pays on a GPU for long runs. Recorded in each cell")


def parser() -> argparse.ArgumentParser:
    from sharens.execution.executors import EXECUTORS

    p = argparse.ArgumentParser(prog="python -m sharens", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("reproduce", help="train, compare with the paper, write results/<table>.{md,json}")
    r.add_argument("--table", action="append", metavar="ID",
                   help="table id (repeatable; default: every implemented table); see `python -m sharens list`")
    r.add_argument("--profile", choices=("auto", *PROFILES), default="auto",
                   help="auto (default): full on a GPU; on a CPU the largest profile each table can finish there")
    r.add_argument("--seeds", type=int, default=None,
                   help="run seeds 0..N-1 (default: the profile's); the report keeps the other stored seeds")
    r.add_argument("--preset", action="append", default=None,
                   help="optimizer preset to run, e.g. tuned, paper, he2016 (repeatable; default: the table's presets, "
                        "see `list`); the report keeps the stored cells of the table's other presets")
    r.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    r.add_argument("--data-root", type=Path, default=None,
                   help="data root (default: $SHARENS_DATA, else datasets/)")
    r.add_argument("--out", type=Path, default=None,
                   help="results folder (default: results/ for full, results/<profile>/ for smoke and quick, "
                        "where the committed results of each profile live)")
    r.add_argument("--force", action="store_true", help="redo finished cells instead of resuming")
    r.add_argument("--jobs", type=int, default=1,
                   help="CPU worker processes, one thread and one cell at a time each (default 1)")
    r.add_argument("--executor", choices=sorted(EXECUTORS), default=None,
                   help="where cells run (default: processes with --jobs > 1, else here); ray: one task per cell")
    r.add_argument("--address", default=None,
                   help="with --executor ray: the cluster's address, e.g. 10.0.0.5:6379 (default: a local one)")
    _speed_argument(r)
    r.add_argument("--rows", action="append", metavar="LABEL", default=None,
                   help="run only the rows with this label (repeatable, e.g. 'Deep CNN+SE'); the report keeps "
                        "every stored cell")
    r.add_argument("--no-download", action="store_true",
                   help="never download: a missing data set is an error that names what to fetch and from where")
    r.add_argument("--no-throughput", action="store_true",
                   help="do not time SE against its baseline after the cells (on a busy machine, say); the report "
                        "keeps the measurements stored, and `throughput` takes the missing ones later")
    r.add_argument("--dry-run", action="store_true",
                   help="print how many cells each table plans, has stored and has still to run; run nothing")
    r.set_defaults(func=cmd_reproduce)

    rep = sub.add_parser("report", help="rebuild a table's report from its stored cell records (no training)")
    rep.add_argument("--table", required=True, metavar="ID")
    rep.add_argument("--source", type=Path, default=None, help="stored results (default: <out>/<table>.json)")
    rep.add_argument("--profile", choices=PROFILES, default=None,
                     help="build from the cell store of this profile's current plan instead of a table document")
    rep.add_argument("--data-root", type=Path, default=None, help="data root (with --profile: keys the cells)")
    rep.add_argument("--out", type=Path, default=Path("results"))
    rep.set_defaults(func=cmd_report)

    si = sub.add_parser("site", help="rewrite a results tree's HTML pages and index from its reports")
    si.add_argument("--results", type=Path, default=Path("results"), help="the tree's root (default results/)")
    si.add_argument("--screenshot", action="store_true",
                    help="also save index.screenshot.png as headless Chromium shows the index")
    si.add_argument("--browser", default="chromium", help="the Chromium to run (default: chromium on PATH)")
    si.set_defaults(func=cmd_site)

    lst = sub.add_parser("list", help="tables, models, profiles and presets")
    lst.add_argument("--table", action="append", metavar="ID", help="only these tables (repeatable)")
    lst.add_argument("--costs", action="store_true",
                     help="add each profile's time on this device from the cost model (times each model once)")
    lst.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    lst.add_argument("--data-root", type=Path, default=None)
    lst.set_defaults(func=cmd_list)

    d = sub.add_parser("download", help="fetch official data files into the data root (needs internet)")
    d.add_argument("dataset", nargs="+", choices=DATASETS)
    d.add_argument("--data-root", type=Path, default=None)
    d.set_defaults(func=cmd_download)

    c = sub.add_parser("campaign", help="a GPU lease's work: pending full cells of the image tables, within a budget")
    c.add_argument("--table", action="append", metavar="ID", help=f"default, in this order: {', '.join(CAMPAIGN)}")
    c.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    c.add_argument("--budget", type=_seconds, required=True, help="wall time it may use, e.g. 25m")
    c.add_argument("--profile", choices=PROFILES, default="full", help="default full (smaller: to try it on a CPU)")
    c.add_argument("--pack", type=Path, default=None,
                   help="write the finished cells here as at most 8 tar files of at most 16 MiB (e.g. $OUT)")
    c.add_argument("--data-root", type=Path, default=None)
    c.add_argument("--out", type=Path, default=Path("results"))
    _speed_argument(c)
    c.set_defaults(func=cmd_campaign)

    st = sub.add_parser("stage", help="stage the campaign's data in chunk folders for a GPU lease")
    st.add_argument("--table", action="append", metavar="ID")
    st.add_argument("--dir", type=Path, default=Path(".lease"), help="a git-ignored folder (default .lease)")
    st.add_argument("--chunk-mib", type=float, default=None,
                    help="MiB per chunk (default: all that a call carries beside the checkout's files)")
    st.add_argument("--data-root", type=Path, default=None)
    st.set_defaults(func=cmd_stage)

    v = sub.add_parser("verify", help="rerun a sample of committed cells here: their drift, and any verdict that "
                                      "would change (exit 1)")
    _tables_at_profile(v)
    v.add_argument("--sample", type=int, default=20, metavar="N", help="cells to rerun per table (default 20)")
    v.add_argument("--seed", type=int, default=0, help="which cells: the draw's seed (default 0)")
    v.add_argument("--cheapest", action="store_true", help="the N cheapest cells (by committed wall time) instead")
    v.add_argument("--results", type=Path, default=None,
                   help="the committed results (default: results/ for full, results/<profile>/ otherwise)")
    v.add_argument("--out", type=Path, default=Path("results") / "verify",
                   help="where the reruns and <table>.<profile>.json go (default results/verify)")
    v.add_argument("--jobs", type=int, default=1, help="CPU worker processes (default 1)")
    v.add_argument("--force", action="store_true", help="rerun cells this folder already reran")
    v.add_argument("--data-root", type=Path, default=None)
    v.set_defaults(func=cmd_verify)

    tp = sub.add_parser("throughput", help="measure each pair's step times on this device (where none are stored) "
                                           "and rewrite the table's report")
    _tables_at_profile(tp)
    tp.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    tp.add_argument("--out", type=Path, default=None,
                    help="results folder (default: results/ for full, results/<profile>/ otherwise)")
    tp.add_argument("--data-root", type=Path, default=None)
    tp.set_defaults(func=cmd_throughput)

    cov = sub.add_parser("coverage", help="simulate the verdicts' interval's coverage -> sharens/coverage.json")
    cov.set_defaults(func=cmd_coverage)

    u = sub.add_parser("unpack", help="put the cells a lease brought back into the results and rebuild reports")
    u.add_argument("archive", nargs="+", type=Path)
    u.add_argument("--data-root", type=Path, default=None)
    u.add_argument("--out", type=Path, default=Path("results"))
    u.set_defaults(func=cmd_unpack)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)
