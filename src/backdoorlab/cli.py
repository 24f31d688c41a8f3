"""The `backdoorlab` command line: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import inspect
import re
import shlex
import sys
import types
import typing
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

import backdoorlab
from backdoorlab.errors import BackdoorlabError
from backdoorlab.experiment.executors import EXECUTORS
from backdoorlab.metrics.core import pct
from backdoorlab.models.foreign import KEY_MAPS

KEY_MAP_NAMES = list(KEY_MAPS)


def _table_of_run(result: backdoorlab.RunResult) -> Table:
    cfg = result.config
    table = Table(
        title=f"{cfg.name}: {cfg.attack.name} on {cfg.dataset.name} / {cfg.model.name}, "
        f"defense {cfg.defense.name}"
    )
    for col in ("ACC", "ASR", "RA", "poisoned", "train s", "total s"):
        table.add_column(col, justify="right")
    m = result.metrics
    table.add_row(
        pct(m.acc),
        pct(m.asr),
        pct(m.ra),
        str(result.poisoned.count),
        f"{result.timings['train_s']:.1f}",
        f"{result.timings['total_s']:.1f}",
    )
    return table


def cmd_run(args: argparse.Namespace, console: Console) -> None:
    result = backdoorlab.run(
        args.config,
        overrides=args.overrides,
        out=args.out,
        db=args.db,
        progress=not args.quiet,
        overwrite=args.overwrite,
    )
    if result.rank != 0:  # under torchrun, rank 0 speaks for the run
        return
    console.print(_table_of_run(result))
    console.print(f"saved to {result.out_dir}")


def cmd_triggers(args: argparse.Namespace, console: Console) -> None:
    path = backdoorlab.plot_triggers(
        args.config, args.out, overrides=args.overrides, count=args.count, run_dir=args.run_dir
    )
    console.print(f"wrote {path}")


def cmd_analyze(args: argparse.Namespace, console: Console) -> None:
    from backdoorlab.analysis import ANALYSES, analyze

    a = ANALYSES[args.what]
    flags = {k for entry in ANALYSES.values() for k in entry.options}  # every analyze option
    given = {k: getattr(args, k) for k in sorted(flags) if getattr(args, k) is not None}
    stray = [f"--{k}" for k in given if k not in a.options]
    if stray:
        takes = ", ".join(f"--{k}" for k in a.options) or "no option"
        raise backdoorlab.ConfigError(
            f"analyze {args.what}: {', '.join(stray)} does not apply (it takes {takes})"
        )
    result = analyze(args.what, args.run, args.out, benign=args.benign, **given)
    if a.summary is not None:
        console.print(a.summary(result), highlight=False)
    console.print(f"wrote {args.out}")


def _executor_options(args: argparse.Namespace, console: Console) -> dict:
    return {
        "executor": args.executor,
        "address": args.address,
        "cpus": args.cpus,
        "progress": not args.quiet,
        "say": lambda line: console.print(line, highlight=False, soft_wrap=True),
    }


def _cache_folder(value: str) -> str:
    """A sweep's stage-cache folder; a switch word would otherwise become a folder's name."""
    if value.lower() in {"false", "true", "off", "on", "no", "yes", "none", "0", "1"}:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a folder: a sweep always keeps its stages (shared by its cells)"
        )
    return value


def cmd_sweep(args: argparse.Namespace, console: Console) -> None:
    import json

    from backdoorlab.experiment.sweep import plan, sliced, sweep

    if args.dry_run:  # every cell's resolved config, one JSON line each; nothing runs
        cells = sliced(plan(args.sweep, args.profile), _slice(args.only))
        for c in cells:
            line = {"cell": c.label, "key": c.key, "config": c.config.to_dict()}
            print(json.dumps(line, sort_keys=True))
        print(f"{len(cells)} cells", file=sys.stderr)
        return
    options = _executor_options(args, console)
    result = sweep(
        args.sweep,
        args.out,
        profile=args.profile,
        cache=args.cache,
        reverse=args.reverse,
        merge=args.merge,
        only=_slice(args.only),
        **options,
    )
    if args.report is not None:  # written whatever failed: it shows what is missing
        _report(args, console, result.db, args.report or None, sweep=result.spec.name)
    _sweep_tally(result, console)


def _slice(pairs: list[str]) -> dict[str, list[str]]:
    """--only AXIS=LABEL[,LABEL...] (repeatable) as `only` of `sweep`."""
    out: dict[str, list[str]] = {}
    for pair in pairs:
        axis, sep, labels = pair.partition("=")
        if not sep or not axis or not labels:
            raise backdoorlab.ConfigError(f"--only {pair!r}: write AXIS=LABEL[,LABEL...]")
        out.setdefault(axis, []).extend(labels.split(","))
    return out


def _sweep_tally(result, console: Console) -> None:
    console.print(
        f"{result.ran} cells ran, {result.skipped} were finished before, "
        f"{len(result.failures)} failed; results in {result.db}",
        highlight=False,
    )
    if result.failures:
        raise backdoorlab.BackdoorlabError(
            f"{len(result.failures)} sweep cells failed (start again to retry them): "
            + "; ".join(result.failures)
        )


def _print_sections(sections, console: Console) -> None:
    for s in sections:
        if s.grid is not None:
            table = Table(title=s.title, title_justify="left")
            table.add_column(s.corner)
            for c in s.grid.columns:
                table.add_column(f"{c} ACC", justify="right")
                table.add_column(f"{c} ASR", justify="right")
            for label, cells in s.grid.pairs():
                table.add_row(label, *(v for pair in cells for v in pair))
            console.print(table)
        if s.table is not None:
            head, *rows = s.table
            table = Table(title=s.title, title_justify="left")
            for i, h in enumerate(head):
                table.add_column(h, justify="left" if i < 3 else "right")
            for row in rows:
                table.add_row(*row)
            console.print(table)
        for note in s.notes:
            console.print(note, highlight=False)


def _report(args: argparse.Namespace, console: Console, db, out, **options) -> None:
    """Write (or print) a report with the command line recorded, and show its tables."""
    from backdoorlab.report import report

    command = shlex.join(["backdoorlab", *args.argv]) if args.record_command else None
    path, sections = report(db, out, fmt=args.fmt, command=command, notes=args.notes, **options)
    _print_sections(sections, console)
    if path is not None:
        console.print(f"wrote {path}")


def cmd_report(args: argparse.Namespace, console: Console) -> None:
    _report(
        args, console, args.db, args.out,
        sweep=args.sweep, tables=args.table, figures=args.figure, runs=args.runs,
    )  # fmt: skip


def _overrides(pairs: list[str], section: str) -> dict:
    """`--set section.key=value` pairs as {key: value} (nested keys keep their dots' nesting)."""
    from backdoorlab.experiment.config import apply_overrides

    raw = apply_overrides({}, pairs)
    unknown = sorted(set(raw) - {section})
    if unknown:
        raise backdoorlab.ConfigError(f"--set: only {section}.KEY=VALUE here, not {unknown[0]}.*")
    return raw.get(section, {})


@contextmanager
def _working(console: Console, text: str):
    """A spinner with the elapsed time while a long call runs (Neural Cleanse takes minutes)."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        bar.add_task(text, total=None)
        yield


def _weight_files(folder: str) -> list[Path]:
    """The weight files (.pt, .pth, .safetensors) directly inside `folder`, sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise backdoorlab.ConfigError(f"--references {folder}: not a folder of weight files")
    files = sorted(
        p for p in root.iterdir() if p.is_file() and p.suffix in (".pt", ".pth", ".safetensors")
    )
    if not files:
        raise backdoorlab.ConfigError(f"--references {folder}: holds no .pt or .safetensors file")
    return files


def _yours(args: argparse.Namespace):
    """The user's data and model from the shared arguments, checked before any work."""
    from backdoorlab.data.user import load_user_data

    data = load_user_data(args.data, num_classes=args.classes)
    return _your_model(args, data, args.weights), data


def _your_model(args: argparse.Namespace, data, weights):
    """The model of --arch with `weights`, fitted to `data`."""
    from backdoorlab.byo.api import user_model

    return user_model(
        weights,
        args.arch,
        data,
        options=_overrides([f"arch.{kv}" for kv in args.arch_set], "arch"),
        key_map=args.key_map,
        mean=args.mean,
        std=args.std,
        num_classes=args.classes,
    )


def _trigger_options(args: argparse.Namespace) -> dict:
    return {"trigger": args.trigger, "target": args.target, "mask": args.mask, "alpha": args.alpha}


def _metrics_table(title: str, rows: list[tuple[str, dict | None]]) -> Table:
    table = Table(title=title)
    for col in ("model", "ACC", "ASR", "RA"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for label, m in rows:
        if m is not None:
            table.add_row(label, pct(m.get("acc")), pct(m.get("asr")), pct(m.get("ra")))
    return table


def cmd_evaluate(args: argparse.Namespace, console: Console) -> None:
    from backdoorlab.byo.api import evaluate, save_evaluation
    from backdoorlab.records.files import check_out

    if args.out:
        check_out(Path(args.out), args.overwrite)
    model, data = _yours(args)
    with _working(console, f"evaluating on {len(data)} images"):
        m = evaluate(model, data, device=args.device, **_trigger_options(args))
    title = f"{args.weights} on {args.data} ({m['images']} images)"
    console.print(_metrics_table(title, [("yours", m)]))
    if args.out:
        source = {"model": str(args.weights), "arch": args.arch, "data": str(args.data)}
        out = save_evaluation(m, args.out, source=source, overwrite=args.overwrite)
        console.print(f"saved to {out}")


def _repair_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The repair's keyword arguments from --plan and --set: a named defense's settings, or for
    auto its plan and each repair's settings (--set defense.aft.eps=0.2)."""
    options = _overrides(args.overrides, "defense")
    if args.defense != "auto":
        if args.plan is not None:
            raise backdoorlab.ConfigError(f"--plan belongs to --defense auto, not {args.defense}")
        return options
    plan = None if args.plan is None else [n.strip() for n in args.plan.split(",") if n.strip()]
    given = {"plan": plan, "plan_options": options or None}
    return {k: v for k, v in given.items() if v is not None}


def cmd_repair(args: argparse.Namespace, console: Console) -> int:
    from backdoorlab.byo.api import repair, save_repair
    from backdoorlab.records.files import check_out

    check_out(Path(args.out), args.overwrite)
    model, data = _yours(args)
    options = _repair_settings(args)
    console.print(f"repairing with {args.defense} on {len(data)} clean images")
    repaired, report = repair(
        model,
        data,
        args.defense,
        test=args.test,
        device=args.device,
        seed=args.seed,
        evidence=args.evidence,
        progress=not args.quiet,
        **api_kwargs(args, REPAIR_AUTO),
        **_trigger_options(args),
        **options,
    )
    source = {
        "model": str(args.weights),
        "arch": args.arch,
        "data": str(args.data),
        "test": None if args.test is None else str(args.test),
        "trigger": None if args.trigger is None else str(args.trigger),
        "target": args.target,
    }
    out = save_repair(repaired, report, args.out, source=source, overwrite=args.overwrite)
    console.print(
        _metrics_table(
            f"{args.defense} on {report.clean_images} clean images ({report.seconds:.1f} s)",
            [("before", report.before), ("after", report.after)],
        )
    )
    if report.measured_on is None:
        console.print("(give --test, and --trigger for ASR, to measure before and after)")
    elif report.measured_on == "clean":
        console.print("(measured on the repair's own clean data; --test gives held-out numbers)")
    if report.held_out is not None:
        console.print(report.held_out_line)
    console.print(report.summary)
    if report.caution:
        console.print(report.caution)
    console.print(f"saved to {out}")
    return 1 if args.strict and report.still_flagged else 0


def _references(args: argparse.Namespace, data: Any) -> int | list | None:
    """--references: a number of references to train (0: none), or a folder of weight files."""
    text = str(args.references)
    if text.isdigit():
        return int(text) or None
    return [_your_model(args, data, f) for f in _weight_files(text)]


def cmd_scan(args: argparse.Namespace, console: Console) -> None:
    from backdoorlab.byo.scanning import save_scan, scan
    from backdoorlab.experiment.config import apply_overrides
    from backdoorlab.records.files import check_out

    check_out(Path(args.out), args.overwrite)
    model, data = _yours(args)
    references: int | list | None = _default(scan, "references")
    if args.references is not None:
        references = _references(args, data)
    options = apply_overrides({}, args.overrides)  # detector.key=value -> {detector: {key: value}}
    detectors = args.detector or list(_default(scan, "detectors"))
    if isinstance(references, list):
        what = f"against {len(references)} given references"
    else:
        what = f"against {references} trained references" if references else "uncalibrated"
    console.print(f"scanning with {', '.join(detectors)} ({what})")
    result = scan(
        model, data, detectors=detectors, options=options, device=args.device,
        references=references, progress=not args.quiet, **api_kwargs(args, SCAN_CALIBRATION),
    )  # fmt: skip
    for name, d in result.detections.items():
        table = Table(title=f"{name}: {d.value_name}", title_justify="left")
        table.add_column("class")
        for c in range(len(d.values)):
            table.add_column(str(c), justify="right")
        table.add_row("value", *(f"{v:.2f}" for v in d.values))
        table.add_row("anomaly", *(f"{v:.2f}" for v in d.scores))
        if result.calibration is not None:
            table.add_row("calibrated z", *(f"{v:.2f}" for v in result.calibration.z[name]))
        console.print(table)
    screen = result.calibration.screen if result.calibration is not None else None
    if screen:
        found = ", ".join(
            f"class {c}: mask {n:.1f} px, z {z:.2f}"
            for c, n, z in zip(screen["classes"], screen["norms"], screen["z"], strict=True)
        )
        console.print(f"screen (trigger search): {found}")
    console.print(result.verdict)
    if result.caution:
        console.print(result.caution)
    console.print(f"saved to {save_scan(result, args.out, overwrite=args.overwrite)}")


def cmd_claims(args: argparse.Namespace, console: Console) -> None:
    from backdoorlab.report import claims_page

    out = args.out or str(Path(args.claims).with_suffix(""))
    for fmt in ("md", "html"):
        console.print(f"claims ledger: {claims_page(args.claims, out, fmt)}")


def cmd_list(args: argparse.Namespace, console: Console) -> None:
    for kind, entries in backdoorlab.list_components().items():
        table = Table(title=kind, show_header=False, title_justify="left")
        table.add_column("name", style="bold")
        table.add_column("summary")
        for name, summary in entries:
            table.add_row(name, summary)
        console.print(table)


def _flag_type(hint: Any) -> type:
    """The command-line type of an API parameter's annotation (int | None -> int, str | Path ->
    str)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(hint) if a is not type(None)]
        for kind in (bool, int, float, str):
            if kind in kinds:
                return kind
        return str
    return hint if hint in (bool, int, float) else str


def api_options(p: argparse.ArgumentParser, function: Callable, helps: dict[str, str]) -> None:
    """A flag per keyword parameter of `function` named in `helps` (`min_steps` -> --min-steps):
    its type and default are the signature's, so the command line cannot drift from the API;
    its help is the CLI's. `api_kwargs` hands them back."""
    params = inspect.signature(function).parameters
    hints = typing.get_type_hints(function)
    for name, text in helps.items():
        default, kind = params[name].default, _flag_type(hints[name])
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            p.add_argument(flag, dest=name, action="store_true", default=default, help=text)
        else:
            shown = "none" if default is None else default
            p.add_argument(flag, dest=name, type=kind, default=default,
                           help=f"{text} (default {shown})")  # fmt: skip


def api_kwargs(args: argparse.Namespace, helps: dict[str, str]) -> dict[str, Any]:
    """The values of the flags `api_options` added, by parameter name."""
    return {name: getattr(args, name) for name in helps}


# the options of defense auto a repair takes from the command line (byo.api.repair's parameters)
REPAIR_AUTO = {
    "references": "auto: benign references the scan is calibrated against",
    "fpr": "auto: false-positive rate of the scan's verdict",
    "rounds": "auto: repair steps at most",
    "min_steps": "auto: SGD steps each reference trains at least (none: its recipe's epochs "
    "whatever the data's size)",
    "cache": "auto: folder the trained references are kept in (none: $BACKDOORLAB_CACHE, else "
    "~/.cache/backdoorlab/references)",
    "scan_screen": "auto: how many of the probes' top classes Neural Cleanse's trigger search "
    "looks at again (none: no screen)",
    "unlearn_small": "auto: still unlearn the flagged class's reversed trigger (the plan's nc) "
    "where the screen found a small trigger for it, after a step before cleared the rescan",
}


# the calibration options a scan takes from the command line (byo.api.scan's parameters)
SCAN_CALIBRATION = {
    "fpr": "false-positive rate of the verdict",
    "evidence": "what each class's calibrated z is taken from: values (raw), index (within-model "
    "anomaly index) or profile (the residual against the references' class profile)",
    "cache": "folder the trained references are kept in (none: $BACKDOORLAB_CACHE, else "
    "~/.cache/backdoorlab/references)",
    "screen": "how many of the probes' top classes Neural Cleanse's trigger search looks at "
    "again on the model and the references (none: no screen)",
}


def _default(function: Callable, name: str) -> Any:
    """The default of `function`'s parameter `name`, for a help text."""
    return inspect.signature(function).parameters[name].default


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backdoorlab",
        description="Plant backdoors in image classifiers, defend against them, measure both.",
    )
    parser.add_argument("--version", action="version", version=backdoorlab.__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    def record_command_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--no-record-command",
            dest="record_command",
            action="store_false",
            help="do not write the command line into the file",
        )

    def executor_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--executor", default="local", choices=list(EXECUTORS), help="where the cells run"
        )
        p.add_argument("--address", help="ray: address of an existing cluster ('auto', host:port)")
        p.add_argument("--cpus", type=int, help="CPU threads per cell (replaces resources.cpus)")
        p.add_argument("--quiet", action="store_true", help="no progress bars inside cells")
        p.add_argument(
            "--reverse",
            action="store_true",
            help="run the missing cells last to first (a second start beside a first one)",
        )
        p.add_argument(
            "--merge",
            action="append",
            default=[],
            metavar="DB",
            help="first copy in the finished cells of another start's results.db (repeatable)",
        )
        p.add_argument(
            "--only",
            action="append",
            default=[],
            metavar="AXIS=LABEL[,LABEL]",
            help="run only the cells with one of these labels on AXIS (repeatable; e.g. the "
            "cheap defenses first, the rest in a second start)",
        )

    def set_arg(p: argparse.ArgumentParser, metavar: str, what: str) -> None:
        p.add_argument(
            "--set", dest="overrides", action="append", default=[], metavar=metavar, help=what
        )

    def config_args(p: argparse.ArgumentParser, optional: bool = False) -> None:
        p.add_argument("config", nargs="?" if optional else None, help="experiment YAML file")
        set_arg(p, "SECTION.KEY=VALUE", "override a config value (repeatable)")

    p = sub.add_parser("run", help="train, evaluate and save one experiment")
    config_args(p)
    p.add_argument("--out", help="run folder (default runs/<name>-<time>)")
    p.add_argument("--db", help="results database (default results.db beside the run folder)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an earlier run folder at --out"
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("triggers", help="PNG grid of clean vs triggered samples")
    config_args(p, optional=True)
    p.add_argument(
        "--run", dest="run_dir", help="take the config and the learned trigger from this run folder"
    )
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--count", type=int, default=8, help="samples to show")
    p.set_defaults(func=cmd_triggers)

    p = sub.add_parser(
        "analyze",
        help="adversarial-label matrix, feature distances or t-SNE of a run (JSON + PNG)",
    )
    p.add_argument("what", choices=list(backdoorlab.ANALYSES))
    p.add_argument("--run", required=True, help="run folder of the (infected) model")
    p.add_argument("--benign", help="run folder of a benign model (labels, distance)")
    p.add_argument("--out", required=True, help="folder for the JSON and PNG")
    # no defaults here: the analysis's own apply, and a flag it does not take is refused
    p.add_argument("--eps", type=float, help="labels, distance: L_inf budget (default 8/255)")
    p.add_argument("--steps", type=int, help="labels, distance: PGD steps (default 10)")
    p.add_argument("--alpha", type=float, help="labels, distance: PGD step (default 2.5 eps/steps)")
    p.add_argument("--limit", type=int, help="labels, distance: at most this many test images")
    p.add_argument("--count", type=int, help="tsne: clean and triggered samples (default 500)")
    p.add_argument("--seed", type=int, help="tsne: the embedding's seed (default 0)")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser(
        "sweep", help="run every cell of a sweep not yet in OUT/results.db (and its report)"
    )
    p.add_argument(
        "sweep",
        help="sweep file, or a name: gao2023-table7 (configs/paper/gao2023/table7.yaml), "
        "attacks-mnist (configs/results/), digits-zoo (configs/sweeps/)",
    )
    p.add_argument("--out", help="sweep folder: results.db, cells/, cache/ (default runs/<name>)")
    p.add_argument("--profile", help="a profile of the sweep file (e.g. cpu, full)")
    p.add_argument(
        "--cache", type=_cache_folder, help="stage-cache folder (default OUT/cache; always kept)"
    )
    p.add_argument(
        "--report",
        nargs="?",
        const="",
        metavar="PATH",
        help="then write its report to PATH (without suffix; default OUT/report/<name>)",
    )
    p.add_argument("--notes", help="with --report: Markdown observations under the tables")
    p.add_argument(
        "--format", dest="fmt", default="md", choices=["md", "html"], help="with --report"
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print every cell's resolved config as a JSON line (and the count); run nothing",
    )
    executor_args(p)
    record_command_arg(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "report", help="a sweep's (or plain runs') tables and figures: Markdown, HTML or console"
    )
    p.add_argument("db", help="results database (a sweep's OUT/results.db, or runs' results.db)")
    p.add_argument("--sweep", help="which sweep, where the database holds several")
    p.add_argument("--table", action="append", default=[], help="only this table (repeatable)")
    p.add_argument("--figure", action="append", default=[], help="only this figure (repeatable)")
    p.add_argument(
        "--run",
        dest="runs",
        action="append",
        default=[],
        help="a database of plain runs: only this run",
    )
    p.add_argument(
        "--format",
        dest="fmt",
        default="md",
        choices=["md", "html", "console"],
        help="html: one page; console: print the tables, write nothing",
    )
    p.add_argument("--out", help="path without suffix (default report/<sweep> beside the db)")
    p.add_argument("--notes", help="Markdown file of observations to put under the tables")
    record_command_arg(p)
    p.set_defaults(func=cmd_report)

    def yours_args(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--model",
            dest="weights",
            required=True,
            help="weights: .safetensors or a state-dict .pt",
        )
        p.add_argument(
            "--arch",
            required=True,
            help=f"a registered model ({', '.join(backdoorlab.MODELS.names())}) or "
            "MODULE:FUNCTION / FILE.py:FUNCTION",
        )
        p.add_argument(
            "--arch-set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="an option of the architecture (e.g. width=32, stem=imagenet)",
        )
        p.add_argument("--key-map", help="rename a foreign layout: " + ", ".join(KEY_MAP_NAMES))
        p.add_argument(
            "--data",
            required=True,
            help="a folder of class folders, an .npz / .safetensors with x and y, or a registered "
            f"dataset ({', '.join(backdoorlab.DATASETS.names())})",
        )
        p.add_argument("--classes", type=int, help="class count (default: from the data)")
        p.add_argument("--mean", type=float, nargs="+", help="the model's input normalisation")
        p.add_argument("--std", type=float, nargs="+")
        p.add_argument("--device", default="auto")

    def trigger_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--trigger", help="a pattern image (PNG), or an attack config YAML")
        p.add_argument("--mask", help="the pattern's mask (grey PNG; default: the whole image)")
        p.add_argument("--alpha", type=float, default=1.0, help="blend weight of the pattern")
        p.add_argument("--target", type=int, help="target class of the trigger")

    p = sub.add_parser("evaluate", help="ACC (and ASR, RA with a trigger) of your model")
    yours_args(p)
    trigger_args(p)
    p.add_argument("--out", help="folder for result.json (the numbers)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier result at --out")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("repair", help="repair your model with a post-training defense")
    yours_args(p)
    trigger_args(p)
    p.add_argument(
        "--defense",
        default="auto",
        help="auto (default: scan, repair what it flags, rescan), or a post-training defense: "
        + ", ".join(
            e.name
            for e in backdoorlab.DEFENSES
            if e.obj.post_training and e.name not in ("none", "auto")
        ),
    )
    p.add_argument(
        "--evidence",
        action="store_true",
        help="a named defense: scan before and rescan after, ACC on a held-out fifth (auto does)",
    )
    p.add_argument(
        "--strict", action="store_true", help="exit 1 when the rescan still flags the model"
    )
    api_options(p, backdoorlab.repair, REPAIR_AUTO)
    p.add_argument(
        "--plan",
        help="auto: its repairs in order, comma-separated (default nc,aft); their settings go "
        "under each name: --set defense.aft.eps=0.2",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    set_arg(p, "defense.KEY=VALUE", "a defense setting (repeatable)")
    p.add_argument("--test", help="held-out data to measure ACC/ASR before and after")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="folder for the repaired weights and result.json")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier result at --out")
    p.set_defaults(func=cmd_repair)

    p = sub.add_parser("scan", help="is your model backdoored, and towards which class?")
    yours_args(p)
    p.add_argument(
        "--detector",
        action="append",
        help=f"a detector (repeatable): {', '.join(backdoorlab.DETECTORS.names())}; "
        f"default {', '.join(_default(backdoorlab.scan, 'detectors'))}",
    )
    set_arg(p, "DETECTOR.KEY=VALUE", "a detector setting, e.g. nc.steps=100 (repeatable)")
    p.add_argument(
        "--references",
        metavar="N|DIR",
        help="benign references the verdict is calibrated against: N fresh copies of the model "
        f"trained on half of --data (default {_default(backdoorlab.scan, 'references')}, kept "
        "for the next scan; 0: uncalibrated), or a folder of weight files of benign models of the "
        "same --arch (at least 3)",
    )
    api_options(p, backdoorlab.scan, SCAN_CALIBRATION)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", required=True, help="folder for scan.json and one PNG per detector")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier scan at --out")
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("claims", help="the claims ledger: papers' claims, verdicts, their cells")
    p.add_argument("claims", help="claims file (YAML; docs/results/claims.yaml)")
    p.add_argument("--out", help="path without suffix (default: the claims file's)")
    p.set_defaults(func=cmd_claims)

    p = sub.add_parser("list", help="registered datasets, models, attacks and defenses")
    p.set_defaults(func=cmd_list)
    return parser


def flags_of(parser: argparse.ArgumentParser, command: str) -> dict[str, str]:
    """The API parameter each option of `command` sets (its dest) -> the option's long flag."""
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {
        a.dest: max(a.option_strings, key=len)
        for a in sub.choices[command]._actions
        if a.option_strings and a.dest != "help"
    }


def in_flags(message: str, flags: dict[str, str]) -> str:
    """A library error in the command line's words: the API names its parameters in backticks
    (`weights`, `overwrite=True`); each becomes the flag that sets it. The one place where
    parameters meet flags."""

    def flag(match: re.Match) -> str:
        name, value = match.group(1), match.group(2)
        if name not in flags:
            return match.group(0)
        return flags[name] if value in (None, "True") else f"{flags[name]} {value}"

    return re.sub(r"`([A-Za-z_]\w*)(?:=([^`]*))?`", flag, message)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    # piped into a file or a log, tables keep their columns instead of an 80-column squeeze;
    # markup off: names, labels and messages are user text, never parsed as Rich markup
    width = None if sys.stdout.isatty() else 200
    console = Console(width=width, markup=False)
    err = Console(stderr=True, markup=False)
    try:
        status = args.func(args, console)  # a command may return a status of its own
    except BackdoorlabError as exc:
        message = in_flags(str(exc), flags_of(parser, args.command))
        err.print(Text("error: ", style="bold red") + Text(message), soft_wrap=True)
        return 2
    except OSError as exc:  # a full disk, a folder that cannot be written: one line, not a trace
        where = f" ({exc.filename})" if exc.filename else ""
        err.print(
            Text("error: ", style="bold red") + Text(f"{exc.strerror or exc}{where}"),
            soft_wrap=True,
        )
        return 1
    except KeyboardInterrupt:
        err.print("interrupted", highlight=False)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
