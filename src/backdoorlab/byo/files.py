"""Files of the bring-your-own-model commands: a user's model from a weights file, the repaired
model's folder (weights, result.json, a results-database row) and a scan's JSON and figures."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backdoorlab.byo.api import RepairReport, ScanResult
from backdoorlab.data.base import Dataset, InputSpec
from backdoorlab.detectors.base import Detection
from backdoorlab.fingerprint import fingerprint
from backdoorlab.models.foreign import Normalized, load_foreign
from backdoorlab.plotting import pyplot, save_figure, show_image
from backdoorlab.records.files import (
    new_run_folder,
    new_run_id,
    save_tensors,
    write_json,
)
from backdoorlab.records.metrics import Metrics
from backdoorlab.records.record import RunRecord
from backdoorlab.records.store import ResultStore


def user_model(
    weights: str | Path,
    arch: str,
    data: Dataset,
    *,
    options: dict[str, Any] | None = None,
    key_map: str | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    num_classes: int | None = None,
) -> nn.Module:
    """The model in `weights` built as `arch` for `data`'s image shape; our registered
    architectures take normalisation inside (mean/std, default none), a factory's model is put
    behind it when mean/std are given."""
    c = data.channels
    spec = InputSpec(
        c,
        data.size,
        num_classes or data.num_classes,
        tuple(mean) if mean is not None else (0.0,) * c,
        tuple(std) if std is not None else (1.0,) * c,
    )
    return load_foreign(
        weights, arch, spec, options=options, key_map=key_map, normalize=mean is not None
    )


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights to save: a factory model's own keys (without the normalisation we added)."""
    return (model.net if isinstance(model, Normalized) else model).state_dict()


def save_repair(
    model: nn.Module,
    report: RepairReport,
    out: str | Path,
    *,
    source: dict[str, Any],
    db: str | Path | None = None,
    add_row: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write OUT/model.safetensors (the repaired weights, in the layout they were loaded in),
    OUT/result.json and (with `add_row`) a row of `db` (default OUT/../results.db)."""
    out = Path(out)
    created = datetime.now(timezone.utc)
    run_id = new_run_id(created)
    config = {
        "name": f"repair-{report.defense}",
        "seed": report.options.get("seed", 0),
        "dataset": {"name": str(source.get("data", "user"))},
        "model": {"name": str(source.get("arch", "user"))},
        "attack": {"name": "user trigger" if source.get("trigger") else "unknown"},
        "defense": report.options,
        "source": source,
    }
    evidence = ("scan_before", "scan_after", "steps", "held_out")
    found = {k: getattr(report, k) for k in evidence} if report.scan_before is not None else {}
    metrics = Metrics.from_dict({**(report.after or {}), **report.defense_report, **found})
    if report.before is not None:
        metrics = replace(metrics, before=Metrics.from_dict(report.before), der=report.der)
    record = RunRecord(
        kind="repair",
        run_id=run_id,
        name=config["name"],
        created=created.isoformat(timespec="seconds"),
        config_hash=fingerprint(config),
        metrics=metrics,
        timings={"total_s": report.seconds},
        config=config,
        extra={"repair": report.to_dict()},
    )
    with new_run_folder(out, overwrite) as tmp:
        save_tensors(tmp / "model.safetensors", state_of(model))
        record.save(tmp)
    if add_row:
        ResultStore(Path(db) if db is not None else out.parent / "results.db").add(
            record.to_row(out.resolve())
        )
    return out


def save_evaluation(
    metrics: dict[str, Any], out: str | Path, *, source: dict[str, Any], overwrite: bool = False
) -> Path:
    """Write OUT/result.json with the numbers of an evaluation and what they were measured on."""
    out = Path(out)
    with new_run_folder(out, overwrite) as tmp:
        numbers = Metrics.from_dict(metrics, "evaluate")
        RunRecord(kind="evaluate", metrics=numbers, extra={"source": source}).save(tmp)
    return out


def plot_detection(d: Detection, path: Path) -> Path:
    """A bar per class of the detector's values, suspects in red, anomaly index above each."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(d.values) + 2), 3.4))
    colors = ["tab:red" if c in d.suspects else "tab:gray" for c in range(len(d.values))]
    bars = ax.bar(range(len(d.values)), d.values, color=colors)
    for bar, s in zip(bars, d.scores, strict=True):
        ax.annotate(
            f"{s:.1f}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=7,
        )
    ax.set_xticks(range(len(d.values)))
    ax.set_xlabel("class (number above a bar: anomaly index)")
    ax.set_ylabel(d.value_name, fontsize=8)
    found = ", ".join(map(str, d.suspects)) or "none"
    ax.set_title(f"{d.detector}: suspected {found} (model score {d.score:.2f})", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_calibrated(result: ScanResult, path: Path) -> Path:
    """Per class, each detector's calibrated z (bars) against the verdict's threshold (line)."""
    c = result.calibration
    assert c is not None
    plt = pyplot()
    k = len(next(iter(c.z.values())))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * k + 2), 3.6))
    width = 0.8 / len(c.z)
    for i, (name, z) in enumerate(c.z.items()):
        ax.bar([x + (i - (len(c.z) - 1) / 2) * width for x in range(k)], z, width, label=name)
    ax.axhline(c.threshold, color="tab:red", linestyle="--", linewidth=1, label="threshold")
    ax.set_xticks(range(k))
    ax.set_xlabel("class")
    ax.set_ylabel("z against the references", fontsize=8)
    ax.set_title(result.verdict.split(" (")[0] + f" (score {c.score:.2f})", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_margin_inputs(result: ScanResult, path: Path) -> Path:
    """The input of largest margin for the scan's class: the suspect's beside the references'."""
    images = result.margin_inputs
    assert images is not None
    plt = pyplot()
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(1.8 * n, 2.2), squeeze=False)
    for i, ax in enumerate(axes[0]):
        show_image(ax, images[i])
        ax.set_title("your model" if i == 0 else f"reference {i}", fontsize=8)
    fig.suptitle(f"input of largest margin for class {result.margin_class}", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def scan_page(result: ScanResult) -> str:
    """The scan as Markdown: verdict, per-class calibrated z, the figures."""
    c = result.calibration
    lines = ["# Backdoor scan", "", f"**{result.verdict}**", ""]
    if result.caution:
        lines += [f"*{result.caution}*", ""]
    if c is None:
        lines += ["Uncalibrated: no benign references were given or trained.", ""]
    else:
        k = len(next(iter(c.z.values())))
        lines += [
            f"Calibrated against {c.references} benign references "
            f"({result.references_trained} trained for this scan); probes ran on "
            f"{result.probe_images} clean images. Score {c.score:.2f} against threshold "
            f"{c.threshold:.2f} (fitted p = {c.p_value:.2g}, empirical p = {c.p_empirical:.2g}).",
            "",
            "| detector | " + " | ".join(str(i) for i in range(k)) + " |",
            "| --- |" + " ---: |" * k,
            *(f"| {n} | " + " | ".join(f"{v:.2f}" for v in z) + " |" for n, z in c.z.items()),
            "",
            "![calibrated z per class](scan.png)",
            "",
        ]
    if result.margin_inputs is not None:
        lines += [
            "The input that gives the class the largest margin over the others (MM-BD's "
            "probe), for your model and for the references: a shortcut the references lack "
            "shows as a pattern they do not draw.",
            "",
            "![input of largest margin](margins.png)",
            "",
        ]
    lines += ["Per detector (raw values and the within-model anomaly index):", ""]
    lines += [f"![{n}]({n}.png)" for n in result.detections]
    return "\n".join(lines) + "\n"


def save_scan(result: ScanResult, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write OUT/scan.json, OUT/<detector>.png and the page (scan.md, scan.html with scan.png
    and margins.png) in one folder, written whole."""
    import markdown

    out = Path(out)
    details = {"kind": "scan", **result.to_dict()}
    summary = {k: details.get(k) for k in ("score", "p_value", "infected", "target", "verdict")}
    verdict = Metrics.from_dict(summary, "scan")
    record = RunRecord(kind="scan", metrics=verdict, extra={"details": "scan.json"})
    with new_run_folder(out, overwrite) as tmp:
        write_json(tmp / "scan.json", details)
        for name, d in result.detections.items():
            plot_detection(d, tmp / f"{name}.png")
        if result.calibration is not None:
            plot_calibrated(result, tmp / "scan.png")
        if result.margin_inputs is not None:
            plot_margin_inputs(result, tmp / "margins.png")
        page = scan_page(result)
        (tmp / "scan.md").write_text(page)
        body = markdown.markdown(page, extensions=["tables"], output_format="html")
        (tmp / "scan.html").write_text(
            "<!doctype html><meta charset='utf-8'><title>Backdoor scan</title>\n" + body
        )
        record.save(tmp)
    return out
