"""The experiment config: a validated YAML file with seed, device and one section per layer."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

from backdoorlab.attacks.base import ATTACKS, AttackConfig, check_control
from backdoorlab.config_base import QuietDefaults, format_validation_error
from backdoorlab.data.base import DATASETS, DatasetConfig
from backdoorlab.defenses.base import DEFENSES, DefenseConfig
from backdoorlab.detectors.base import DETECTORS, DetectorConfig
from backdoorlab.detectors.scan import CalibrationConfig
from backdoorlab.errors import ConfigError
from backdoorlab.fingerprint import fingerprint
from backdoorlab.models.base import MODELS, ModelConfig
from backdoorlab.paths import NAME_PATTERN
from backdoorlab.train.config import TrainConfig
from backdoorlab.train.perf import Performance

_SECTION_REGISTRIES = {"dataset": DATASETS, "model": MODELS, "attack": ATTACKS, "defense": DEFENSES}


class ExperimentConfig(QuietDefaults):
    """One experiment: data, model, attack, defense, training, seed and device."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    # sections added after results were published: without detectors, calibration or a
    # defender's share, a config dumps (and hashes) as it did before them
    quiet = ("detect", "calibrate", "defender_images")

    name: str = Field(
        "experiment",
        min_length=1,
        pattern=NAME_PATTERN,
        description="label for tables and run folders (letters, digits, _ . = + -)",
    )
    seed: int = Field(0, ge=0)
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    dataset: SerializeAsAny[DatasetConfig]
    model: SerializeAsAny[ModelConfig]
    attack: SerializeAsAny[AttackConfig]
    defense: SerializeAsAny[DefenseConfig] = Field(
        default_factory=lambda: DEFENSES.validate({"name": "none"})
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    performance: Performance = Field(default_factory=Performance)
    detect: dict[str, SerializeAsAny[DetectorConfig]] = Field(
        default_factory=dict,
        description="detectors run on the trained model before any repair: name -> options",
    )
    calibrate: CalibrationConfig | None = Field(
        None,
        description="calibrate the detectors against benign references trained on the test data",
    )
    defender_images: int | None = Field(
        None,
        ge=20,
        description="clean images the detectors and references have: the first this many of the "
        "test split (default: all of it); ACC and ASR are still measured on the whole split",
    )

    @field_validator("dataset", "model", "attack", "defense", mode="before")
    @classmethod
    def _by_name(cls, value: Any, info) -> Any:
        return _SECTION_REGISTRIES[info.field_name].validate(value)

    @field_validator("detect", mode="before")
    @classmethod
    def _detectors(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError("must map detector names to their options")
        out = {}
        for n, options in value.items():
            try:
                out[n] = DETECTORS.validate({**(options or {}), "name": n})
            except ValidationError as exc:
                problem = format_validation_error(exc).split(": ", 1)[1]
                raise ValueError(f"{n}: {problem}") from None
        return out

    @model_validator(mode="after")
    def _calibrated_detectors(self) -> ExperimentConfig:
        if self.calibrate is None:
            return self
        if not self.detect:
            raise ValueError("calibrate needs detectors to calibrate (detect: {name: options})")
        missing = sorted(set(self.calibrate.detectors or []) - set(self.detect))
        if missing:
            raise ValueError(f"calibrate.detectors {missing} are not in detect")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The fully resolved config (defaults filled in) as plain data; no `quiet` setting at
        its default (the configs, hashes and cell keys of runs without them stay as they were)."""
        return self.model_dump(mode="json")

    def digest(self) -> str:
        """A stable hash of the resolved config."""
        return fingerprint(self.to_dict(), compact=True)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'section.key=value' -> (['section', 'key'], value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"`overrides` {text!r}: expected section.key=value")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"`overrides` {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return path, value


def set_path(raw: dict[str, Any], path: list[str], value: Any, what: str) -> None:
    """Set raw[a][b]... = value in place (creating sections); `what` names the source in errors."""
    node = raw
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{what}: {part} is not a section")
        node = child
    node[path[-1]] = value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of `raw` with each 'a.b=value' override set (creating sections as needed).

    'a.b=null' removes the key (its default applies). A new component name
    ('attack.name=blended') drops the section's keys that the new component does not have."""
    raw = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        assign(raw, path, value, f"`overrides` {text!r}")
    return raw


def assign(raw: dict[str, Any], path: list[str], value: Any, what: str) -> None:
    """raw[a][b]... = value in place; None removes the key; a new component name drops the
    section's keys that the new component does not have. `what` names the source in errors."""
    if value is None:
        _remove(raw, path)
        return
    set_path(raw, path, copy.deepcopy(value), what)
    if len(path) == 2 and path[0] in _SECTION_REGISTRIES and path[1] == "name":
        _keep_known(raw[path[0]], _SECTION_REGISTRIES[path[0]], str(value))


def _remove(raw: dict[str, Any], path: list[str]) -> None:
    node: Any = raw
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


def _keep_known(section: dict[str, Any], registry, name: str) -> None:
    """Drop the keys of `section` that component `name` has no field for (an unknown name is
    left for validation to report)."""
    if name not in registry:
        return
    fields = registry.entry(name).config.model_fields
    for key in [k for k in section if k != "name" and k not in fields]:
        del section[key]


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a mapping; unreadable or malformed files raise ConfigError."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"config file {path} is malformed YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    return raw


def load_config(
    source: str | Path | dict[str, Any] | ExperimentConfig, overrides: list[str] | None = None
) -> ExperimentConfig:
    """A validated ExperimentConfig from a YAML path, a dict, or a config, plus overrides."""
    if isinstance(source, ExperimentConfig):
        raw = source.to_dict()
    elif isinstance(source, dict):
        raw = source
    else:
        raw = read_yaml(source)
        raw.setdefault("name", Path(source).stem)
    raw = apply_overrides(raw, overrides or [])
    try:
        cfg = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    check_threat_model(cfg)
    return cfg


def check_threat_model(cfg: ExperimentConfig) -> None:
    """Refuse configs that mix the two threat models (DESIGN.md): an attack that trains the
    model itself (control: training) leaves no training for a training-time defense."""
    attack, control = cfg.attack.name, cfg.attack.control
    check_control(cfg.attack, ATTACKS.get(attack).controls)
    if control == "training" and not DEFENSES.get(cfg.defense.name).post_training:
        raise ConfigError(
            f"attack.control: 'training' (attack '{attack}' trains the model) cannot go with "
            f"defense '{cfg.defense.name}', a training-time defense that assumes the defender "
            "trains; use attack.control: data or a post-training defense"
        )
