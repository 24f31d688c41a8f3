"""Bring your own model: scan it. Is any PyTorch classifier backdoored, and towards which class?
The scan's result, and its folder: scan.json, a figure per detector, the calibrated scores and
the page (Markdown and HTML)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backdoorlab.assess.repair import DETECTORS_BY_DEFAULT
from backdoorlab.byo.api import fitted_data, placed_model, reference_cache
from backdoorlab.config_base import validated
from backdoorlab.data.user import DataSource
from backdoorlab.detectors.base import DETECTORS, Detection
from backdoorlab.detectors.calibrate import Calibration
from backdoorlab.detectors.references import ReferenceRecipe
from backdoorlab.detectors.scan import (
    EVIDENCE_BY_DEFAULT,
    ScreenConfig,
    scan_caution,
    scan_model,
    validated_calibration,
)
from backdoorlab.errors import ConfigError
from backdoorlab.experiment.cache import StageCache
from backdoorlab.experiment.prepare import resolve_device
from backdoorlab.plotting import pyplot, save_figure, show_image
from backdoorlab.records.files import write_json
from backdoorlab.records.metrics import Metrics
from backdoorlab.records.record import FileWriter, RunRecord, write_run


@dataclass
class ScanResult:
    """The detectors' findings; with references, the calibrated verdict: one score, one target
    or none, a p-value, and how many references were trained for it."""

    detections: dict[str, Detection]
    suspects: dict[int, list[str]] = field(default_factory=dict)
    calibration: Calibration | None = None  # with benign references: the calibrated verdict
    references_trained: int = 0
    probe_images: int = 0
    margin_inputs: torch.Tensor | None = None  # suspect, then references (detectors/scan.py)
    margin_class: int | None = None
    reference_images: int = 0  # the images the scan's own references train on (0: given ones)
    accuracy: float | None = None  # ACC on the probe images, of the model and each reference
    reference_accuracy: list[float] = field(default_factory=list)
    reference_attempts: list[int] = field(default_factory=list)  # 0: trained as the recipe says

    @property
    def caution(self) -> str | None:
        """Warnings where the references trained on too few images to hold the stated
        false-positive rate, or did not learn the task, and which were trained again
        (detectors/scan.py)."""
        return scan_caution(
            self.reference_images, self.accuracy, self.reference_accuracy, self.reference_attempts
        )

    @property
    def score(self) -> float | None:
        """The calibrated model score (largest z over classes and detectors)."""
        return None if self.calibration is None else self.calibration.score

    @property
    def p_value(self) -> float | None:
        """The calibrated p-value (normal fitted to the references' leave-one-out scores)."""
        return None if self.calibration is None else self.calibration.p_value

    @property
    def infected(self) -> bool | None:
        """The calibrated verdict (None without references)."""
        return None if self.calibration is None else self.calibration.infected

    @property
    def target(self) -> int | None:
        """The suspected target class of an infected verdict."""
        return None if self.calibration is None else self.calibration.target

    @property
    def verdict(self) -> str:
        c = self.calibration
        if c is not None:
            how = (
                f"score {c.score:.2f}, threshold {c.threshold:.2f}, empirical p = "
                f"{c.p_empirical:.2g}; calibrated by {c.references} references"
            )
            if c.infected:
                return f"backdoor suspected: target class {c.target} ({how})"
            return f"no backdoor found ({how})"
        if not self.suspects:
            return "no class stands out: no backdoor found by " + ", ".join(self.detections)
        parts = [f"class {c} ({', '.join(by)})" for c, by in self.suspects.items()]
        return "suspected target " + "; ".join(parts) + " (uncalibrated: no references)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "infected": self.infected,
            "target": self.target,
            "score": self.score,
            "p_value": self.p_value,
            "suspects": {str(c): by for c, by in self.suspects.items()},
            "detections": {n: d.to_dict() for n, d in self.detections.items()},
            "references_trained": self.references_trained,
            "probe_images": self.probe_images,
            "margin_class": self.margin_class,
            "reference_images": self.reference_images,
            "accuracy": self.accuracy,
            "reference_accuracy": self.reference_accuracy,
            "reference_attempts": self.reference_attempts,
            "caution": self.caution,
            **({"calibration": self.calibration.to_dict()} if self.calibration else {}),
        }


def scan(
    model: nn.Module,
    data: DataSource,
    *,
    detectors: tuple[str, ...] | list[str] = DETECTORS_BY_DEFAULT,
    options: dict[str, dict[str, Any]] | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    device: str = "auto",
    references: int | list[nn.Module] | None = 8,
    recipe: ReferenceRecipe | dict[str, Any] | None = None,
    evidence: str = EVIDENCE_BY_DEFAULT,
    fpr: float = 0.05,
    cache: str | Path | None = None,
    progress: bool = False,
    screen: int | ScreenConfig | dict[str, Any] | None = None,
) -> ScanResult:
    """Is `model` backdoored, and towards which class? Each detector's per-class evidence
    (`options[name]` its settings), calibrated against benign references of the same
    architecture at false-positive rate `fpr` (detectors/scan.py): `references` fresh copies of
    the model trained on half of `data` by `recipe` (kept in `cache`, default
    `reference_cache()`, so the next scan trains nothing), or the benign models given (at least
    3), or None for the detectors' uncalibrated findings. `screen` classes, the probes' top ones,
    are searched again for a small trigger (Neural Cleanse) on the model and the references (a
    `ScreenConfig` or its dict also sets the search's budget)."""
    dev = resolve_device(device)
    model = placed_model(model, mean, std, dev)
    clean, _ = fitted_data(model, data, "test", dev, "data")
    options = options or {}
    unknown = set(options) - set(detectors)
    if unknown:
        raise ConfigError(f"detector options for {sorted(unknown)}, which do not run")
    configs = {
        name: validated(DETECTORS, {"name": name, **options.get(name, {})}, f"detector {name}")
        for name in detectors
    }
    calibration, given = None, None
    if references is not None:
        if isinstance(references, bool) or not isinstance(references, int | list | tuple):
            raise ConfigError(
                "references: a number of references to train, a list of benign models, or None"
            )
        settings: dict[str, Any] = {"evidence": evidence, "fpr": fpr}
        if screen is not None:
            settings["screen"] = screen_settings(screen)
        if isinstance(references, int):
            base = recipe.model_dump() if isinstance(recipe, ReferenceRecipe) else recipe or {}
            settings["references"] = {**base, "count": references}
        else:
            given = [placed_model(ref, mean, std, dev) for ref in references]
        calibration = validated_calibration(settings)
    store = StageCache(cache if cache is not None else reference_cache())
    outcome = scan_model(model, clean, configs, calibration, given, store, progress)
    suspects: dict[int, list[str]] = {}
    for name, d in outcome.detections.items():
        for c in d.suspects:
            suspects.setdefault(c, []).append(name)
    ordered = dict(sorted(suspects.items(), key=lambda kv: (-len(kv[1]), kv[0])))
    return ScanResult(
        outcome.detections,
        ordered,
        outcome.calibration,
        outcome.references_trained,
        outcome.probe_images,
        outcome.margin_inputs,
        outcome.margin_class,
        outcome.reference_images,
        outcome.accuracy,
        outcome.reference_accuracy,
        outcome.reference_attempts,
    )


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


def screen_settings(screen: int | ScreenConfig | dict[str, Any]) -> dict[str, Any]:
    """A screen given as a class count, a `ScreenConfig` or its dict, as calibration settings."""
    if isinstance(screen, ScreenConfig):
        return screen.model_dump()
    if isinstance(screen, dict):
        return dict(screen)
    if isinstance(screen, bool) or not isinstance(screen, int):
        raise ConfigError("screen: a number of classes, a ScreenConfig or its dict, or None")
    return {"classes": screen}


def screen_row(screen: dict[str, Any], classes: int) -> str:
    """The screen's calibrated z as a table row over every class ('-': not searched)."""
    z = dict(zip(screen["classes"], screen["z"], strict=True))
    cells = [f"{z[i]:.2f}" if i in z else "-" for i in range(classes)]
    return "| screen (trigger search) | " + " | ".join(cells) + " |"


def scan_page(result: ScanResult) -> str:
    """The scan as Markdown: verdict, per-class calibrated z, the figures."""
    c = result.calibration
    lines = ["# Backdoor scan", "", f"**{result.verdict}**", ""]
    for warning in (result.caution or "").splitlines():
        lines += [f"*{warning}*", ""]
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
            *([screen_row(c.screen, k)] if c.screen else []),
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

    details = {"kind": "scan", **result.to_dict()}
    summary = {k: details.get(k) for k in ("score", "p_value", "infected", "target", "verdict")}
    verdict = Metrics.from_dict(summary, "scan")
    record = RunRecord(kind="scan", metrics=verdict, extra={"details": "scan.json"})
    page = scan_page(result)
    body = markdown.markdown(page, extensions=["tables"], output_format="html")
    html = "<!doctype html><meta charset='utf-8'><title>Backdoor scan</title>\n" + body
    files: dict[str, FileWriter] = {"scan.json": lambda p: write_json(p, details)}
    for name, d in result.detections.items():
        files[f"{name}.png"] = lambda p, d=d: plot_detection(d, p)
    if result.calibration is not None:
        files["scan.png"] = lambda p: plot_calibrated(result, p)
    if result.margin_inputs is not None:
        files["margins.png"] = lambda p: plot_margin_inputs(result, p)
    files.update({"scan.md": page.encode(), "scan.html": html.encode()})
    return write_run(out, record, files, overwrite=overwrite)
