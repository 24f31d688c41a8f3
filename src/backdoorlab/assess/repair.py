"""Repair a model and measure it again: `repair_and_measure`, the one path a sweep's repair
cell and a user's `backdoorlab repair` take; and defense `auto`, which scans the model against
benign references, repairs what the scan flags (the flagged class's reversed trigger unlearned,
then AFT), rescans against references repaired the same way and keeps the trigger-free
evidence. A named defense runs through `auto` too when a user asks for evidence (a `plan` of
that one defense, `force`)."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from pydantic import Field, StrictInt, model_validator
from torch import nn

from backdoorlab.config_base import validated
from backdoorlab.data.base import Dataset
from backdoorlab.defenses.base import (
    DEFENSES,
    Defense,
    DefenseConfig,
    DefenseContext,
    build_defense,
    need_clean,
    register_defense,
)
from backdoorlab.detectors.base import DETECTORS
from backdoorlab.detectors.calibrate import Calibration
from backdoorlab.detectors.references import Store, data_key, digest, split_clean
from backdoorlab.detectors.scan import ScanOutcome, scan_model, validated_calibration
from backdoorlab.detectors.trigger_search import TriggerSearch, reverse_trigger
from backdoorlab.metrics.core import Backdoor, der, measure
from backdoorlab.records.metrics import Metrics
from backdoorlab.train.config import TrainConfig

# The epochs auto's unlearning step fine-tunes where no options are given (NC's registered
# default is 5): chosen on both development zoos by a rule written before they ran
# (docs/results/repair-dev-nc10.md and repair-dev-3-nc10.md; configs/results/repair-dev.yaml)
UNLEARN_EPOCHS = 10


@dataclass
class RepairOutcome:
    """The repaired model; ACC/ASR/RA before and after (None without test data, `before` also
    None when not asked for); the defense's own numbers (its context's findings); seconds."""

    model: nn.Module
    before: Metrics | None
    after: Metrics | None
    findings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def der(self) -> float | None:
        """Defense effectiveness rating (None without ASR before and after)."""
        if self.before is None or self.after is None:
            return None
        return der(self.before, self.after)


def repair_and_measure(
    model: nn.Module,
    defense: Defense,
    ctx: DefenseContext,
    test: Dataset | None,
    backdoor: Backdoor | None,
    *,
    batch_size: int = 512,
    measure_before: bool = True,
    seed: int | None = None,
) -> RepairOutcome:
    """`defense` applied to `model` with what `ctx` lets it see (seeded with `seed` when given),
    ACC/ASR/RA on `test` before (if `measure_before`) and after, and what the defense found
    (`ctx.findings`, with what its training hooks put there)."""

    def measured(m: nn.Module) -> Metrics | None:
        return None if test is None else measure(m, test, backdoor, batch_size)

    before = measured(model) if measure_before else None
    t0 = time.perf_counter()
    if seed is not None:
        torch.manual_seed(seed)
    repaired = defense.repair(model, ctx)
    seconds = round(time.perf_counter() - t0, 3)
    return RepairOutcome(repaired, before, measured(repaired), dict(ctx.findings), seconds)


class AutoConfig(DefenseConfig):
    """The settings of defense auto: the scan's references and false-positive rate, how many
    repair steps at most, and the share of the clean data held out for evidence."""

    # added after docs/results/repair-zoo.md was published: unset, a config hashes as before
    quiet = ("min_steps", "detectors", "evidence", "screen", "unlearn_small")

    references: int = Field(8, ge=3, le=256, description="benign references of the scan")
    detectors: list[str] | None = Field(
        None,
        min_length=1,
        description="the scan's probes (None: the scan's defaults, DETECTORS_BY_DEFAULT)",
    )
    evidence: Literal["values", "index", "profile"] | None = Field(
        None, description="the scan's calibrated evidence (None: the scan's default)"
    )
    min_steps: int | None = Field(
        None,
        ge=1,
        description="SGD steps each reference trains at least (None: its recipe's epochs); "
        "docs/examples/sgd-lenet-repair.md shows what 100-320 do to a foreign model's scan",
    )
    screen: StrictInt | None = Field(  # strict: lax mode would read `screen: true` as 1
        None,
        ge=1,
        description="the probes' top classes that Neural Cleanse's trigger search looks at "
        "again, in the first scan (a rescan searches the class it flagged); None: no screen",
    )
    fpr: float = Field(0.05, gt=0, lt=1, description="false-positive rate of the verdict")
    rounds: int = Field(2, ge=1, description="repair steps at most")
    held_out: float = Field(0.2, gt=0, lt=1, description="share of the clean data kept aside")
    plan: list[str] = Field(
        default_factory=lambda: ["nc", "aft"],
        min_length=1,
        description="the repairs in order: unlearn the flagged class's trigger, then AFT",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="settings of the plan's repair (a plan of one), or of each repair by name "
        "({nc: {...}, aft: {...}}): two repairs share no setting, as eps or steps mean "
        "different things in each. Not given, a plan's nc unlearns for UNLEARN_EPOCHS epochs "
        "and every other repair runs at its registered defaults; given, they replace that whole",
    )
    force: bool = Field(False, description="repair even where the scan finds nothing")
    unlearn_small: bool = Field(
        False,
        description="where the first scan's trigger search (`screen`) found a small trigger for "
        "the flagged class, still run the plan's `nc` step once a step before it cleared the "
        "rescan, unless a step already unlearned that class",
    )

    @model_validator(mode="before")
    @classmethod
    def _own_unlearning(cls, data: Any) -> Any:
        # auto's setting of its nc step where none is given; it shows in the config (and so in a
        # cell's key): a config that gave options keeps its key and its meaning
        if not isinstance(data, dict) or data.get("options") is not None:
            return data
        plan = data.get("plan") or cls.model_fields["plan"].get_default(call_default_factory=True)
        rounds = data.get("rounds") or cls.model_fields["rounds"].default
        if isinstance(plan, list) and isinstance(rounds, int) and "nc" in plan[:rounds]:
            return {**data, "options": {"nc": {"epochs": UNLEARN_EPOCHS}}}
        return data

    @model_validator(mode="after")
    def _options_per_repair(self) -> AutoConfig:
        runnable = {e.name for e in DEFENSES if e.obj.post_training and not e.obj.identity}
        runnable.discard("auto")
        unknown = [n for n in self.plan if n not in runnable]
        if unknown:
            raise ValueError(f"plan: {unknown} are not post-training defenses to run in auto")
        steps = self.plan[: self.rounds]
        if self.unlearn_small and (self.screen is None or "nc" not in steps):
            raise ValueError(
                f"unlearn_small: needs a screen (got {self.screen}) and nc within the plan's "
                f"{self.rounds} rounds (got {steps}): it unlearns what the screen found"
            )
        if len(set(steps)) > 1 and not self._keyed():
            raise ValueError(
                f"options: the plan {steps} has several repairs; give each its own settings "
                "by name, e.g. {nc: {epochs: 5}, aft: {eps: 0.2}}"
            )
        return self

    def _keyed(self) -> bool:
        return all(k in self.plan and isinstance(v, dict) for k, v in self.options.items())

    def step_options(self, name: str) -> dict[str, Any]:
        """The settings of the plan's repair `name`."""
        if self._keyed():
            return dict(self.options.get(name, {}))
        return dict(self.options)


def cleared(scan: dict[str, Any], target: int | None) -> bool:
    """Whether the class the first scan flagged is below the threshold in `scan`."""
    return target is None or scan["class_z"][target] <= scan["threshold"]


def small_trigger_found(c: Calibration) -> bool:
    """Whether the trigger search of `c`'s screen alone puts its flagged class above the
    threshold: a trigger far smaller than the references' for that class (NC Eq. 2-3)."""
    if c.screen is None or c.target is None or c.target not in c.screen["classes"]:
        return False
    return c.screen["z"][c.screen["classes"].index(c.target)] > c.threshold


def scan_summary(c: Calibration) -> dict[str, Any]:
    keep = ("score", "threshold", "target", "infected", "p_value", "p_empirical", "references")
    return {**{key: getattr(c, key) for key in keep},
            "class_z": [round(v, 4) for v in c.class_z()]}  # fmt: skip


@torch.no_grad()
def reversed_trigger_asr(model: nn.Module, data: Dataset, trigger: tuple, target: int) -> float:
    """% of `data`'s images of other classes that `model` sends to `target` with a reversed
    trigger (mask, pattern) stamped on them: an ASR that needs no true trigger."""
    mask, pattern, _ = trigger
    keep = (data.labels != target).nonzero().flatten()
    if len(keep) == 0:
        return 0.0
    was = model.training
    model.eval()
    hits = 0
    for part in keep.split(512):
        x = (1 - mask) * data.floats(part) + mask * pattern
        hits += int((model(x.clamp(0, 1)).argmax(1) == target).sum())
    model.train(was)
    return 100.0 * hits / len(keep)


def evidence_trigger(
    model: nn.Module, data: Dataset, target: int, cfg: AutoConfig, seed: int
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The smallest trigger of the class the first scan flagged, searched on `model` at the
    plan's `nc` settings (else NC's defaults): evidence only (before a repair whose steps
    unlearned none, and again after any repair)."""
    return reverse_trigger(model, data, target, evidence_search(cfg), seed)


def evidence_search(cfg: AutoConfig) -> TriggerSearch:
    """The trigger search of auto's evidence: the plan's `nc` settings, else NC's defaults."""
    given = cfg.step_options("nc") if "nc" in cfg.plan else {}
    return TriggerSearch(**{k: v for k, v in given.items() if k in TriggerSearch.model_fields})


def _repeated(
    done: Defense, ref: nn.Module, ctx: DefenseContext, seed: int, key: str, store: Store | None
) -> nn.Module:
    """A copy of reference `ref` repaired as `done` repaired the suspect. A rescan compares the
    repaired model with references that went through the same repair, so that what the repair
    does to any model (unlearning raises some class's margins) is not read as a backdoor. Kept
    in `store` under `key` where given (repaired_keys)."""
    twin = copy.deepcopy(ref)
    kept = store.get_state(key) if store is not None and key else None
    if kept is not None:
        twin.load_state_dict(kept)
        return twin.eval()
    torch.manual_seed(seed)
    own = replace(ctx, findings={})  # a reference's repair reports nothing of the suspect's
    twin = done.repeat(twin, own).eval()
    state = twin.state_dict()
    # kept only where it loads into a copy of `ref` again (a repair may change the layers)
    shapes = {k: v.shape for k, v in ref.state_dict().items()}
    if store is not None and key and shapes == {k: v.shape for k, v in state.items()}:
        store.put_state(key, state)
    return twin


def repaired_keys(keys: list[str], done: Defense, ctx: DefenseContext) -> list[str]:
    """The store keys of references `keys` once repaired as `done` repaired the suspect; none
    ([]) where that repair reads the suspect (a `repeat` of its own, as Neural Cleanse's, which
    unlearns the suspect's triggers): such references belong to one suspect alone."""
    if not keys or type(done).repeat is not Defense.repeat:
        return []
    how = (done.cfg.model_dump_json(), ctx.train_config.model_dump_json(), str(ctx.seed),
           data_key(ctx.train))  # fmt: skip
    return [digest("repaired", key, *how) for key in keys]


def auto_repair(
    model: nn.Module,
    clean: Dataset,
    tcfg: TrainConfig,
    device: torch.device,
    cfg: AutoConfig,
    seed: int,
    store: Store | None,
    progress: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """Scan, then repair step by step (cfg.plan) while the calibrated scan flags the model, and
    the evidence: scan before and after, the steps, held-out ACC and reversed-trigger ASR."""
    work, held = split_clean(clean, 1 - cfg.held_out)
    probes = cfg.detectors or DETECTORS_BY_DEFAULT
    detectors = {n: validated(DETECTORS, {"name": n}, f"detector {n}") for n in probes}
    recipe = {"count": cfg.references, "min_steps": cfg.min_steps}
    settings: dict[str, Any] = {"references": recipe, "fpr": cfg.fpr}
    if cfg.evidence is not None:
        settings["evidence"] = cfg.evidence
    if cfg.screen is not None:
        settings["screen"] = {"classes": cfg.screen}
    calibration = validated_calibration(settings)

    def rescan(
        m: nn.Module, refs: list[nn.Module] | None = None, keys: list[str] | None = None
    ) -> ScanOutcome:
        # the first scan is `scan`'s on the same data (its references on a share of `clean`,
        # kept and found again by either, its probes on the rest); a rescan probes the same
        # rest against references repaired like the model. The held-out share only measures
        # the suspect, which a scan does not change.
        data = clean if refs is None else probe
        again = None if refs is None or target is None else [target]
        outcome = scan_model(m, data, detectors, calibration, refs, store, progress, again, keys)
        assert outcome.calibration is not None
        return outcome

    target = None
    scanned = rescan(model)
    first = scanned.calibration
    assert first is not None
    probe = split_clean(clean, calibration.references.train_share)[1]
    accuracies = {"model": scanned.accuracy, "references": scanned.reference_accuracy,
                  "attempts": scanned.reference_attempts}  # fmt: skip
    evidence: dict[str, Any] = {
        "scan_before": scan_summary(first),
        "steps": [],
        "reference_images": scanned.reference_images,
        "probe_accuracy": accuracies,
    }
    held_before = measure(model, held, None).acc
    if not first.infected and not cfg.force:
        evidence["scan_after"] = evidence["scan_before"]
        evidence["held_out"] = {"images": len(held), "acc_before": held_before,
                                "acc_after": held_before}  # fmt: skip
        return model, evidence
    refs = scanned.references  # the first scan's (never repaired: each step repairs copies)
    keys = scanned.reference_keys
    original, target = copy.deepcopy(model), first.target
    trigger, now = None, first
    # a rescan clears a class whose backdoor a step only weakened (AFT on SGD-trained LeNet-5s,
    # docs/results/repair-zoo.md); a small trigger found before any step is evidence against it
    small = cfg.unlearn_small and small_trigger_found(first)
    pending, forced = list(cfg.plan[: cfg.rounds]), False
    while pending:
        name = pending.pop(0)
        options = cfg.step_options(name)
        if name == "nc" and target is not None:
            options.setdefault("target", target)
        chosen = build_defense(validated(DEFENSES, {"name": name, **options}, f"defense {name}"))
        ctx = DefenseContext(train=work, train_config=tcfg, device=device, seed=seed,
                             clean=work)  # fmt: skip
        torch.manual_seed(seed)
        model = chosen.repair(model, ctx).eval()
        if name == "nc" and target is not None:
            trigger = chosen.triggers.get(target)
        keys = repaired_keys(keys, chosen, ctx)
        refs = [_repeated(chosen, ref, ctx, seed, key, store)
                for ref, key in zip(refs, keys or [""] * len(refs), strict=True)]  # fmt: skip
        now = rescan(model, refs, keys).calibration
        assert now is not None
        step = {"defense": name, "options": options, "scan": scan_summary(now)}
        if forced:
            step["why"] = "the rescan cleared the class, but the first scan found a small trigger"
        evidence["steps"].append(step)
        if target is not None and cleared(step["scan"], target):
            if small and trigger is None and "nc" in pending:
                pending, forced = ["nc"], True  # cleared, its small trigger never unlearned
                continue
            break  # the backdoor found is gone: stop repairing
    evidence["scan_after"] = scan_summary(now)
    held_out: dict[str, Any] = {"images": len(held), "acc_before": held_before,
                                "acc_after": measure(model, held, None).acc}  # fmt: skip
    if target is not None:
        held_out["reversed_trigger_unlearned"] = trigger is not None
        if trigger is None:  # no step unlearned one: searched on the model before, for evidence
            trigger = evidence_trigger(original, work, target, cfg, seed)
        held_out["reversed_trigger_target"] = target
        held_out["reversed_trigger_asr_before"] = reversed_trigger_asr(
            original, held, trigger, target
        )
        held_out["reversed_trigger_asr_after"] = reversed_trigger_asr(model, held, trigger, target)
        # the trigger a repair unlearned no longer works by construction; whether the class
        # still has a small trigger shows in a new search on the repaired model (NC Eq. 2-3)
        again = evidence_trigger(model, work, target, cfg, seed)
        held_out["reversed_trigger_norm_before"] = trigger[2]
        held_out["reversed_trigger_norm_after"] = again[2]
        held_out["searched_again_asr_after"] = reversed_trigger_asr(model, held, again, target)
    evidence["held_out"] = held_out
    return model, evidence


# the calibrated scan's probe, chosen on the development zoo (configs/results/detection-dev.yaml,
# scripts/calibration_choices.py; the second round's adv-labels-l2 + mm-bd is not the default:
# docs/results/repair-zoo.md's auto-pick, auto-steps and auto-steps-aft, which miss the SGD
# LeNet of docs/examples/sgd-lenet-repair.md); adv-labels, adv-labels-l2 and Neural Cleanse (`nc`,
# about 6 minutes per MNIST model on one thread) stay available
DETECTORS_BY_DEFAULT = ("mm-bd",)


@register_defense("auto", config=AutoConfig)
class AutoRepair(Defense):
    """Scan, repair what the scan flags, rescan: the trigger-free repair of a model whose
    trigger nobody knows (its report holds the evidence; see auto_repair)."""

    post_training = True

    def repair(self, model: nn.Module, ctx: DefenseContext) -> nn.Module:
        clean = need_clean(ctx, "auto")
        model, evidence = auto_repair(
            model, clean, ctx.train_config, ctx.device, self.cfg, ctx.seed, ctx.store, ctx.progress
        )
        # the scan before and after, the steps taken, held-out ACC and reversed-trigger ASR
        ctx.findings.update(evidence)
        return model
