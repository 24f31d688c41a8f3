"""Bring your own model: evaluate and repair any PyTorch classifier on your own data, with your
own trigger, and write what was done (the repaired weights, result.json, a results-database row).
Each takes a plain `nn.Module` that maps [0,1] images to logits (or is given `mean`/`std`, and
normalisation is put in front); `user_model` builds one from a weights file."""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from backdoorlab.assess import repair_and_measure
from backdoorlab.assess.repair import cleared
from backdoorlab.attacks.user_trigger import make_trigger
from backdoorlab.config_base import format_validation_error, parameter_error, validated
from backdoorlab.data.base import Dataset, InputSpec
from backdoorlab.data.user import DataSource, load_user_data
from backdoorlab.defenses.base import DEFENSES, DefenseContext, build_defense
from backdoorlab.detectors.scan import scan_caution
from backdoorlab.errors import ConfigError
from backdoorlab.experiment.cache import StageCache
from backdoorlab.experiment.prepare import resolve_device
from backdoorlab.fingerprint import fingerprint
from backdoorlab.metrics.core import der, measure
from backdoorlab.models.foreign import Normalized, load_foreign
from backdoorlab.records.files import new_run_id, save_tensors
from backdoorlab.records.metrics import Metrics
from backdoorlab.records.record import RunRecord, write_run
from backdoorlab.train.config import TrainConfig


def with_normalization(
    model: nn.Module, mean: tuple[float, ...] | None, std: tuple[float, ...] | None
) -> nn.Module:
    """`model` behind (x - mean) / std when both are given."""
    if (mean is None) != (std is None):
        raise ConfigError("give both `mean` and `std` (or neither)")
    if mean is None:
        return model
    return Normalized(model, tuple(mean), tuple(std))


@torch.no_grad()
def check_fit(model: nn.Module, data: Dataset, what: str = "`data`") -> int:
    """The model's class count, after one forward of two of `data`'s images: images it refuses,
    outputs that are not [B, K] logits, or labels >= K are one ConfigError line."""
    x = data.floats(torch.arange(min(2, len(data)), device=data.device))
    was = model.training
    model.eval()
    try:
        out = model(x)
    except Exception as exc:  # any error of the user's forward: report, do not trace
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(
            f"{what}: the model does not take images of shape {list(x.shape[1:])} (CxHxW): {first}"
        ) from None
    finally:
        model.train(was)
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != len(x):
        got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"the model must return logits [batch, classes], returned {got}")
    k = int(out.shape[1])
    top = int(data.labels.max())
    if top >= k:
        raise ConfigError(
            f"{what}: labels go up to {top} ({data.num_classes} classes), the model has {k} outputs"
        )
    return k


def fitted_data(
    model: nn.Module,
    source: DataSource,
    split: str,
    device: torch.device,
    what: str,
    k: int | None = None,
) -> tuple[Dataset, int]:
    """The user's data on `device`, checked against `model`, named for all its outputs."""
    data = load_user_data(source, split=split, num_classes=k).to(device)
    k = check_fit(model, data, what)
    return _classes(data, k), k


def placed_model(model: nn.Module, mean, std, device: torch.device) -> nn.Module:
    """`model` (checked to be one) behind the normalisation `mean`/`std`, on `device`."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model: an nn.Module expected, got {type(model).__name__}")
    return with_normalization(model, mean, std).to(device)


def evaluate(
    model: nn.Module,
    data: DataSource,
    trigger: Any = None,
    target: int | None = None,
    *,
    mask: Any = None,
    alpha: float = 1.0,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    device: str = "auto",
    batch_size: int = 512,
) -> dict[str, Any]:
    """ACC on `data`; with a trigger, ASR (share of triggered non-target images sent to the
    target) and RA (share still classified correctly), all in percent."""
    dev = resolve_device(device)
    model = placed_model(model, mean, std, dev)
    test, k = fitted_data(model, data, "test", dev, "`data`")
    backdoor = None
    if trigger is not None:
        backdoor = make_trigger(trigger, test, target=target, mask=mask, alpha=alpha, device=dev)
    m = measure(model, test, backdoor, batch_size)
    return {**m.measured(), "images": len(test), "classes": k}


def _classes(data: Dataset, k: int) -> Dataset:
    """`data` with class names for all `k` model outputs (labels are checked to lie below k)."""
    if data.num_classes == k:
        return data
    names = list(data.classes[:k]) + [str(i) for i in range(len(data.classes), k)]
    return replace(data, classes=names)


@dataclass
class RepairReport:
    """What a repair did: the defense and its settings, its own numbers, and ACC/ASR/RA before
    and after, measured on `measured_on` ('test', or 'clean': the repair's own data when a
    trigger but no test set was given; optimistic for ACC)."""

    defense: str
    options: dict[str, Any]
    clean_images: int
    defense_report: dict[str, Any]
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    seconds: float = 0.0
    measured_on: str | None = None
    # trigger-free evidence (defense "auto"): the calibrated scan before and after, the steps
    # taken, ACC on a held-out share of the clean data, the reversed trigger's ASR there
    scan_before: dict[str, Any] | None = None
    scan_after: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list)
    held_out: dict[str, Any] | None = None
    reference_images: int = 0  # the images the scan's own references train on
    # ACC on the first scan's probe images: {"model": ..., "references": [...]}
    probe_accuracy: dict[str, Any] | None = None

    @property
    def caution(self) -> str | None:
        """Warnings where the scan's references trained on too few images to hold the stated
        false-positive rate, or did not learn the task (detectors/scan.py)."""
        acc = self.probe_accuracy or {}
        return scan_caution(self.reference_images, acc.get("model"), acc.get("references", []),
                            acc.get("attempts", []))  # fmt: skip

    @property
    def still_flagged(self) -> bool:
        """Whether the calibrated scan still flags the repaired model."""
        return bool(self.scan_after and self.scan_after["infected"])

    @property
    def summary(self) -> str:
        """One line: what the trigger-free evidence says about the repair."""
        if self.scan_before is None:
            return (f"{self.defense}: no scan before or after (trigger-free evidence: defense "
                    "auto, or evidence=True)")  # fmt: skip
        b = self.scan_before
        if not b["infected"] and not self.steps:
            return f"no backdoor found ({_scan_line(b)}): the model is left unchanged"
        if not b["infected"]:
            a = self.scan_after or b
            flag = "and flags it now" if a["infected"] else "nor after it"
            return (f"{self.defense} ran although the scan found no backdoor before it "
                    f"({_scan_line(b)}) {flag} ({_scan_line(a)})")  # fmt: skip
        a = self.scan_after or b
        done = " then ".join(st["defense"] for st in self.steps) or "nothing"
        t = b["target"]
        moved = (f"class {t}: z {b['class_z'][t]:.2f} -> {a['class_z'][t]:.2f}, "
                 f"threshold {a['threshold']:.2f}")  # fmt: skip
        if not cleared(a, t):
            return f"STILL FLAGGED after {done}: the rescan still finds class {t} ({moved})"
        if a["infected"]:  # another class stands out, whether or not it did before
            other = a["target"]
            return (f"STILL FLAGGED after {done}: class {t} is cleared ({moved}), but class "
                    f"{other} stands out (z {b['class_z'][other]:.2f} before the repair, "
                    f"{a['class_z'][other]:.2f} after)")  # fmt: skip
        return f"repaired by {done}: the rescan finds no backdoor ({moved})"

    @property
    def held_out_line(self) -> str | None:
        """One line of the evidence on the held-out clean data: ACC, the reversed trigger's ASR
        and the smallest trigger searched before and after (None without a scan)."""
        h = self.held_out
        if h is None:
            return None
        line = (f"held-out clean data ({h['images']} images): ACC {h['acc_before']:.2f} -> "
                f"{h['acc_after']:.2f}")  # fmt: skip
        if "reversed_trigger_asr_before" in h:
            line += (f"; reversed trigger of class {h['reversed_trigger_target']}: ASR "
                     f"{h['reversed_trigger_asr_before']:.2f} -> "
                     f"{h['reversed_trigger_asr_after']:.2f}")  # fmt: skip
            if not h.get("reversed_trigger_unlearned", True):
                line += " (searched for evidence; no step unlearned it)"
        if "reversed_trigger_norm_after" in h:
            # the trigger a step unlearned was searched on the model that step was given
            when = "when unlearned" if h.get("reversed_trigger_unlearned") else "before"
            line += (f"; smallest trigger found for it: mask L1 "
                     f"{h['reversed_trigger_norm_before']:.1f} {when}, "
                     f"{h['reversed_trigger_norm_after']:.1f} after (searched again)")  # fmt: skip
        return line

    @property
    def der(self) -> float | None:
        """Defense effectiveness rating (None without before/after ASR)."""
        if self.before is None or self.after is None:
            return None
        return der(Metrics.from_dict(self.before), Metrics.from_dict(self.after))

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "der": self.der,
            "still_flagged": self.still_flagged,
            "summary": self.summary,
            "caution": self.caution,
        }


def _scan_line(c: dict[str, Any]) -> str:
    return f"score {c['score']:.2f}, threshold {c['threshold']:.2f}"


def repair(
    model: nn.Module,
    clean: DataSource,
    defense: str = "auto",
    *,
    test: DataSource | None = None,
    trigger: Any = None,
    target: int | None = None,
    mask: Any = None,
    alpha: float = 1.0,
    train: dict[str, Any] | None = None,
    seed: int = 0,
    copy_model: bool = True,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    device: str = "auto",
    references: int = 8,
    fpr: float = 0.05,
    rounds: int = 2,
    min_steps: int | None = None,
    scan_detectors: list[str] | None = None,
    scan_evidence: str | None = None,
    scan_screen: int | None = None,
    unlearn_small: bool = False,
    plan: list[str] | None = None,
    plan_options: dict[str, dict[str, Any]] | None = None,
    cache: str | Path | None = None,
    evidence: bool = False,
    progress: bool = False,
    **options: Any,
) -> tuple[nn.Module, RepairReport]:
    """Repair `model` on the defender's `clean` data. `defense` "auto" (the default) scans the
    model calibrated against `references` benign references as `scan` does on the same data
    (the same references, found again in the cache: both give one verdict); finding nothing, it
    leaves the model unchanged; else it unlearns the reversed trigger of the flagged class (nc),
    rescans, and goes on with AFT while the flagged class stays flagged, at most `rounds` steps
    (the references train for at least `min_steps` SGD steps where given; the scan's probes
    and evidence are `scan_detectors` and `scan_evidence`, by default the scan's, and
    `scan_screen` of the probes' top classes are searched again for a small trigger, and with
    `unlearn_small` the plan's nc step still runs where that search found one for the flagged
    class, even after a step before it cleared the rescan; `plan` and
    `plan_options` replace its repairs and give each its settings by name, e.g. plan=["aft",
    "nc"], plan_options={"aft": {"eps": 0.2, "epochs": 20, "clean_epochs": 5}}), and
    reports the scan before and after, ACC on a held-out fifth of `clean` (the repair trains on
    the rest), the reversed trigger's ASR there and the smallest trigger a new search finds for
    the flagged class after the repair beside the one before. A named post-training defense
    (ft, aft, fp, nad, nc, or one you registered) runs as asked; `options` are its settings
    (e.g. eps=0.2, layer="layer4"); with `evidence` it runs on the same share of `clean` as
    auto and its report holds the same trigger-free evidence (the scan before and after against
    references repaired alike, ACC on the held-out fifth, and the reversed trigger of the class
    the first scan flagged: the one nc unlearned, else one searched on the model before the
    repair, for evidence only).
    `train` holds the fine-tuning basics (momentum, weight decay, crop_padding, flip). ACC (and
    ASR/RA with a trigger) before and after are measured on `test`, or with a trigger and no
    `test` on the clean data itself. The model is copied first unless `copy_model` is False."""
    dev = resolve_device(device)
    auto = defense == "auto"
    if auto and options:
        raise ConfigError(
            f"defense auto chooses its own settings; {sorted(options)} belong to a named defense "
            "(auto's repairs take theirs by name in plan_options)"
        )
    if not auto and (plan is not None or plan_options is not None):
        raise ConfigError(f"plan and plan_options belong to defense auto, not {defense!r}")
    named = None if auto else validated(DEFENSES, {"name": defense, **options}, "defense")
    if named is not None:
        entry = DEFENSES.entry(defense).obj
        if not entry.post_training or entry.identity:
            known = [e.name for e in DEFENSES if e.obj.post_training and not e.obj.identity]
            raise ConfigError(
                f"defense {defense!r} trains a model from scratch; repair takes a post-training "
                f"defense ({', '.join(known)})"
            )
    scanned = auto or evidence  # through defense auto: the scan, the rescan, the evidence
    settings = named
    if scanned:  # a named defense with evidence: auto's plan of that one defense, forced
        given = {"plan": plan, "options": plan_options}
        steps = (
            {k: v for k, v in given.items() if v is not None}
            if auto
            else {"plan": [defense], "rounds": 1, "options": options, "force": True}
        )
        auto_cfg = {"name": "auto", "references": references, "fpr": fpr, "rounds": rounds,
                    "min_steps": min_steps, "detectors": scan_detectors,
                    "evidence": scan_evidence, "screen": scan_screen,
                    "unlearn_small": unlearn_small}  # fmt: skip
        try:
            settings = DEFENSES.validate({**auto_cfg, **steps})
        except ValidationError as exc:  # auto's settings are this function's parameters
            raise ConfigError(parameter_error(exc, "repair")) from None
    try:
        tcfg = TrainConfig(**{"eval_every": 0, **(train or {})})
    except ValidationError as exc:
        raise ConfigError("train: " + format_validation_error(exc)) from None
    model = placed_model(copy.deepcopy(model) if copy_model else model, mean, std, dev)
    clean_data, k = fitted_data(model, clean, "train", dev, "clean data")
    test_data, backdoor = None, None
    if test is not None:
        test_data, _ = fitted_data(model, test, "test", dev, "test data", k)
    if trigger is not None:
        if test_data is None:  # before/after on the repair's own data: still shows the ASR
            test_data = clean_data
        backdoor = make_trigger(
            trigger, test_data, target=target, mask=mask, alpha=alpha, device=dev
        )
    measured_on = None if test_data is None else ("test" if test is not None else "clean")

    def metrics(m: nn.Module) -> Metrics | None:
        return None if test_data is None else measure(m, test_data, backdoor)

    before = metrics(model)
    store = StageCache(cache if cache is not None else reference_cache()) if scanned else None
    ctx = DefenseContext(
        train=clean_data, train_config=tcfg, device=dev, seed=seed, clean=clean_data,
        monitor=metrics if test_data else None, store=store, progress=progress,
    )  # fmt: skip
    done = repair_and_measure(model, build_defense(settings), ctx, test_data, backdoor,
                              measure_before=False, seed=None if scanned else seed)  # fmt: skip
    shown = (settings if auto else named).model_dump(mode="json")
    found = done.findings if scanned else {}
    plain = [None if m is None else m.measured() for m in (before, done.after)]
    report = RepairReport(
        defense, shown, len(clean_data), {} if scanned else done.findings, *plain,
        done.seconds, measured_on, **found,
    )  # fmt: skip
    return done.model.eval(), report


def reference_cache() -> Path:
    """Where `scan` keeps the references it trains: $BACKDOORLAB_CACHE, else the user's cache
    folder ($XDG_CACHE_HOME or ~/.cache, then backdoorlab/references)."""
    env = os.environ.get("BACKDOORLAB_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "backdoorlab" / "references"


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
    rows = (Path(db) if db is not None else out.parent / "results.db") if add_row else None
    weights = {"model.safetensors": lambda p: save_tensors(p, state_of(model))}
    return write_run(out, record, weights, db=rows, overwrite=overwrite)


def save_evaluation(
    metrics: dict[str, Any], out: str | Path, *, source: dict[str, Any], overwrite: bool = False
) -> Path:
    """Write OUT/result.json with the numbers of an evaluation and what they were measured on."""
    numbers = Metrics.from_dict(metrics, "evaluate")
    record = RunRecord(kind="evaluate", metrics=numbers, extra={"source": source})
    return write_run(out, record, overwrite=overwrite)
