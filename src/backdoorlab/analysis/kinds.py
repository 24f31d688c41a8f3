"""The analyses by name, one signature for all: what `backdoorlab analyze` runs and what the
`analysis` report kind declares in a sweep file (its figure on the page, its numbers beside)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backdoorlab.analysis.curve import aft_curve, draw_curve
from backdoorlab.analysis.distance import feature_distances
from backdoorlab.analysis.labels import adversarial_labels
from backdoorlab.analysis.tsne import feature_tsne
from backdoorlab.errors import ConfigError
from backdoorlab.limits import read_json
from backdoorlab.paths import inside
from backdoorlab.records.files import write_json
from backdoorlab.report import Part, Row, pick, report_kind


@dataclass(frozen=True)
class Analysis:
    """An analysis of a run folder (beside a benign model's where it compares two)."""

    compute: Callable[..., dict[str, Any]]  # (run, benign, out, **options) -> its numbers
    figure: str  # the PNG it writes into its output folder
    options: tuple[str, ...]  # the keyword options it takes
    benign: bool = False  # whether it needs a benign model's run folder
    summary: Callable[[dict[str, Any]], str] | None = None  # its numbers in one line
    # in a report: drawn from the cell's database row alone, (row, out) -> its numbers
    from_row: Callable[[Row, Path], dict[str, Any]] | None = None


def _curve(run: Path, benign: Path | None, out: Path) -> dict[str, Any]:
    return {"figure": str(aft_curve(run, Path(out) / "aft-curve.png"))}


def _curve_of_row(c: Row, out: Path) -> dict[str, Any]:
    name = str(c.config.get("name", c.label))
    return {"figure": str(draw_curve(name, c.metrics, out / "aft-curve.png"))}


ANALYSES: dict[str, Analysis] = {
    "labels": Analysis(
        lambda run, benign, out, **o: adversarial_labels(run, benign, out, **o),
        "adversarial-labels.png",
        ("eps", "steps", "alpha", "limit"),
        benign=True,
        summary=lambda r: (
            f"Adversarial examples labelled as the target (class {r['target']}): infected "
            f"{r['infected']['target_share']:.2f}%, benign {r['benign']['target_share']:.2f}%."
        ),
    ),
    "distance": Analysis(
        lambda run, benign, out, **o: feature_distances(run, benign, out, **o),
        "feature-distances.png",
        ("eps", "steps", "alpha", "limit"),
        benign=True,
        summary=lambda r: f"D_benign {r['D_benign']:.3f}, D_infected {r['D_infected']:.3f}.",
    ),
    "tsne": Analysis(
        lambda run, benign, out, **o: feature_tsne(run, out, **o), "tsne.png", ("count", "seed")
    ),
    "curve": Analysis(_curve, "aft-curve.png", (), from_row=_curve_of_row),
}


def analyze(
    name: str, run: str | Path, out: str | Path, *, benign: str | Path | None = None, **options
) -> dict[str, Any]:
    """Run analysis `name` on the run folder `run` (and `benign`); JSON and PNG go to `out`."""
    if name not in ANALYSES:
        raise ConfigError(f"analysis: unknown {name!r} (known: {', '.join(ANALYSES)})")
    a = ANALYSES[name]
    unknown = sorted(set(options) - set(a.options))
    if unknown:
        raise ConfigError(f"analysis {name}: unknown option {', '.join(unknown)}")
    if a.benign and benign is None:
        raise ConfigError(f"analysis {name}: needs a benign model's run folder (`benign`)")
    return a.compute(Path(run), None if benign is None else Path(benign), Path(out), **options)


@report_kind("analysis")
def analysis_section(
    rid: str, entry: dict[str, Any], spec: dict[str, Any], cells: list[Row], out: Path
) -> Part:
    """A sweep file's analysis of one cell (`run`, and `benign` where it compares two), e.g.

    labels-badnets: {kind: analysis, analysis: labels, run: {attack: badnets},
                     benign: {attack: clean}, options: {eps: 0.2}}

    Its JSON and PNG go to the folder OUT-<rid>; the page shows the figure and its numbers. The
    AFT curve is drawn from the database row; an analysis that loads models, once its run folders
    are gone, reads the numbers it wrote there for the same cells and options."""
    name = entry.get("analysis")
    if name not in ANALYSES:
        raise ConfigError(f"report {rid}: analysis must be one of {', '.join(ANALYSES)}")
    a = ANALYSES[name]
    run = pick(rid, "run", entry.get("run"), cells)
    benign = pick(rid, "benign", entry.get("benign"), cells) if a.benign else None
    folder = inside(out.parent, f"{out.name}-{rid}")
    options = entry.get("options", {})
    title = entry.get("title", rid)
    inputs = {"analysis": name, "run": run.key, "benign": benign and benign.key, "options": options}
    kept = folder / "inputs.json"
    gone = [c.label for c in (run, benign) if c is not None and not _has_model(c)]
    if a.from_row is not None:
        result = a.from_row(run, folder)
    elif not gone:
        result = analyze(
            name,
            run.folder,
            folder,
            benign=None if benign is None else benign.folder,
            **options,
        )
        write_json(kept, inputs)
    else:
        result = _kept_result(rid, folder, a, inputs, gone)
    notes = [a.summary(result)] if a.summary is not None else []
    return Part(rid, title, figures=[(title, folder / a.figure)], notes=notes)


def _has_model(c: Row) -> bool:
    return c.folder is not None and (c.folder / "model.safetensors").is_file()


def _kept_result(
    rid: str, folder: Path, a: Analysis, inputs: dict[str, Any], gone: list[str]
) -> dict[str, Any]:
    """The numbers an earlier report of this analysis wrote for the same cells and options."""
    numbers = folder / Path(a.figure).with_suffix(".json").name
    if not (folder / "inputs.json").is_file() or not numbers.is_file():
        raise ConfigError(
            f"report {rid}: the model of {', '.join(gone)} is gone (no run folder) and "
            f"{folder} holds no earlier result of this analysis"
        )
    if read_json(folder / "inputs.json") != json.loads(json.dumps(inputs)):
        raise ConfigError(
            f"report {rid}: the model of {', '.join(gone)} is gone (no run folder) and the "
            f"result in {folder} is of other cells or options"
        )
    return read_json(numbers)
