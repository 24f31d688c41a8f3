"""A zoo repaired by each defense (issue 26's repair page): how often a defense repairs an
infected model (ASR at most `asr` % at an ACC drop of at most `acc_drop` points), its mean ACC
drop, ASR after and DER, per defense and attack family; and what it costs a benign model.

Each cell is one model repaired by one defense: the runner records the infected model's ACC/ASR
(`Metrics.before`) beside the repaired one's. The true trigger is the runner's, used
here only to measure ASR; no defense sees it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from backdoorlab.errors import ConfigError
from backdoorlab.metrics.detection import share_interval
from backdoorlab.report.cells import Part, Row, family, select, write_csv
from backdoorlab.report.zoo import planted_asr

HEADER = [
    "defense",
    "attack",
    "models",
    "ACC drop",
    "ASR after",
    "DER",
    "repaired %",
    "repaired 95% CI",
]
BENIGN_HEADER = ["defense", "benign models", "ACC drop", "largest ACC drop", "over 1 point %"]
ALL = "all attacks"


@dataclass
class Repaired:
    """One model after one defense: its family (None: benign) and ACC/ASR before and after."""

    model: str
    family: str | None
    defense: str
    acc_before: float
    asr_before: float | None
    acc_after: float
    asr_after: float | None
    der: float | None

    @property
    def acc_drop(self) -> float:
        return self.acc_before - self.acc_after


def repaired_members(entry: dict[str, Any], cells: list[Row]) -> list[Repaired]:
    """The repair cells (those that recorded the infected model) as Repaired rows; `defense`
    names the axis or key of the defense (default: defense.name), `model` the model's axis."""
    keys = entry.get("group", "attack.name")
    keys = [keys] if isinstance(keys, str) else list(keys)
    defense_key, model_key = entry.get("defense", "defense.name"), entry.get("model", "model")
    out = []
    for c in select(entry, cells):
        before = c.metrics.before
        if before is None:
            continue
        attacked = c.config["attack"]["name"] != "none"
        out.append(
            Repaired(
                c.get(model_key) or c.label,
                family(c, keys) if attacked else None,
                c.value(defense_key),
                before.acc,
                before.asr,
                c.metrics.acc,
                c.metrics.asr,
                c.metrics.der,
            )
        )
    return out


def _mean(values: list[float | None]) -> str:
    kept = [v for v in values if v is not None]
    return f"{statistics.fmean(kept):.2f}" if kept else "-"


def repair_rows(
    members: list[Repaired], planted: float, asr_max: float, drop_max: float
) -> tuple[list[list[str]], list[list[str]], list[Repaired]]:
    """(infected table, benign table, attacked models whose backdoor did not plant)."""
    infected = [m for m in members if m.family is not None and (m.asr_before or 0) >= planted]
    failed = [m for m in members if m.family is not None and (m.asr_before or 0) < planted]
    benign = [m for m in members if m.family is None]
    defenses = list(dict.fromkeys(m.defense for m in members))
    families = list(dict.fromkeys(m.family for m in infected))
    table = [HEADER]
    for d in defenses:
        mine = [m for m in infected if m.defense == d]
        for f in [ALL, *families]:
            group = mine if f == ALL else [m for m in mine if m.family == f]
            if not group:
                continue
            ok = [
                (m.asr_after or 0) <= asr_max and m.acc_drop <= drop_max for m in group
            ]  # fmt: skip
            ci = share_interval(sum(ok), len(ok))
            table.append([
                d, f, str(len(group)), _mean([m.acc_drop for m in group]),
                _mean([m.asr_after for m in group]), _mean([m.der for m in group]),
                f"{100 * sum(ok) / len(ok):.1f}",
                "-" if ci is None else f"{100 * ci[0]:.1f}-{100 * ci[1]:.1f}",
            ])  # fmt: skip
    costs = [BENIGN_HEADER]
    for d in defenses:
        group = [m for m in benign if m.defense == d]
        if group:
            drops = [m.acc_drop for m in group]
            over = sum(x > 1 for x in drops)
            costs.append([d, str(len(group)), _mean(drops), f"{max(drops):.2f}",
                          f"{100 * over / len(group):.1f}"])  # fmt: skip
    return table, costs, failed


EVIDENCE_HEADER = ["model", "target", "scan before", "steps", "scan after", "ACC drop",
                   "ASR before", "ASR after", "repaired", "smallest trigger"]  # fmt: skip


def _smallest_trigger(held: dict[str, Any] | None) -> str:
    """The mask L1 of the smallest trigger found for the flagged class before the repair and
    in a new search after it (auto's evidence), or '-'."""
    if not held or "reversed_trigger_norm_after" not in held:
        return "-"
    return (
        f"{held['reversed_trigger_norm_before']:.1f} -> {held['reversed_trigger_norm_after']:.1f}"
    )


def _verdict(scan: dict[str, Any]) -> str:
    """A scan summary in a few characters: the class flagged (or none), score / threshold."""
    said = f"class {scan['target']}" if scan.get("infected") else "clean"
    return f"{said} ({scan['score']:.1f} / {scan['threshold']:.1f})"


def evidence_rows(
    entry: dict[str, Any], cells: list[Row], planted: float, asr_max: float, drop_max: float
) -> tuple[list[list[str]], str]:
    """Per model, what a scanning defense (auto) saw and did beside what the true trigger shows,
    and one line tallying the scan's verdicts against the truth."""
    model_key = entry.get("model", "model")
    table, tally = [EVIDENCE_HEADER], {"flagged": 0, "right": 0, "infected": 0, "benign": 0,
                                       "benign_flagged": 0, "repaired": 0}  # fmt: skip
    for c in select(entry, cells):
        before = c.metrics.before
        scan, after = c.metrics.scan_before, c.metrics.scan_after
        if before is None or scan is None or after is None:
            continue
        attacked = c.config["attack"]["name"] != "none"
        if attacked and (before.asr or 0) < planted:
            continue  # did not plant: set apart in the infected table
        target = c.config["attack"].get("target") if attacked else None
        drop = before.acc - c.metrics.acc
        ok = attacked and (c.metrics.asr or 0) <= asr_max and drop <= drop_max
        if attacked:
            tally["infected"] += 1
            tally["flagged"] += bool(scan["infected"])
            tally["right"] += bool(scan["infected"]) and scan["target"] == target
            tally["repaired"] += ok
        else:
            tally["benign"] += 1
            tally["benign_flagged"] += bool(scan["infected"])
        steps = ", ".join(s["defense"] for s in c.metrics.steps or []) or "-"
        asr = [before.asr, c.metrics.asr]
        table.append([
            c.get(model_key) or c.label, "-" if target is None else str(target), _verdict(scan),
            steps, _verdict(after), f"{drop:.2f}",
            *("-" if v is None else f"{v:.2f}" for v in asr),
            ("yes" if ok else "no") if attacked else "-", _smallest_trigger(c.metrics.held_out),
        ])  # fmt: skip
    if all(row[-1] == "-" for row in table[1:]):  # kept before the search again was recorded
        table = [row[:-1] for row in table]
    t = tally
    line = (
        f"The first scan flagged {t['flagged']} of {t['infected']} infected models "
        f"({t['right']} at their true target) and {t['benign_flagged']} of {t['benign']} benign "
        f"ones; {t['repaired']} of the infected were repaired."
    )
    return table, line


def repairs_part(
    rid: str, entry: dict[str, Any], spec: dict[str, Any], cells: list[Row], out
) -> Part:
    """The `repairs` report kind: per defense and family, the share of infected models
    repaired; with `models: benign`, what each defense costs the benign models; with `models:
    evidence`, per model what a scanning defense (auto) saw, did and left, beside the truth."""
    planted = planted_asr(entry)
    asr_max, drop_max = float(entry.get("asr", 10)), float(entry.get("acc_drop", 5))
    which = entry.get("models", "infected")
    if which not in ("infected", "benign", "evidence"):
        raise ConfigError(f"report {rid}: models is infected, benign or evidence, not {which!r}")
    if which == "evidence":
        table, line = evidence_rows(entry, cells, planted, asr_max, drop_max)
        title = entry.get("title", rid)
        if len(table) == 1:
            return Part(rid, title, notes=["No cell of this part recorded a scan yet."])
        write_csv(out, rid, table)
        notes = [
            line,
            "Scan: the calibrated scan's verdict (the class it flags, or clean) with its score "
            "and threshold, before the repair and after it (against references repaired alike). "
            "Target: the attack's true target, which no defense sees.",
        ]
        if table[0][-1] == "smallest trigger":
            notes.append(
                "Smallest trigger: the mask L1 norm of the smallest trigger Neural Cleanse's "
                "search finds for the flagged class on the model the unlearning step was given "
                "(before the repair, or after the steps before it), or where no step unlearned "
                "it on the model before the repair; and in a new search on the repaired model (a "
                "backdoor's shortcut is a small trigger; the trigger the repair unlearned no "
                "longer works by construction)."
            )
        return Part(rid, title, table=table, notes=notes)
    table, costs, failed = repair_rows(repaired_members(entry, cells), planted, asr_max, drop_max)
    title = entry.get("title", rid)
    chosen = table if which == "infected" else costs
    if len(chosen) == 1:
        return Part(rid, title, notes=["No repair cell of this part has run yet."])
    write_csv(out, rid, chosen)
    if which == "benign":
        notes = ["ACC drop: points of clean accuracy a benign model loses to the defense."]
    else:
        notes = [
            f"Infected: attacked models with ASR >= {planted:g}% before the repair. Repaired: ASR "
            f"<= {asr_max:g}% after it, at an ACC drop <= {drop_max:g} points; 95% interval by "
            "Wilson. ACC drop, ASR after and DER are means over the models."
        ]
        if failed:
            names = sorted({f"{m.model} (ASR {m.asr_before:.2f})" for m in failed})
            notes.append(f"Set apart, their backdoor did not plant: {', '.join(names)}.")
    return Part(rid, title, table=chosen, notes=notes)
