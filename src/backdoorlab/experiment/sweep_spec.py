"""A sweep file: a base config, axes whose product is the grid of cells, profiles, report layouts.

    name: digits-smoke
    base: ../quickstart.yaml             # a config file (relative to this file) or a mapping
    set: {train.epochs: 3}                # dotted overrides of the base
    resources: {cpus: 2, gpus: 0}         # what one cell uses (its torch threads, Ray's request)
    axes:                                 # the cells are the cartesian product of the axes
      attack:                             # named variants: label -> overrides
        badnets: {base: ../mnist-badnets.yaml}   # a variant may bring its own base config
        blended: {attack.name: blended, attack.alpha: 0.2}
      rate: {attack.rate: [0.01, 0.05]}   # one key: a list axis (labels are the values)
      budget:                             # several keys of equal length: zipped
        defense.threat: [linf, l2]
        defense.eps: [0.2, 2.0]
    exclude:                              # cells of the product left out
      - {attack: blended, rate: [0.01]}   #   (a label, or any of a list, per axis)
    reports: {...}                        # tables and figures (see backdoorlab/report/)
    profiles:                             # partial sweeps merged over the rest by --profile
      cpu: {base: ../mnist.yaml}
      full: {base: ../cifar.yaml, resources: {gpus: 1}}

A variant or profile value of null removes that key from what it is merged over.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from backdoorlab.config_base import format_validation_error
from backdoorlab.errors import ConfigError
from backdoorlab.experiment.config import (
    ExperimentConfig,
    assign,
    load_config,
    read_yaml,
)
from backdoorlab.fingerprint import fingerprint
from backdoorlab.paths import NAME_PATTERN, slug


class Resources(BaseModel):
    """What one cell uses: torch threads = cpus on every executor; Ray reserves cpus and gpus."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    cpus: int = Field(1, ge=1)
    gpus: float = Field(0, ge=0)


class SweepSpec(BaseModel):
    """A validated sweep file (after its profile, if any, was merged in)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(min_length=1, pattern=NAME_PATTERN)
    title: str = ""
    profile: str | None = None
    base: dict[str, Any] = Field(default_factory=dict)
    set: dict[str, Any] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    axes: dict[str, dict[str, Any]] = Field(default_factory=dict)
    reports: dict[str, dict[str, Any]] = Field(default_factory=dict)
    notes: str = ""
    # cells of the product left out: each rule maps axes to a label or a list of labels
    exclude: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("axes")
    @classmethod
    def _axes(cls, axes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, spec in axes.items():
            axis_values(name, spec)  # raises on a malformed axis
        return axes

    @model_validator(mode="after")
    def _exclude(self) -> SweepSpec:
        for rule in self.exclude:
            unknown = sorted(set(rule) - set(self.axes))
            if unknown:
                raise ValueError(f"exclude: {', '.join(unknown)} is not an axis")
            for axis, want in rule.items():  # a label the axis lacks would exclude nothing
                labels = {label for label, _ in axis_values(axis, self.axes[axis])}
                given = [str(v) for v in want] if isinstance(want, list) else [str(want)]
                missing = [g for g in given if g not in labels]
                if missing:
                    raise ValueError(
                        f"exclude: axis {axis!r} has no label {', '.join(missing)} "
                        f"(labels: {', '.join(sorted(labels))})"
                    )
        return self


@dataclass(frozen=True)
class Cell:
    """One point of the grid: its label on each axis and its validated config."""

    axes: dict[str, str]
    config: ExperimentConfig

    @property
    def label(self) -> str:
        return ",".join(f"{a}={v}" for a, v in self.axes.items()) or "base"

    @property
    def key(self) -> str:
        """The hash that identifies the cell in the results database: its config but the name
        and the performance switches (how it runs, not what it computes)."""
        blob = {k: v for k, v in self.config.to_dict().items() if k not in ("name", "performance")}
        return fingerprint(blob)

    @property
    def slug(self) -> str:
        """The cell's folder name: its labels made safe, plus a short hash of its key (two cells
        never share a folder, whatever their labels)."""
        return slug("__".join(self.axes.values()) or "base", key=self.key)


def axis_values(name: str, spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, overrides) for each value of one axis."""
    if not spec:
        raise ConfigError(f"sweep axis {name!r} has no values")
    if all(isinstance(v, dict) for v in spec.values()):
        return [(str(label), dict(over)) for label, over in spec.items()]
    if not all(isinstance(v, list) and v for v in spec.values()):
        raise ConfigError(
            f"sweep axis {name!r}: give either label -> overrides mappings or key -> non-empty "
            "lists of values"
        )
    lengths = {len(v) for v in spec.values()}
    if len(lengths) != 1:
        raise ConfigError(f"sweep axis {name!r}: zipped lists differ in length {sorted(lengths)}")
    keys = list(spec)
    out = []
    for values in zip(*spec.values(), strict=True):
        label = "/".join(str(v) for v in values)
        out.append((label, dict(zip(keys, values, strict=True))))
    return out


def merge(base: Any, over: Any) -> Any:
    """`over` deep-merged onto `base` (mappings merge, a None value deletes, the rest replace)."""
    if not isinstance(base, dict) or not isinstance(over, dict):
        return copy.deepcopy(over)
    out = copy.deepcopy(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge(out.get(k), v) if k in out else copy.deepcopy(v)
    return out


def _config_roots() -> list[Path]:
    """Where named sweeps are looked up: ./configs, then the package's own (its data in an
    installed wheel; a link to the repository's configs/ in a checkout)."""
    roots = [Path.cwd() / "configs"]
    packaged = Path(str(resources.files("backdoorlab") / "configs"))
    if packaged.is_dir() and packaged.resolve() != roots[0].resolve():
        roots.append(packaged)
    return [r for r in roots if r.is_dir()]


def sweep_files() -> dict[str, Path]:
    """Every named sweep file: configs/paper/<paper>/<table>.yaml as <paper>-<table> (the papers'
    reproductions), configs/results/*.yaml (the results pages) and configs/sweeps/*.yaml."""
    found: dict[str, Path] = {}
    for root in reversed(_config_roots()):  # the working directory's win
        for path in sorted((root / "paper").glob("*/*.yaml")):
            found[f"{path.parent.name}-{path.stem}"] = path
        for folder in ("results", "sweeps"):
            for path in sorted((root / folder).glob("*.yaml")):
                found[path.stem] = path
    return dict(sorted(found.items()))


def find_sweep(source: str | Path) -> Path:
    """A sweep file's path from its path or its name (see sweep_files)."""
    path = Path(source)
    if path.is_file():
        return path
    if path.suffix in (".yaml", ".yml") or len(path.parts) > 1:
        raise ConfigError(f"sweep: no file {source}")
    files = sweep_files()
    if str(source) not in files:
        raise ConfigError(f"no sweep named {str(source)!r} (known: {', '.join(files) or 'none'})")
    return files[str(source)]


def load_sweep(source: str | Path | dict[str, Any], profile: str | None = None) -> SweepSpec:
    """A validated sweep from a YAML file, a sweep's name or a mapping, with `profile` merged in."""
    if isinstance(source, dict):
        raw, where = copy.deepcopy(source), Path.cwd()
    else:
        source = find_sweep(source)
        raw, where = read_yaml(source), Path(source).resolve().parent
        raw.setdefault("name", Path(source).stem)
    profiles = raw.pop("profiles", {}) or {}
    if profile is not None:
        if profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise ConfigError(f"sweep {raw.get('name')!r} has no profile {profile!r} ({known})")
        raw = merge(raw, profiles[profile])
        raw["profile"] = profile
    if isinstance(raw.get("base"), str):
        raw["base"] = _read_base(raw["base"], where)
    for axis in (raw.get("axes") or {}).values():
        for variant in axis.values() if isinstance(axis, dict) else []:
            if isinstance(variant, dict) and isinstance(variant.get("base"), str):
                variant["base"] = _read_base(variant["base"], where)
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError("sweep: " + format_validation_error(exc)) from None


def _read_base(path: str, where: Path) -> dict[str, Any]:
    return read_yaml(Path(path) if Path(path).is_absolute() else where / path)


def excluded_by(rule: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a cell's labels match an `exclude` rule (a label, or any of a list, per axis)."""
    return all(
        labels.get(axis) in ([str(v) for v in want] if isinstance(want, list) else [str(want)])
        for axis, want in rule.items()
    )


def expand(spec: SweepSpec) -> list[Cell]:
    """Every cell of the sweep, validated (one bad cell is an error naming it)."""
    axes = [[(name, *v) for v in axis_values(name, s)] for name, s in spec.axes.items()]
    cells = []
    for combo in itertools.product(*axes):
        if any(excluded_by(rule, {a: label for a, label, _ in combo}) for rule in spec.exclude):
            continue
        bases = [over["base"] for _, _, over in combo if "base" in over]
        if len(bases) > 1:
            raise ConfigError("sweep: two axes of one cell each bring a base config")
        raw = copy.deepcopy(bases[0] if bases else spec.base)
        labels = {}
        for key, value in spec.set.items():
            assign(raw, key.split("."), value, f"sweep set {key!r}")
        for axis, label, overrides in combo:
            labels[axis] = label
            for key, value in overrides.items():
                if key != "base":
                    assign(raw, key.split("."), value, f"axis {axis}={label}")
        raw["name"] = slug("-".join([spec.name, *labels.values()]), width=120)
        try:
            cfg = load_config(raw)
        except ConfigError as exc:
            where = ",".join(f"{a}={v}" for a, v in labels.items())
            raise ConfigError(f"sweep cell {where}: {exc}") from None
        cells.append(Cell(labels, cfg))
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        raise ConfigError("sweep: two cells resolve to the same config (an axis changes nothing)")
    folders = [c.slug for c in cells]
    if len(set(folders)) != len(folders):  # unique by construction; checked before any training
        raise ConfigError("sweep: two cells would share a folder")
    return cells
