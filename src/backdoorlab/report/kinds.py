"""The report kinds (runs, grid, lines, curve, detect, confounds, repairs): each turns the
selected cells into one table or figure of a page; layers above add theirs with `report_kind`."""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from backdoorlab.detectors.scan import (
    CalibrationConfig,
    recalibrated_detection,
    validated_calibration,
)
from backdoorlab.errors import ConfigError
from backdoorlab.experiment.sweep_spec import excluded_by
from backdoorlab.metrics.core import der, pct
from backdoorlab.paths import inside, slug
from backdoorlab.plotting import pyplot, save_figure
from backdoorlab.records.files import write_text
from backdoorlab.records.metrics import Metrics
from backdoorlab.report.cells import (
    Part,
    Row,
    extras,
    family,
    matches,
    order,
    pick,
    record_of,
    select,
    wanted,
    write_csv,
)
from backdoorlab.report.grid import Grid
from backdoorlab.report.paired import paired_part
from backdoorlab.report.repairs import repairs_part
from backdoorlab.report.settings import settings_rows
from backdoorlab.report.zoo import (
    Member,
    confound_rows,
    detection_rows,
    per_model_csv,
    planted_asr,
    roc_figure,
    split,
)


def attack_setting(config: dict[str, Any], poison: dict[str, Any]) -> str:
    """How a run was attacked, in one line: control, label mode, rate and its denominator."""
    a = config["attack"]
    if a["name"] == "none":
        return "-"
    # runs written before `per_batch` was recorded: nothing stored poisoned means per batch
    per_batch = poison.get("per_batch", poison["count"] == 0)
    of = "each batch" if per_batch else a["rate_of"].replace("_", " ")
    control = a.get("control", "training" if per_batch else "data")
    cross = f", {poison['cross']} cross" if poison.get("cross") else ""
    return f"{control} control, {a['label_mode']}-label, rate {a['rate']:g} of {of}{cross}"


def _poison(cell: Row) -> dict[str, Any] | None:
    """The cell's poisoned-set bookkeeping: from the database, else (a row written before the
    database kept it) from its run folder's result.json."""
    if cell.poison is not None:
        return cell.poison
    record = record_of(cell)
    return None if record is None else record.poison


def _runs(
    rid: str, entry: dict[str, Any], spec: dict[str, Any], cells: list[Row], out: Path
) -> Part:
    """One row per cell: the attack's setting, ACC and its change against the `baseline` cell,
    ASR, RA, DER, the poisoned count, run times, the defense's own numbers; with `triggers`
    (default true) each attacked cell's trigger grid."""
    chosen = select(entry, cells)
    title = entry.get("title", rid)
    base, notes = None, []
    if "baseline" in entry and not select({"where": entry["baseline"]}, cells):
        notes.append(f"Baseline ({entry['baseline']}): not run yet.")
    elif "baseline" in entry:
        base = pick(rid, "baseline", entry["baseline"], cells)
        chosen = [c for c in chosen if c is not base]
        notes.append(f"Baseline (`{base.label}`): ACC {pct(base.metrics.acc)}.")
    poisons = [_poison(c) for c in chosen]
    with_der = base is not None and base.metrics.asr is not None
    head = ["cell", "attack", "setting", "ACC", "ACC - baseline", "ASR", "RA", "DER"]
    head += ["poisoned", "train s", "total s", "defense numbers"]
    table = [head]
    for c, poison in zip(chosen, poisons, strict=True):
        m = c.metrics
        delta = "-" if base is None else f"{m.acc - base.metrics.acc:+.2f}"
        d = der(base.metrics, m) if with_der else None
        table.append(
            [
                c.label,
                c.config["attack"]["name"],
                "-" if poison is None else attack_setting(c.config, poison),
                pct(m.acc),
                delta,
                pct(m.asr),
                pct(m.ra),
                "-" if d is None else f"{d:.3f}",
                "-" if poison is None else str(poison["count"]),
                f"{c.timings.get('train_s', 0):.0f}",
                f"{c.timings.get('total_s', 0):.0f}",
                extras(m),
            ]
        )
    # columns no cell fills are left out (no baseline: no change or DER; no defense numbers)
    keep = [i for i, h in enumerate(head) if i < 3 or any(row[i] != "-" for row in table[1:])]
    table = [[row[i] for i in keep] for row in table]
    notes.append(
        "Run times are wall-clock seconds of training and of the whole run (data, attack "
        "preparation, training, evaluation) on the machine that ran them."
    )
    figures = []
    for c in chosen if entry.get("triggers", True) else []:
        if c.config["attack"]["name"] == "none":
            continue
        grid = c.folder / "triggers.png" if c.folder is not None else None
        target = inside(out.parent, slug(f"{out.name}-{rid}-{c.label}") + ".png")
        if grid is not None and grid.is_file():
            shutil.copyfile(grid, target)
        if target.is_file():  # copied now, or by an earlier report whose run folders are gone
            figures.append((f"{c.label}: clean, triggered, change", target))
    write_csv(out, rid, table)
    return Part(rid, title, table=table, figures=figures, notes=notes)


def _mean_metrics(group: list[Row]) -> Metrics:
    """One cell's metrics, or the mean ACC / ASR / RA of cells repeated over seeds."""
    if len(group) == 1:
        return group[0].metrics
    means = {}
    for k in ("acc", "asr", "ra"):
        values = [c.metrics.named(k) for c in group if c.metrics.named(k) is not None]
        means[k] = statistics.fmean(values) if values else None
    return replace(group[0].metrics, **means)


def _spread(group: list[Row]) -> tuple[float, float, int]:
    """(ACC sd, ASR sd, repeats) of cells repeated over seeds (sd 0 for one cell)."""

    def sd(k: str) -> float:
        values = [c.metrics.named(k) for c in group if c.metrics.named(k) is not None]
        return statistics.stdev(values) if len(values) > 1 else 0.0

    return sd("acc"), sd("asr"), len(group)


def _same_seeds(
    groups: dict[tuple[str, str], list[Row]], baseline: str, over: str
) -> dict[tuple[str, str], Metrics | None]:
    """For each cell repeated over fewer `over` values than its row's baseline cell, the
    baseline's mean over the values the cell ran (None: none in common)."""
    base: dict[tuple[str, str], Metrics | None] = {}
    for (r, c), group in groups.items():
        reference = groups.get((r, baseline))
        if c == baseline or reference is None:
            continue
        ran = {cell.value(over) for cell in group}
        matched = [cell for cell in reference if cell.value(over) in ran]
        if len(matched) != len(reference):
            base[(r, c)] = _mean_metrics(matched) if matched else None
    return base


def _grid(
    rid: str, entry: dict[str, Any], spec: dict[str, Any], cells: list[Row], out: Path
) -> Part:
    rows, cols, over = entry["rows"], entry["columns"], entry.get("over")
    chosen = select(entry, cells)
    columns = order(spec, cols, chosen, entry)
    notes = []
    searched: list[str] = []  # the columns a `closest` column picks from
    if entry.get("closest"):
        searched = [c for c in columns if matches(c, wanted(entry["closest"].get("among", [])))]
        chosen, columns, said = _closest(rid, entry["closest"], rows, cols, chosen, columns)
        notes.append(said)
    groups: dict[tuple[str, str], list[Row]] = {}
    for c in chosen:
        groups.setdefault((c.value(rows), c.value(cols)), []).append(c)
    found: dict[tuple[str, str], Metrics] = {}
    spread: dict[tuple[str, str], tuple[float, float, int]] = {}
    links = {}
    for key, group in groups.items():
        repeats = {c.value(over) for c in group} if over else set()
        if len(group) > 1 and len(repeats) != len(group):
            raise ConfigError(
                f"report {rid}: several cells at {rows}={key[0]}, {cols}={key[1]}; pin the other "
                "axes with `where`" + ("" if over else ", or average them with `over: AXIS`")
            )
        found[key], links[key] = _mean_metrics(group), group[0].key
        if over:
            spread[key] = _spread(group)
    baseline = entry.get("baseline")
    base = _same_seeds(groups, baseline, over) if over and baseline else {}
    grid = Grid(
        order(spec, rows, chosen, entry),
        columns,
        found,
        baseline=baseline,
        paper=entry.get("paper", {}),
        spread=spread,
        base=base,
    )
    if over:
        counts = sorted({n for _, _, n in spread.values()})
        said = (
            f"Each cell: the mean ± sample standard deviation over the `{over}` axis "
            f"({' or '.join(map(str, counts))} repeats); Avg. Drop and DER use the means"
        )
        if base:
            said += (
                f", and compare a cell run over fewer `{over}` values than the {baseline} "
                f"column with the {baseline} cells of those values only"
            )
        notes.append(said + ".")
    if grid.paper:
        notes.append(
            "In parentheses: the paper's published numbers; in the Avg. Drop row, their averages "
            "as computed here."
        )
    # a pair the sweep's `exclude` leaves out is not missing, nor a `closest` column whose
    # searched columns are all left out
    rules = [rule for rule in spec.get("exclude", []) if set(rule) <= {rows, cols}]

    def excluded(r: str, c: str) -> bool:
        return any(excluded_by(rule, {rows: r, cols: c}) for rule in rules)

    picked = entry["closest"]["label"] if searched else None
    missing = [
        (r, c)
        for r, c in grid.missing()
        if not excluded(r, c) and not (c == picked and all(excluded(r, x) for x in searched))
    ]
    if missing:
        cells_text = ", ".join(f"{r}/{c}" for r, c in missing)
        notes.append(f"Not run yet (or failed): {cells_text}.")
    write_csv(out, rid, grid.table())
    title = entry.get("title", rid)
    return Part(rid, title, grid=grid, corner=rows, notes=notes, links=links)


def _closest(
    rid: str, rule: dict[str, Any], rows: str, cols: str, cells: list[Row], columns: list[str]
) -> tuple[list[Row], list[str], str]:
    """Gao et al.'s selection for Table VII's Fine-Pruning (Sec. IV-A-2: pruning ratios searched
    from 5% to 95%, the one whose clean ACC is closest to CAT's kept): per row, of the columns
    matching `among`, the one whose mean `by` (default acc) is closest to column `to`'s, shown
    as column `label` (placed `after` a column, or where the first candidate stood). Returns the
    cells, the columns and a note naming each choice."""
    try:
        label, among, to = rule["label"], wanted(rule["among"]), rule["to"]
    except (KeyError, TypeError):
        raise ConfigError(f"report {rid}: closest needs label, among and to") from None
    by = rule.get("by", "acc")

    def mean(group: list[Row]) -> float:
        return sum(c.metrics.named(by) for c in group) / len(group)

    kept = [c for c in cells if not matches(c.value(cols), among)]
    picks = []
    for r in dict.fromkeys(c.value(rows) for c in cells):
        ref = [c for c in cells if c.value(rows) == r and c.value(cols) == to]
        options: dict[str, list[Row]] = {}
        for c in cells:
            if c.value(rows) == r and matches(c.value(cols), among):
                options.setdefault(c.value(cols), []).append(c)
        if not ref or not options:
            continue
        best = min(options, key=lambda o: abs(mean(options[o]) - mean(ref)))
        kept += [replace(c, axes={**c.axes, cols: label}) for c in options[best]]
        picks.append(f"{r} {best} ({by.upper()} {mean(options[best]):.2f} against "
                     f"{mean(ref):.2f})")  # fmt: skip
    shown: list[str] = []
    for c in columns:
        name = label if matches(c, among) else c
        if name not in shown:
            shown.append(name)
    if label in shown and rule.get("after") in shown:  # default: the first candidate's place
        shown.remove(label)
        shown.insert(shown.index(rule["after"]) + 1, label)
    note = (
        f"Column {label}: of the columns {', '.join(among)}, per row the one whose {by.upper()} "
        f"is closest to {to}'s (Gao et al.'s selection for Fine-Pruning): "
        + ("; ".join(picks) or "none yet")
        + "."
    )
    return kept, shown, note


def _legend(fig, axes) -> None:
    """One legend for every panel, each label once."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    axes[-1].legend(
        handles.values(), handles.keys(), fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5)
    )


def _finish(fig, axes, xlabel: str | None, rid: str, entry: dict[str, Any], out: Path) -> Path:
    """The styling every report figure shares, one legend, the title; saved as OUT-<rid>.png."""
    for ax in axes:
        if xlabel is not None:
            ax.set_xlabel(xlabel)
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("%  (ACC dashed, ASR solid)")
    _legend(fig, axes)
    fig.suptitle(entry.get("title", rid), fontsize=10)
    fig.tight_layout()
    return save_figure(fig, inside(out.parent, f"{out.name}-{rid}.png"))


def _lines(
    rid: str, entry: dict[str, Any], spec: dict[str, Any], cells: list[Row], out: Path
) -> Part:
    """ACC (dashed) and ASR (solid) against a numeric x, one panel per `panels`, one colour per
    `lines` (Gao Fig. 2)."""
    chosen = select(entry, cells)
    x, panels_key, lines_key = entry["x"], entry.get("panels"), entry["lines"]
    panels = order(spec, panels_key, chosen, entry) if panels_key else [""]
    lines = order(spec, lines_key, chosen, entry)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, panel in zip(axes[0], panels, strict=True):
        for i, line in enumerate(lines):
            pts = sorted(
                (float(c.value(x)), c.metrics.acc, c.metrics.asr)
                for c in chosen
                if c.value(lines_key) == line and (not panels_key or c.value(panels_key) == panel)
            )
            if not pts:
                continue
            xs = [p[0] for p in pts]
            colour = colours[i % len(colours)]
            ax.plot(xs, [p[1] for p in pts], "--s", c=colour, ms=3, label=f"{line} ACC")
            if pts[0][2] is not None:
                ax.plot(xs, [p[2] for p in pts], "-o", c=colour, ms=3, label=f"{line} ASR")
        ax.set_title(panel, fontsize=10)
    path = _finish(fig, list(axes[0]), x, rid, entry, out)
    return Part(rid, entry.get("title", rid), figures=[(entry.get("title", rid), path)])


def draw_aft_curve(ax: Any, curve: list[dict[str, Any]], colour: str | None = None,
                   label: str = "") -> None:  # fmt: skip
    """One recorded AFT curve's ACC and ASR against fine-tuning steps on `ax` (Mu Fig. 3): in
    `colour`, ACC dashed and ASR solid; without one (a figure of one run), blue and red, marked."""
    steps = [p["step"] for p in curve]
    prefix = f"{label} " if label else ""
    if colour is None:
        styles = [("-o", "tab:blue", 3), ("-o", "tab:red", 3)]
    else:
        styles = [("--", colour, None), ("-", colour, None)]
    for key, (fmt, c, ms) in zip(("acc", "asr"), styles, strict=True):
        ax.plot(steps, [p[key] for p in curve], fmt, c=c, ms=ms, label=prefix + key.upper())


def _curve(
    rid: str, entry: dict[str, Any], spec: dict[str, Any], cells: list[Row], out: Path
) -> Part:
    """ACC (dashed) and ASR (solid) against AFT steps, one colour per `lines` (Mu Fig. 3)."""
    chosen = [c for c in select(entry, cells) if c.metrics.aft_curve]
    lines_key = entry["lines"]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, line in enumerate(order(spec, lines_key, chosen, entry)):
        for c in (c for c in chosen if c.value(lines_key) == line):
            draw_aft_curve(ax, c.metrics.aft_curve, colour=colours[i % len(colours)], label=line)
    path = _finish(fig, [ax], "fine-tuning step", rid, entry, out)
    notes = [] if chosen else ["No cell holds an AFT curve yet."]
    return Part(
        rid, entry.get("title", rid), figures=[(entry.get("title", rid), path)], notes=notes
    )


def _feature(cell: Row, name: str) -> float:
    """A cell's metric `name`, or its config value at dotted key `name`, as a number."""
    raw = cell.metrics.named(name) if cell.metrics.has(name) else cell.value(name)
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"report: {name!r} of {cell.label} is not a number ({raw!r})") from None


def zoo_members(entry: dict[str, Any], cells: list[Row]) -> list[Member]:
    """The zoo's models: cells with detector results, their attack family (None: benign),
    target, ASR and the `features` the entry names."""
    group = entry.get("group", "attack.name")
    keys = [group] if isinstance(group, str) else list(group)
    members = []
    for c in select(entry, cells):
        if not c.metrics.detect:
            continue
        attacked = c.config["attack"]["name"] != "none"
        members.append(
            Member(
                c.label,
                family(c, keys) if attacked else None,
                c.config["attack"].get("target") if attacked else None,
                c.metrics.asr,
                c.metrics.detect,
                {f: _feature(c, f) for f in entry.get("features", [])},
            )
        )
    return members


def _confounds(
    rid: str, entry: dict[str, Any], spec: dict[str, Any], cells: list[Row], out: Path
) -> Part:
    """How well each of a zoo's `features` (config keys or metrics: width, seed, ACC) separates
    infected from benign models on its own: a confound check for the detection table."""
    if not entry.get("features"):
        raise ConfigError(f"report {rid}: a confounds report needs a list of features")
    benign, infected, _ = split(zoo_members(entry, cells), planted_asr(entry))
    title = entry.get("title", rid)
    if not benign or not infected:
        return Part(rid, title, notes=["The zoo needs benign and infected models."])
    table = confound_rows(benign, infected)
    write_csv(out, rid, table)
    notes = [
        "AUROC of each feature used alone as the detection score (infected = positive). Near 0.5 "
        "the feature cannot tell the two kinds apart; near 0 or 1 it could, and a detector that "
        "reads it would look better than it is."
    ]
    return Part(rid, title, table=table, notes=notes)


def _recalibrated(
    rid: str, entry: dict[str, Any], members: list[Member]
) -> tuple[list[Member], dict[str, CalibrationConfig]]:
    """`members` with a row per entry of `recalibrate` ({name: calibration settings}): each
    model's kept scan calibrated again under those settings, with no model run; and those
    settings by name."""
    settings = entry.get("recalibrate") or {}
    if not isinstance(settings, dict):
        raise ConfigError(f"report {rid}: recalibrate maps a row name to calibration settings")
    chosen = {}
    for name, options in settings.items():
        if "references" in (options or {}):
            raise ConfigError(
                f"report {rid}: recalibrate {name}: the references' recipe cannot change "
                "without training them again (rerun the sweep)"
            )
        chosen[name] = validated_calibration(options or {})
    again = []
    for m in members:
        try:
            rows = {n: recalibrated_detection(m.detections, c) for n, c in chosen.items()}
        except ConfigError as exc:
            raise ConfigError(f"report {rid}: {m.name}: {exc}") from None
        again.append(replace(m, detections={**m.detections, **rows}))
    return again, chosen


def _detect(
    rid: str, entry: dict[str, Any], spec: dict[str, Any], cells: list[Row], out: Path
) -> Part:
    """A model zoo's detection metrics per detector and attack, and ROC curves (TDC's layout).

    `group` (default attack.name; a list of keys joins their values) names a model's family;
    a cell whose attack.name is none is a benign model; `planted` (default 50) is the ASR an
    attacked model needs to count infected; `recalibrate` adds rows of the calibrated scan under
    other settings, computed from the values the cells kept."""
    members, again = _recalibrated(rid, entry, zoo_members(entry, cells))
    planted = planted_asr(entry)
    found = [set(m.detections) for m in members]
    detectors = entry.get("detectors") or sorted(set.intersection(*found) if found else set())
    missing = [m.name for m in members if not set(detectors) <= set(m.detections)]
    if missing:
        raise ConfigError(f"report {rid}: {', '.join(missing[:5])} lack detector results")
    groups = list(dict.fromkeys(m.group for m in members if m.group is not None))
    title = entry.get("title", rid)
    notes = [
        f"Benign: models trained without an attack. Infected: attacked models with ASR >= "
        f"{planted:g}%. Target acc: share of infected models whose most anomalous class is the "
        "target. Flagged: share of models with a class above the detector's threshold."
    ]
    for name, c in again.items():
        probes = " + ".join(c.detectors or ["every probe kept"])
        notes.append(
            f"{name}: the calibrated scan at other settings ({probes}; evidence {c.evidence}; "
            f"threshold floor {c.min_threshold:g}; FPR {c.fpr:g}), computed from the values each "
            "cell kept for the model and its references; no model ran again. Its seconds add up "
            "its own probes' on the model."
        )
    benign, infected, failed = split(members, planted)
    if failed:
        names = ", ".join(f"{m.name} (ASR {pct(m.asr)})" for m in failed)
        notes.append(f"Not scored (the backdoor did not take): {names}.")
    if not members:
        return Part(rid, title, notes=["No cell holds detector results yet."])
    table = detection_rows(benign, infected, detectors, groups)
    write_csv(out, rid, table)
    models = per_model_csv(members, detectors)
    write_text(inside(out.parent, f"{out.name}-{rid}-models.csv"), models)
    fig = roc_figure(benign, infected, detectors, groups, title)
    path = save_figure(fig, inside(out.parent, f"{out.name}-{rid}.png"))
    return Part(rid, title, figures=[(title, path)], table=table, notes=notes)


def _settings(
    rid: str, entry: dict[str, Any], spec: dict[str, Any], cells: list[Row], out: Path
) -> Part:
    """Every setting of the calibrated scan (probes x evidence x floor) scored on the zoo from
    the values its cells kept, and what the choice rule picks (report/settings.py). `role`:
    `development` (the pick is a choice) or `test` (evidence only: a setting chosen from a test
    zoo is tuned on it); `planted` as in `detect`."""
    role = entry.get("role")
    if role not in ("development", "test"):
        raise ConfigError(f"report {rid}: role must be development or test (got {role!r})")
    benign, infected, failed = split(zoo_members(entry, cells), planted_asr(entry))
    title = entry.get("title", rid)
    scanned = [m for m in (*benign, *infected) if "calibrated" not in m.detections]
    if scanned:
        names = ", ".join(m.name for m in scanned[:5])
        raise ConfigError(f"report {rid}: {names} hold no calibrated scan")
    if not benign or not infected:
        return Part(rid, title, notes=["The zoo needs benign and infected models."])
    table, chosen = settings_rows(benign, infected)
    write_csv(out, rid, table)
    notes = [
        f"{len(benign)} benign and {len(infected)} infected models. B/I: benign / infected models "
        "flagged at each floor under the threshold. Every scan is calibrated again from the "
        "values its cell kept for the model and its references; no model ran again."
    ]
    if failed:
        notes.append(f"Left out, the backdoor did not take: {', '.join(m.name for m in failed)}.")
    if chosen is None:
        notes.append("No setting flags no benign model at any floor.")
    elif role == "development":
        notes.append(
            f"On this zoo alone the rule picks: {chosen}. A choice pools the development zoos "
            "(scripts/calibration_choices.py)."
        )
    else:
        notes.append(
            f"On this test zoo the rule would pick: {chosen}. Evidence only: a setting chosen "
            "here is tuned on the test zoo."
        )
    return Part(rid, title, table=table, notes=notes)


TABLES = (
    "runs",
    "grid",
    "detect",
    "confounds",
    "repairs",
    "paired",
    "settings",
)  # --table may name
FIGURES = ("lines", "curve", "detect", "analysis")  # and --figure

# (rid, entry, spec, cells, out stem) -> Part; layers above add theirs with report_kind
REPORT_KINDS: dict[str, Callable[..., Part]] = {
    "runs": _runs,
    "grid": _grid,
    "lines": _lines,
    "curve": _curve,
    "detect": _detect,
    "confounds": _confounds,
    "settings": _settings,
    "repairs": repairs_part,
    "paired": paired_part,
}


def report_kind(name: str) -> Callable[[Callable[..., Part]], Callable[..., Part]]:
    """Register a report kind under `name` (e.g. `analysis`, from backdoorlab.analysis)."""

    def register(fn: Callable[..., Part]) -> Callable[..., Part]:
        if name in REPORT_KINDS:
            raise ConfigError(f"report kind {name!r} is already registered")
        REPORT_KINDS[name] = fn
        return fn

    return register
