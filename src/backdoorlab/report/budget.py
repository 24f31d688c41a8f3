"""The adversarial-training report: ACC/ASR against perturbation type and budget (Gao Fig. 2),
random perturbations of the same budgets (Tables I-II), relaxation (Tables V-VI) and CAT."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backdoorlab.errors import ConfigError
from backdoorlab.experiment.artifacts import read_run, write_text
from backdoorlab.metrics.core import pct
from backdoorlab.paths import check_name, inside
from backdoorlab.plotting import pyplot, save_figure
from backdoorlab.report.kinds import attack_setting
from backdoorlab.report.page import read_notes, written_by

THREAT_TITLES = {"linf": "L_inf", "l2": "L_2", "spatial": "spatial (flow field)"}


@dataclass
class Sweep:
    """The cells of one attack's sweep, sorted by what their defense varies."""

    name: str
    runs: list[dict[str, Any]]
    baseline: dict[str, Any] | None = None
    at: dict[str, dict[float, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    random: dict[str, dict[float, dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    relaxed: dict[tuple[str, float], dict[float, dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    cat: list[dict[str, Any]] = field(default_factory=list)
    other: list[dict[str, Any]] = field(default_factory=list)


def load_sweep(folder: str | Path) -> Sweep:
    """Read every finished run folder directly under `folder` and sort it into its table."""
    folder = Path(folder).resolve()
    dirs = sorted(p.parent for p in folder.glob("*/result.json"))
    if not dirs:
        raise ConfigError(f"{folder} holds no finished run folders")
    sweep = Sweep(folder.name, [read_run(d) for d in dirs])
    for r in sweep.runs:
        d = r["config"]["defense"]
        if d["name"] == "none":
            sweep.baseline = r
        elif d["name"] == "at" and d["beta"] == 1.0:
            sweep.at[d["threat"]][d["eps"]] = r
        elif d["name"] == "at":
            sweep.relaxed[(d["threat"], d["eps"])][d["beta"]] = r
        elif d["name"] == "random":
            sweep.random[d["threat"]][d["eps"]] = r
        elif d["name"] == "cat":
            sweep.cat.append(r)
        else:
            sweep.other.append(r)
    sweep.cat.sort(key=lambda r: (r["config"]["defense"]["eps_s"], r["config"]["defense"]["eps_l"]))
    return sweep


def _budget(eps: float) -> str:
    """eps, with its k/255 form where eps was written as a rounded k/255 (0.0157 -> 4/255)."""
    text, k = f"{eps:g}", eps * 255
    decimals = len(text.split(".")[1]) if "." in text else 0
    return f"{text} ({round(k)}/255)" if decimals >= 3 and abs(k - round(k)) < 0.05 else text


def _acc_asr(r: dict[str, Any] | None) -> str:
    return "- | -" if r is None else f"{pct(r['metrics']['acc'])} | {pct(r['metrics']['asr'])}"


def budget_figure(sweep: Sweep, path: str | Path, title: str = "") -> Path:
    """ACC and ASR against budget, one panel per threat model (Gao Fig. 2), random dashed."""
    plt = pyplot()

    threats = [t for t in THREAT_TITLES if t in sweep.at or t in sweep.random]
    fig, axes = plt.subplots(1, max(len(threats), 1), figsize=(4.2 * len(threats), 3.4))
    axes = list(axes) if len(threats) > 1 else [axes]
    for ax, threat in zip(axes, threats, strict=False):
        for runs, style, label in ((sweep.at, "-o", "AT"), (sweep.random, "--s", "random")):
            cells = sorted(runs.get(threat, {}).items())
            if not cells:
                continue
            xs = [eps for eps, _ in cells]
            ax.plot(
                xs,
                [r["metrics"]["acc"] for _, r in cells],
                style,
                c="tab:blue",
                label=f"{label} ACC",
            )
            ax.plot(
                xs,
                [r["metrics"]["asr"] for _, r in cells],
                style,
                c="tab:red",
                label=f"{label} ASR",
            )
        if sweep.baseline is not None:
            m = sweep.baseline["metrics"]
            ax.axhline(m["acc"], c="tab:blue", ls=":", lw=1, label="no defense ACC")
            ax.axhline(m["asr"], c="tab:red", ls=":", lw=1, label="no defense ASR")
        ax.set_title(THREAT_TITLES[threat])
        ax.set_xlabel("budget eps")
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("%")
    axes[-1].legend(fontsize=7, loc="center right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def _setting(r: dict[str, Any]) -> str:
    c = r["config"]
    t = c["train"]
    return (
        f"{c['attack']['name']} ({attack_setting(r)}) on {c['dataset']['name']} "
        f"({c['dataset'].get('train_size')} train / {c['dataset'].get('test_size')} test), "
        f"{c['model']['name']}, {t['epochs']} epochs"
    )


def _sweep_section(sweep: Sweep, figure: str) -> list[str]:
    first = sweep.baseline or sweep.runs[0]
    minutes = sum(r["timings"]["total_s"] for r in sweep.runs) / 60
    lines = [
        f"## {sweep.name}",
        "",
        f"{_setting(first)}; {len(sweep.runs)} runs, {minutes:.0f} min in all.",
        "",
    ]
    if sweep.baseline is not None:
        m = sweep.baseline["metrics"]
        lines += [f"No defense: ACC {pct(m['acc'])}, ASR {pct(m['asr'])}.", ""]
    if sweep.at or sweep.random:
        steps = {r["config"]["defense"]["steps"] for v in sweep.at.values() for r in v.values()}
        lines += [
            "### Budget sweep (Gao Fig. 2) beside random perturbation of the same budget "
            "(Gao Tables I-II)",
            "",
            f"PGD steps {', '.join(map(str, sorted(steps))) or '-'}, step size 2.5 eps / steps, "
            "random start; random = every coordinate (pixel or flow) at +-eps.",
            "",
            "| threat | eps | AT ACC | AT ASR | random ACC | random ASR |",
            "| --- | --- | ---: | ---: | ---: | ---: |",
        ]
        for threat in THREAT_TITLES:
            for eps in sorted(set(sweep.at.get(threat, {})) | set(sweep.random.get(threat, {}))):
                lines.append(
                    f"| {THREAT_TITLES[threat]} | {_budget(eps)} | "
                    f"{_acc_asr(sweep.at.get(threat, {}).get(eps))} | "
                    f"{_acc_asr(sweep.random.get(threat, {}).get(eps))} |"
                )
        lines += ["", f"![ACC and ASR against budget]({figure})", ""]
    for (threat, eps), cells in sorted(sweep.relaxed.items()):
        lines += [
            f"### Relaxed {THREAT_TITLES[threat]} AT, eps {eps:g} (Gao Tables V-VI)",
            "",
            "beta 1 is plain AT; the crafted perturbation is beta * adversarial + "
            "(1 - beta) * random.",
            "",
            "| beta | ACC | ASR |",
            "| ---: | ---: | ---: |",
        ]
        rows = dict(cells)
        if eps in sweep.at.get(threat, {}):
            rows[1.0] = sweep.at[threat][eps]
        for beta in sorted(rows, reverse=True):
            lines.append(f"| {beta:g} | {_acc_asr(rows[beta])} |")
        lines.append("")
    if sweep.cat:
        lines += [
            "### Composite AT (Gao Algorithm 1)",
            "",
            "| eps_s | eps_l | beta | steps | ACC | ASR |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in sweep.cat:
            d = r["config"]["defense"]
            lines.append(
                f"| {d['eps_s']:g} | {_budget(d['eps_l'])} | {d['beta']:g} | {d['steps']} | "
                f"{_acc_asr(r)} |"
            )
        lines.append("")
    if sweep.other:
        lines += ["### Other defenses", "", "| defense | ACC | ASR |", "| --- | ---: | ---: |"]
        lines += [f"| {r['config']['defense']['name']} | {_acc_asr(r)} |" for r in sweep.other]
        lines.append("")
    return lines


def _defense_setting(d: dict[str, Any]) -> str:
    keys = [k for k in ("threat", "eps", "eps_s", "eps_l", "beta", "steps") if k in d]
    return d["name"] + "".join(f", {k} {d[k]:.4g}" if k != "threat" else f" {d[k]}" for k in keys)


def _extras(r: dict[str, Any]) -> str:
    """The defense's own scalar numbers (ABL isolation precision, DP-SGD epsilon...)."""
    out = []
    for k, v in r["metrics"].items():
        if k in ("acc", "asr", "ra") or isinstance(v, (list, dict)) or v is None:
            continue
        out.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
    return ", ".join(out) or "-"


def budget_report(
    sweeps: list[str | Path],
    out: str | Path,
    *,
    runs: list[str | Path] = (),
    title: str = "Adversarial training against backdoors",
    command: str | None = None,
    notes: str | Path | None = None,
) -> Path:
    """Write `out` (Markdown) and one budget figure per sweep folder beside it.

    `sweeps` are folders of run folders (one attack each); `runs` are further single runs
    (e.g. the acceptance configs) listed in one table at the end.
    """
    if not sweeps and not runs:
        raise ConfigError("budget report: no sweep folders or runs given")
    loaded = [load_sweep(s) for s in sweeps]
    for sweep in loaded:  # folder names become figure names beside the report
        check_name(sweep.name, "sweep folder name")
    singles = [read_run(r) for r in runs]
    note_text = read_notes(notes)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", "", *written_by(command)]
    for sweep in loaded:
        figure = f"{out.stem}-{sweep.name}.png"
        if sweep.at or sweep.random:
            budget_figure(
                sweep, inside(out.parent, figure), _setting(sweep.baseline or sweep.runs[0])
            )
        lines += _sweep_section(sweep, figure)
    if singles:
        lines += [
            "## Single configurations",
            "",
            "| config | attack | defense | ACC | ASR | defense numbers | train s |",
            "| --- | --- | --- | ---: | ---: | --- | ---: |",
        ]
        for r in singles:
            c = r["config"]
            lines.append(
                f"| {r['name']} | {c['attack']['name']} on {c['dataset']['name']} | "
                f"{_defense_setting(c['defense'])} | {_acc_asr(r)} | {_extras(r)} | "
                f"{r['timings']['train_s']:.0f} |"
            )
        lines.append("")
    if note_text:
        lines += [note_text, ""]
    lines.append(
        "Run times are wall-clock seconds on the machine that ran them (2 CPU cores unless a "
        "run's result.json says otherwise)."
    )
    return write_text(out, "\n".join(lines) + "\n")
