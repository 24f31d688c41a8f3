"""A scan: every configured detector on a model, calibrated against benign references (trained
here or given) into one score, one target or none, and a verdict at a stated false-positive rate.

Both front doors call `scan_model`: the runner on the models it trains, `backdoorlab.scan` on a
user's model. The references' detections are kept in the store beside their weights, keyed by
the reference, the detector's options and the probe data, so a second scan runs the detectors on
the suspect only.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator
from rich.progress import track
from torch import nn

from backdoorlab.config_base import QuietDefaults, parameter_error
from backdoorlab.data.base import Dataset
from backdoorlab.detectors.base import Detection, DetectorConfig, canonical, run_detector
from backdoorlab.detectors.calibrate import Calibration, calibrate, screened
from backdoorlab.detectors.mm_bd import MMBDConfig, max_margins
from backdoorlab.detectors.references import (
    ReferenceRecipe,
    Store,
    data_key,
    digest,
    split_clean,
    train_references,
)
from backdoorlab.detectors.trigger_search import TriggerSearch, reverse_trigger
from backdoorlab.errors import ConfigError
from backdoorlab.metrics.core import accuracy
from backdoorlab.train.perf import prepare_model

# chosen on the development zoo (configs/results/detection-dev.yaml) with assess.repair's
# DETECTORS_BY_DEFAULT; the second development round's pick (adv-labels-l2 + mm-bd on raw
# values) is not the default: with a repair's 400 images it flags most benign models
# (docs/results/repair-zoo.md, auto-pick; docs/results/detection-dev-2-data-320.md)
EVIDENCE_BY_DEFAULT = "profile"


def _screen_search() -> TriggerSearch:
    # the MNIST configs' Neural Cleanse budget (configs/mnist-badnets-nc.yaml): 60 steps of 5
    # batches of 128, against the reference implementation's 1,000 passes over the data
    return TriggerSearch(steps=60, batches_per_step=5, batch_size=128)


class ScreenConfig(BaseModel):
    """A second look at the classes the probes rank highest: Neural Cleanse's trigger search on
    each, on the suspect and on every reference (K-Arm's idea, Shen et al. 2021: spend the
    costly search on the few promising classes), its mask norm calibrated per class."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # strict: lax mode would read `screen: {classes: true}` as one class
    classes: StrictInt = Field(
        3, ge=1, description="how many of the probes' top classes are searched"
    )
    search: TriggerSearch = Field(default_factory=_screen_search)
    seed: int = Field(0, ge=0, description="seed of the search's mini-batches")

    @field_validator("search", mode="before")
    @classmethod
    def _over_screen_budget(cls, value: Any) -> Any:
        # a partial search (`{steps: 20}`) changes the screen's budget, not TriggerSearch's own
        return {**_screen_search().model_dump(), **value} if isinstance(value, dict) else value


class CalibrationConfig(QuietDefaults):
    """A calibrated scan's settings: the references' recipe, which evidence is calibrated, and
    the false-positive rate of the verdict."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    quiet = ("screen",)  # added after the detection pages were published

    references: ReferenceRecipe = Field(default_factory=ReferenceRecipe)
    evidence: Literal["values", "index", "profile"] = Field(
        EVIDENCE_BY_DEFAULT,
        description="what is compared per class with the references: the raw value, the "
        "anomaly index within the model, or the residual of the model's class profile fitted to "
        "the references' (detectors/calibrate.py)",
    )
    fpr: float = Field(0.05, gt=0, lt=1, description="false-positive rate of the verdict")
    detectors: list[str] | None = Field(
        None,
        description="the detectors whose evidence is calibrated (None: every one that runs); the "
        "others are reported raw",
    )
    min_threshold: float = Field(
        10.0,
        ge=0,
        description="the verdict's threshold is never below this z (set on the development zoo: "
        "its benign models reached 8.5, its infected ones 12.5 and more)",
    )
    floor: float = Field(
        0.5,
        ge=0,
        description="a class's spread over the references counts as at least this share of the "
        "median spread of the classes",
    )
    screen: ScreenConfig | None = Field(
        None,
        description="Neural Cleanse's trigger search on the probes' top classes, joined to the "
        "verdict (None: the probes alone)",
    )


@dataclass
class ScanOutcome:
    """The detections on the suspect, the calibrated verdict (None: not calibrated), and what
    the references cost: how many were trained now, how many probe images were used."""

    detections: dict[str, Detection]
    calibration: Calibration | None = None
    references_trained: int = 0
    probe_images: int = 0
    reference_values: dict[str, list[list[float]]] = field(default_factory=dict)
    # the input of largest margin for the flagged (or most suspicious) class: the suspect's
    # first, then up to three references' [n, C, H, W]; a data-free picture of the shortcut
    margin_inputs: torch.Tensor | None = None
    margin_class: int | None = None
    reference_images: int = 0  # the images the scan's own references train on (0: given ones)
    # ACC on the probe images: of the suspect, and of each reference (references that did not
    # learn the task calibrate nothing: accuracy_caution)
    accuracy: float | None = None
    reference_accuracy: list[float] = field(default_factory=list)
    # the benign references compared with (trained here, found in the store, or given)
    references: list[nn.Module] = field(default_factory=list)
    # per reference trained here, the attempt it was kept from (references.retry_recipe)
    reference_attempts: list[int] = field(default_factory=list)
    # each reference's key in the store ([]: references not kept there)
    reference_keys: list[str] = field(default_factory=list)


def _detect_cached(
    name: str,
    model: nn.Module,
    data: Dataset,
    cfg: DetectorConfig,
    key: str,
    store: Store | None,
) -> Detection:
    """A reference's detection, from `store` when kept under `key`."""
    if store is not None:
        kept = store.get_state(key)
        if kept is not None and "detection" in kept:
            return Detection(**json.loads(bytes(kept["detection"].tolist()).decode()))
    found = run_detector(name, model, data, cfg)
    if store is not None:
        blob = json.dumps(found.to_dict()).encode()
        store.put_state(key, {"detection": torch.tensor(list(blob), dtype=torch.uint8)})
    return found


def calibrated(
    suspect: dict[str, Detection],
    references: list[dict[str, Detection]],
    calibration: CalibrationConfig,
) -> Calibration:
    """The suspect's detections calibrated against the references' at `calibration`'s settings."""
    return calibrate(
        suspect,
        references,
        calibration.fpr,
        floor=calibration.floor,
        evidence=calibration.evidence,
        min_threshold=calibration.min_threshold,
    )


# A reference below this share of the suspect's accuracy on the probe images has not learned the
# task: a scan trains it again (references.RETRIES) and the caution names any that stays below.
# Issue 26's SGD LeNet (python -m scripts.reference_accuracy): the model 93.6%, the default
# recipe's 8 references 12.0, 12.0, 12.0, 12.0, 13.6, 40.8, 60.4 and 76.4% on 250 images.
UNLEARNED_SHARE = 0.5


def scan_model(
    model: nn.Module,
    clean: Dataset,
    detectors: dict[str, DetectorConfig],
    calibration: CalibrationConfig | None = None,
    references: list[nn.Module] | None = None,
    store: Store | None = None,
    progress: bool = False,
    screen_classes: list[int] | None = None,
    reference_keys: list[str] | None = None,
) -> ScanOutcome:
    """Run `detectors` on `model` with the defender's `clean` data; with `calibration`, against
    `references` when given (the probes then see all of `clean`), else against references
    trained here on a share of `clean` (the probes see the rest). A screen searches
    `screen_classes` where given, else the probes' top classes. Given references are kept in
    `store` only with their `reference_keys` (our own, e.g. references repaired by `auto`)."""
    # the layout PGD and training put a model in (channels_last), before any probe: a probe run
    # before PGD converts the model would otherwise see other kernels than the same probe after
    prepare_model(model)
    for ref in references or []:
        prepare_model(ref)
    if calibration is None:
        found = {n: run_detector(n, model, clean, c) for n, c in detectors.items()}
        return ScanOutcome(found, probe_images=len(clean))
    used = calibration.detectors or list(detectors)
    missing = sorted(set(used) - set(detectors))
    if missing:
        raise ConfigError(f"calibrate.detectors: {missing} do not run ({sorted(detectors)} do)")
    keys: list[str]
    attempts: list[int] = []
    trained = images = 0
    if references is None:
        recipe = calibration.references
        own, probe = split_clean(clean, recipe.train_share)
        acc = round(accuracy(model, probe), 2)

        def learned(ref: nn.Module) -> bool:
            return accuracy(ref, probe) >= UNLEARNED_SHARE * acc

        made = train_references(model, own, recipe, store, progress, learned)
        references, keys, trained, attempts = made.models, made.keys, made.trained, made.attempts
        images = len(own)
    else:
        probe, keys = clean, list(reference_keys or [])
        acc = round(accuracy(model, probe), 2)
        if not keys:
            store = None  # a user's references are not ours to keep
        elif len(keys) != len(references):
            raise ValueError(f"{len(keys)} reference keys for {len(references)} references")
    found = {n: run_detector(n, model, probe, c) for n, c in detectors.items()}
    ref_acc = [round(accuracy(ref, probe), 2) for ref in references]
    probe_key = data_key(probe)
    ref_found = []
    for i, ref in enumerate(track(references, "probing references", disable=not progress)):
        ref_found.append(
            {
                n: _detect_cached(
                    n,
                    ref,
                    probe,
                    c,
                    digest("detection", keys[i], c.model_dump_json(), probe_key) if keys else "",
                    store,
                )
                for n, c in detectors.items()
            }
        )
    result = calibrated(
        {n: found[n] for n in used}, [{n: r[n] for n in used} for r in ref_found], calibration
    )
    if calibration.screen is not None:
        result = _screened(
            model, references, keys, probe, result, calibration, store, progress, screen_classes
        )
    c = result.target if result.target is not None else _top_class(result)
    shape = tuple(probe.images.shape[1:])
    cfg = MMBDConfig(name="mm-bd")
    device = probe.device
    inputs = [max_margins(m, shape, probe.num_classes, cfg, device, [c])[1][0]
              for m in [model, *references[:3]]]  # fmt: skip
    raw = {n: [r[n].values for r in ref_found] for n in detectors}
    return ScanOutcome(
        found,
        result,
        trained,
        len(probe),
        raw,
        torch.stack(inputs),
        c,
        images,
        acc,
        ref_acc,
        list(references),
        attempts,
        keys,
    )


def _screened(
    model: nn.Module,
    references: list[nn.Module],
    keys: list[str],
    probe: Dataset,
    result: Calibration,
    calibration: CalibrationConfig,
    store: Store | None,
    progress: bool,
    classes: list[int] | None,
) -> Calibration:
    """`result` with the screen's trigger searches joined (ScreenConfig); a reference's search
    is kept in `store` per class, so the next suspect's classes cost the references nothing
    when searched before."""
    screen = calibration.screen
    assert screen is not None
    if classes is None:
        per_class = result.class_z()
        order = sorted(range(len(per_class)), key=lambda k: (-per_class[k], k))
        classes = sorted(order[: screen.classes])
    data = canonical(probe)
    settings, probe_key = screen.model_dump_json(exclude={"classes"}), data_key(probe)

    def norm(m: nn.Module, c: int, key: str) -> float:
        kept = store.get_state(key) if store is not None and key else None
        if kept is not None and "norm" in kept:
            return float(kept["norm"][0])
        found = reverse_trigger(m, data, c, screen.search, screen.seed)[2]
        if store is not None and key:
            store.put_state(key, {"norm": torch.tensor([found], dtype=torch.float64)})
        return found

    t0 = time.perf_counter()
    mine = [norm(model, c, "") for c in classes]
    seconds = round(time.perf_counter() - t0, 3)
    theirs = [
        [norm(ref, c, digest("screen", keys[i], settings, probe_key, str(c)) if keys else "")
         for c in classes]
        for i, ref in enumerate(track(references, "screening references", disable=not progress))
    ]  # fmt: skip
    joined = screened(result, classes, mine, theirs, calibration.floor, calibration.min_threshold)
    assert joined.screen is not None
    joined.screen["seconds"] = seconds  # the suspect's searches (the references' are kept)
    return joined


# The fewest images references trained on where a measured zoo held the verdict's stated
# false-positive rate: on the held-out zoo, references on 1,000 images flagged none of 24 benign
# models at 5% (docs/results/detection-heldout.md); on 250, 4 of 24
# (docs/results/detection-heldout-data-500.md); on 160, 6 of 24 (docs/results/repair-zoo.md).
HELD_FPR_IMAGES = 1000


def reference_caution(images: int) -> str | None:
    """A warning where the references trained here on fewer images than any size measured to
    hold the verdict's false-positive rate (None: enough images, or references given)."""
    if images <= 0 or images >= HELD_FPR_IMAGES:
        return None
    return (
        f"caution: the references trained on {images} images; references trained on 160 and "
        "250 images flagged 25% and 17% of the held-out zoo's benign models at a stated 5% "
        f"(none on {HELD_FPR_IMAGES:,}): give more clean data, or references of your own"
    )


def accuracy_caution(model: float | None, references: list[float]) -> str | None:
    """A warning where references fall far below the suspect's accuracy on the probe images:
    they did not learn the task, and a verdict against them says little (None: they did)."""
    if model is None:
        return None
    short = sorted(a for a in references if a < UNLEARNED_SHARE * model)
    if not short:
        return None
    span = f"{short[0]:.1f}%" if short[0] == short[-1] else f"{short[0]:.1f}-{short[-1]:.1f}%"
    return (
        f"caution: {len(short)} of {len(references)} references reach {span} accuracy on the "
        f"probe images against the model's {model:.1f}%: they did not learn the task, so the "
        "verdict compares the model with untrained ones (train them otherwise, or give "
        "references of your own)"
    )


def retry_note(attempts: list[int]) -> str | None:
    """A line naming the references trained again because they did not learn at the recipe's
    learning rate (None: none was)."""
    again = [i + 1 for i, a in enumerate(attempts) if a]
    if not again:
        return None
    factors = ", ".join(str(2 ** attempts[i - 1]) for i in again)
    return (
        f"note: {len(again)} of {len(attempts)} references (number {', '.join(map(str, again))}) "
        "did not learn the task at the recipe's learning rate and were trained again with the "
        f"rate divided and the epochs multiplied by {factors} (references.retry_recipe)"
    )


def scan_caution(
    images: int, model: float | None, references: list[float], attempts: list[int] | None = None
) -> str | None:
    """Every warning about a scan's references, one per line (None: none)."""
    lines = (reference_caution(images), accuracy_caution(model, references),
             retry_note(attempts or []))  # fmt: skip
    return "\n".join(w for w in lines if w) or None


def _top_class(c: Calibration) -> int:
    """The class of the largest calibrated z over the detectors."""
    per_class = c.class_z()
    return max(range(len(per_class)), key=per_class.__getitem__)


def calibrated_detection(outcome: ScanOutcome) -> dict[str, Any]:
    """The calibrated scan in a detection's shape (per class: the largest z over the detectors;
    a suspect only when the verdict is infected), for tables that list detectors side by side."""
    c = outcome.calibration
    if c is None:
        raise ValueError("the scan was not calibrated")
    per_class = c.class_z()
    return Detection(
        "calibrated",
        [round(float(v), 3) for v in per_class],
        [round(float(v), 3) for v in per_class],
        [c.target] if c.target is not None else [],
        c.score,
        "largest calibrated z over the detectors",
        # the probes' seconds on the model, and the screen's searches on it where it ran
        seconds=round(
            sum(d.seconds for d in outcome.detections.values())
            + ((c.screen or {}).get("seconds") or 0.0),
            3,
        ),  # fmt: skip
        details={
            **c.to_dict(),
            "references_trained": outcome.references_trained,
            "probe_images": outcome.probe_images,
            "reference_values": outcome.reference_values,
            "accuracy": outcome.accuracy,
            "reference_accuracy": outcome.reference_accuracy,
            "reference_attempts": outcome.reference_attempts,
        },
    ).to_dict()


def recalibrated_detection(
    stored: dict[str, dict[str, Any]], calibration: CalibrationConfig
) -> dict[str, Any]:
    """A kept scan calibrated again under other `calibration` settings, with no model run:
    `stored` is a record's detections (each probe's on the suspect, and under `calibrated` the
    values every reference gave); the references' recipe must be the one the scan used."""
    kept = stored.get("calibrated", {}).get("details", {}).get("reference_values")
    if not kept:
        raise ConfigError("recalibrate: the record keeps no references' values (not calibrated)")
    if calibration.screen is not None:
        raise ConfigError(
            "recalibrate: a screen searches the model again; it cannot be scored from kept values"
        )
    used = calibration.detectors or sorted(kept)
    missing = [n for n in used if n not in kept or n not in stored]
    if missing:
        raise ConfigError(f"recalibrate: {missing} were not run on the model and its references")
    suspect = {n: Detection(**stored[n]) for n in used}
    refs = [
        {n: replace(suspect[n], values=kept[n][i]) for n in used} for i in range(len(kept[used[0]]))
    ]
    result = calibrated(suspect, refs, calibration)
    details = stored["calibrated"]["details"]
    outcome = ScanOutcome(
        suspect, result, 0, details.get("probe_images", 0), {n: kept[n] for n in used},
        accuracy=details.get("accuracy"), reference_accuracy=details.get("reference_accuracy", []),
        reference_attempts=details.get("reference_attempts", []),
    )  # fmt: skip
    return calibrated_detection(outcome)


def validated_calibration(settings: dict[str, Any]) -> CalibrationConfig:
    """A calibrated scan's settings; a bad key or value is one ConfigError line."""
    try:
        return CalibrationConfig.model_validate(settings)
    except ValidationError as exc:
        raise ConfigError(parameter_error(exc, "scan")) from None
