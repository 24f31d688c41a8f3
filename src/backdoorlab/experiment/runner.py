"""Run one experiment as its stages: prepare the (poisoned) data, set up the defense, obtain the
model (trained, or from the stage cache), detect, defend and measure, record."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backdoorlab.assess import repair_and_measure
from backdoorlab.attacks.base import Attack, PoisonedData, others
from backdoorlab.data.base import Dataset, InputSpec
from backdoorlab.defenses.base import Defense, DefenseContext, build_defense
from backdoorlab.detectors.base import DetectorConfig
from backdoorlab.detectors.scan import CalibrationConfig, calibrated_detection, scan_model
from backdoorlab.errors import ConfigError
from backdoorlab.experiment.cache import StageCache, default_cache, stage_key
from backdoorlab.experiment.config import ExperimentConfig, load_config
from backdoorlab.experiment.prepare import Prepared, poison_tensors, prepare, resolve_device
from backdoorlab.experiment.triggers import save_attack_grid
from backdoorlab.metrics.core import measure
from backdoorlab.models.base import Classifier, build_model
from backdoorlab.records.files import (
    check_out,
    load_tensors,
    new_run_id,
    save_tensors,
    write_json,
)
from backdoorlab.records.metrics import Metrics
from backdoorlab.records.record import RunRecord, read_run, write_run
from backdoorlab.seeds import CLEAN_SUBSET, stream
from backdoorlab.train.distributed import distributed, world
from backdoorlab.train.hooks import Hook, TrainState
from backdoorlab.train.loop import fit
from backdoorlab.train.perf import performance


class EvalHook(Hook):
    """Adds test ACC/ASR/RA to the epoch record every `every` epochs and after the last."""

    def __init__(self, test: Dataset, attack: Attack | None, every: int, batch_size: int):
        self.test, self.attack, self.every, self.batch_size = test, attack, every, batch_size

    def on_epoch_end(self, state: TrainState, record: dict[str, float]) -> None:
        last = state.epoch + 1 == state.config.epochs
        if last or (self.every and (state.epoch + 1) % self.every == 0):
            m = measure(state.model, self.test, self.attack, self.batch_size).measured()
            record.update({f"test_{k}": v for k, v in m.items() if v is not None})


@dataclass
class RunResult:
    """A finished run: its metrics, history, timings, model and where it was saved."""

    config: ExperimentConfig
    run_id: str
    metrics: Metrics
    history: list[dict[str, float]]
    timings: dict[str, float]
    model: nn.Module
    poisoned: PoisonedData
    out_dir: Path | None = None
    rank: int = 0  # under torchrun: this process's rank (only rank 0 saves)


def clean_subset(train: Dataset, poisoned: torch.Tensor, share: float, seed: int) -> Dataset:
    """`share` of the training set drawn by `seed` from the samples the attack left alone
    (`poisoned`: the indices it changed, each once)."""
    n = len(train)
    gen = torch.Generator().manual_seed(stream(seed, CLEAN_SUBSET))
    k = min(n - poisoned.numel(), max(1, round(share * n)))
    return train.subset(others(n, poisoned, k, gen))


def detect(
    model: nn.Module,
    data: Dataset,
    detectors: dict[str, DetectorConfig],
    calibration: CalibrationConfig | None = None,
    store: StageCache | None = None,
    progress: bool = False,
) -> dict[str, dict[str, Any]]:
    """What each configured detector finds on the trained `model` with clean `data`; with
    `calibration`, also the scan calibrated against benign references (as `calibrated`)."""
    if not detectors:
        return {}
    outcome = scan_model(model, data, detectors, calibration, store=store, progress=progress)
    found = {n: d.to_dict() for n, d in outcome.detections.items()}
    if outcome.calibration is not None:
        found["calibrated"] = calibrated_detection(outcome)
    return found


def run(
    config: str | Path | dict[str, Any] | ExperimentConfig,
    *,
    overrides: list[str] | None = None,
    out: str | Path | None = None,
    db: str | Path | None = None,
    add_row: bool = True,
    save: bool = True,
    progress: bool = True,
    cache: str | Path | bool = True,
    overwrite: bool = False,
) -> RunResult:
    """Train, evaluate and (with `save`) write the run folder and its results-database row.

    `out` defaults to runs/<name>-<time>; `db` to results.db in the parent of `out` (`add_row`
    False: the folder and no database row). `cache` is the stage-cache folder holding poisoned
    sets and infected models: a path; True (the default) for `cache` beside the run folder
    where another run may share them (a saved run with a post-training defense or detectors;
    none otherwise); False for none. Detectors (`cfg.detect`)
    score the trained model before any repair. An existing `out` is refused unless it is an
    earlier run folder and `overwrite` is set (checked before any work).

    Started by `torchrun` with several processes, the run trains data-parallel (DDP) and rank 0
    alone shows progress and writes; it uses no stage cache (a cache folder is refused).
    """
    cfg = load_config(config, overrides)
    if save and out is not None:
        check_out(Path(out), overwrite)
    with distributed(resolve_device(cfg.device).type == "cuda") as w:
        if w.active:
            if cfg.train.batch_size % w.size:
                raise ConfigError(
                    f"train.batch_size: {cfg.train.batch_size} does not split evenly over "
                    f"{w.size} processes (it is the global batch)"
                )
            if not isinstance(cache, bool):
                raise ConfigError(
                    f"`cache`: {cache} given, but a run under torchrun uses no stage cache "
                    "(its ranks would write one folder at once); leave it out"
                )
            progress, cache = progress and w.main, False
            save = save and w.main
        with performance(cfg.performance):
            return _run(cfg, out, db, add_row, save, progress, cache)


@dataclass
class Setup:
    """What the stages after `prepare` share: the (poisoned) training set, the test set, the
    backdoor to measure (None without one), the defense and what it may see."""

    train: Dataset
    test: Dataset
    backdoor: Attack | None
    defense: Defense
    ctx: DefenseContext


def set_up(cfg: ExperimentConfig, prep: Prepared, stages: StageCache | None = None) -> Setup:
    """The defense and its context (the defender's clean subset, a test monitor) for a run."""
    train, test = prep.poisoned.data, prep.splits.test
    clean = clean_subset(train, prep.poisoned.touched(), cfg.defense.clean_share, cfg.seed)
    backdoor = prep.attack if prep.attack.plants_backdoor else None

    def monitor(m: nn.Module) -> Metrics:
        return measure(m, test, backdoor, cfg.train.eval_batch_size)

    ctx = DefenseContext(
        train=train, train_config=cfg.train, device=prep.device, seed=cfg.seed,
        clean=clean, monitor=monitor, audit=lambda: prep.poisoned.indices, perf=cfg.performance,
        store=stages,
    )  # fmt: skip
    return Setup(train, test, backdoor, build_defense(cfg.defense), ctx)


def trained_model(
    cfg: ExperimentConfig, prep: Prepared, s: Setup, stages: StageCache | None, progress: bool
) -> tuple[nn.Module, list[dict[str, float]], dict[str, Any]]:
    """The trained model (from the stage cache for a post-training defense when it holds it),
    its training history, and for a post-training defense where it came from."""
    model = build_model(cfg.model, s.train.spec).to(prep.device)
    hooks = [
        *prep.attack.training_hooks(),
        *s.defense.training_hooks(s.ctx),
        EvalHook(s.test, s.backdoor, cfg.train.eval_every, cfg.train.eval_batch_size),
    ]

    def train() -> list[dict[str, float]]:
        state = fit(
            model,
            s.train,
            cfg.train,
            hooks,
            seed=cfg.seed,
            progress=progress,
            description=cfg.name,
            perf=cfg.performance,
        )
        return state.history

    if not (s.defense.post_training and stages is not None):
        return model, train(), {}
    key = stage_key(cfg)
    history, hit = stages.trained(key, model, prep.attack, train)
    return model, history, {"cache_key": key, "from_cache": hit}


def defend(
    model: nn.Module, s: Setup, eval_batch_size: int, stage: dict[str, Any]
) -> tuple[nn.Module, Metrics]:
    """The repaired model and its metrics: ACC/ASR/RA, the defense's own numbers and, for a
    post-training repair, the infected model's metrics, where it came from (`stage`) and the
    DER."""
    repairs = s.defense.post_training and not s.defense.identity
    done = repair_and_measure(
        model, s.defense, s.ctx, s.test, s.backdoor,
        batch_size=eval_batch_size, measure_before=repairs,
    )  # fmt: skip
    metrics = Metrics.from_dict({**done.after.measured(), **done.findings})
    if repairs:
        metrics = replace(metrics, before=done.before, stage=stage, der=done.der)
    return done.model, metrics


def _run(
    cfg: ExperimentConfig,
    out: str | Path | None,
    db: str | Path | None,
    add_row: bool,
    save: bool,
    progress: bool,
    cache: str | Path | bool,
) -> RunResult:
    if out is None:
        out = Path("runs") / f"{cfg.name}-{new_run_id(datetime.now(timezone.utc))}"
    rows = (Path(db) if db is not None else Path(out).parent / "results.db") if add_row else None
    if isinstance(cache, bool):
        cache = default_cache(cfg, Path(out)) if cache and save else None
    stages = StageCache(cache) if cache is not None else None
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    prep = prepare(cfg, progress, cache=stages)  # data, fitted attack, poisoned set
    s = set_up(cfg, prep, stages)
    defender = s.test
    if cfg.defender_images is not None:
        if cfg.defender_images > len(s.test):
            raise ConfigError(
                f"`defender_images`: {cfg.defender_images} asked, the test split has {len(s.test)}"
            )
        defender = s.test.subset(torch.arange(cfg.defender_images, device=s.test.device))
    t_data = time.perf_counter()
    model, history, stage = trained_model(cfg, prep, s, stages, progress)
    t_train = time.perf_counter()
    detections = detect(model, defender, cfg.detect, cfg.calibrate, stages, progress)
    t_detect = time.perf_counter()
    model, metrics = defend(model, s, cfg.train.eval_batch_size, stage)
    if detections:
        metrics = replace(metrics, detect=detections)
    t_end = time.perf_counter()
    timings = {
        "data_s": round(t_data - t0, 3),
        "train_s": round(t_train - t_data, 3),
        "detect_s": round(t_detect - t_train, 3),
        "eval_s": round(t_end - t_detect, 3),
        "total_s": round(t_end - t0, 3),
    }
    created = datetime.now(timezone.utc)
    result = RunResult(
        cfg, new_run_id(created), metrics, history, timings, model, prep.poisoned, rank=world().rank
    )
    if save:
        record_run(result, prep, created, Path(out), rows)
    return result


def record_run(
    result: RunResult, prep: Prepared, created: datetime, out: Path, db: Path | None
) -> None:
    """Write the run folder and (with a `db`) its results-database row."""
    result.out_dir = out.resolve()
    numbers = {"metrics": result.metrics.to_dict(), "history": result.history}
    files = {
        "model.safetensors": lambda p: save_tensors(p, result.model.state_dict()),
        "poison.safetensors": lambda p: save_tensors(
            p, poison_tensors(prep.attack, result.poisoned)
        ),
        "metrics.json": lambda p: write_json(p, numbers),
        "triggers.png": lambda p: save_attack_grid(prep, p),
    }
    # `run` checked `out` before the work (refusing what `overwrite` does not allow)
    write_run(out, run_record(result, prep, created), files, db=db, overwrite=True)


def run_record(result: RunResult, prep: Prepared, created: datetime) -> RunRecord:
    """The record of a finished run."""
    cfg = result.config
    spec = prep.poisoned.data.spec
    poisoned = result.poisoned
    record = RunRecord(
        kind="run",
        run_id=result.run_id,
        name=cfg.name,
        created=created.isoformat(timespec="seconds"),
        config_hash=cfg.digest(),
        metrics=result.metrics,
        timings=result.timings,
        config=cfg.to_dict(),
        extra={
            "device": str(prep.device),
            "processes": world().size,
            "threads": torch.get_num_threads(),
            "deterministic": torch.are_deterministic_algorithms_enabled(),
            "poison": {
                "count": poisoned.count,
                "cross": 0 if poisoned.cross is None else int(poisoned.cross.numel()),
                "control": cfg.attack.control,
                "per_batch": not prep.attack.stores_poison and prep.attack.plants_backdoor,
                "share_of_training_set": poisoned.count / max(1, len(poisoned.data)),
                "file": "poison.safetensors",
            },
            "input_spec": {
                "channels": spec.channels,
                "size": list(spec.size),
                "num_classes": spec.num_classes,
                "mean": list(spec.mean),
                "std": list(spec.std),
            },
            "history": result.history,
        },
    )
    return record


def load_model(run_dir: str | Path, device: str | torch.device = "cpu") -> Classifier:
    """The trained model of a saved run (built from its result.json, weights from safetensors)."""
    run_dir = Path(run_dir)
    record = read_run(run_dir)
    cfg = load_config(record.config)
    s = record.input_spec
    spec = InputSpec(
        s["channels"], tuple(s["size"]), s["num_classes"], tuple(s["mean"]), tuple(s["std"])
    )
    model = build_model(cfg.model, spec)
    model.load_state_dict(load_tensors(run_dir / "model.safetensors"))
    return model.to(device).eval()
