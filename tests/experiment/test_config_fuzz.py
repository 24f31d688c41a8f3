"""Every numeric key of every registered component, set to a huge, negative, NaN or tiny value:
refused in one line naming the key, or accepted with a run whose estimated memory fits. Nothing
ends in a traceback or an allocation the machine cannot make.

An accepted value is taken as far as the run's plan: validation, the data (tiny synthetic
images), the memory estimate, and building the model, attack and defense. Training is left
out: a huge epoch or step count is a long run, not a crash."""

from __future__ import annotations

import math
import types
import typing

import pytest
from pydantic import BaseModel

from backdoorlab.attacks import ATTACKS, build_attack
from backdoorlab.data import DATASETS, load_dataset
from backdoorlab.defenses import DEFENSES, build_defense
from backdoorlab.detectors import DETECTORS
from backdoorlab.errors import BackdoorlabError
from backdoorlab.experiment.config import load_config
from backdoorlab.experiment.memory import check_config_memory
from backdoorlab.models import MODELS, build_model
from backdoorlab.train.config import TrainConfig
from backdoorlab.train.perf import Performance

VALUES = {"huge": 10**12, "negative": -1, "nan": math.nan, "tiny": 1e-12}
BASE = {
    "name": "fuzz",
    "device": "cpu",
    "dataset": {"name": "synthetic", "num_classes": 4, "size": 12, "train_size": 64,
                "test_size": 32},
    "model": {"name": "small_cnn", "width": 8, "stages": 2},
    "attack": {"name": "badnets", "target": 0},
}  # fmt: skip
# the non-numeric settings a component cannot do without (files: written by the `files` fixture)
REQUIRED: dict[tuple[str, str], dict] = {("attack", "pattern"): {"pattern": None}}


@pytest.fixture(scope="module", autouse=True)
def files(tmp_path_factory):
    """A 12x12 trigger image for the pattern attack (the synthetic data's size)."""
    import numpy as np
    from PIL import Image

    png = tmp_path_factory.mktemp("fuzz") / "pattern.png"
    img = np.zeros((12, 12), np.uint8)
    img[1:4, 1:4] = 255
    Image.fromarray(img).save(png)
    REQUIRED[("attack", "pattern")]["pattern"] = str(png)


def _numeric(annotation) -> bool:
    if annotation in (int, float):
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_numeric(a) for a in typing.get_args(annotation))
    return False


def _model_of(annotation):
    args = typing.get_args(annotation) or (annotation,)
    for a in args:
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return None


def numeric_keys(model: type[BaseModel], prefix: str = ""):
    """Dotted keys of every int/float field of `model`, nested models included."""
    for name, field in model.model_fields.items():
        if _numeric(field.annotation) and field.annotation is not bool:
            yield prefix + name
        elif (inner := _model_of(field.annotation)) is not None:
            yield from numeric_keys(inner, f"{prefix}{name}.")


def cases():
    out = [("train", "", k) for k in numeric_keys(TrainConfig)]
    out += [("performance", "", k) for k in numeric_keys(Performance)]
    out += [("seed", "", "")]
    for section, registry in (("attack", ATTACKS), ("defense", DEFENSES), ("model", MODELS)):
        for component in registry.names():
            out += [(section, component, k) for k in numeric_keys(registry.entry(component).config)]
    out += [("dataset", "synthetic", k) for k in numeric_keys(DATASETS.entry("synthetic").config)]
    for detector in DETECTORS.names():  # validated only: running one is the scan's work
        out += [("detect", detector, k) for k in numeric_keys(DETECTORS.entry(detector).config)]
    return out


def _set(raw: dict, section: str, component: str, key: str, value) -> dict:
    if section == "seed":
        return {**raw, "seed": value}
    if section == "detect":
        return {**raw, "detect": {component: {key: value}}}
    sec = dict(raw.get(section, {}))
    if component:
        sec = {**(sec if sec.get("name") == component else {}), "name": component}
        sec.update(REQUIRED.get((section, component), {}))
        if section == "attack":
            sec.setdefault("target", 0)
    node = sec
    *path, last = key.split(".")
    for p in path:
        node[p] = dict(node.get(p) or {})
        node = node[p]
        if p == "model":  # a nested model section (a surrogate's) is chosen by name too
            node.setdefault("name", "small_cnn")
    node[last] = value
    return {**raw, section: sec}


def plan(raw: dict) -> None:
    """What `run` does before training, without training."""
    cfg = load_config(raw)
    splits = load_dataset(cfg.dataset, cfg.seed)
    spec = splits.train.spec
    check_config_memory(cfg, spec, len(splits.train), len(splits.test))
    build_model(cfg.model, spec)
    build_attack(cfg.attack, spec)
    build_defense(cfg.defense)


CASES = cases()


def test_the_fuzz_covers_every_component_and_many_keys():
    sections = {(s, c) for s, c, _ in CASES}
    assert {("attack", n) for n in ATTACKS.names()} - {("attack", "none")} <= sections
    assert {("defense", n) for n in DEFENSES.names()} - {("defense", "none")} <= sections
    assert {("detect", n) for n in DETECTORS.names()} <= sections
    assert len(CASES) > 100


@pytest.mark.parametrize("value", sorted(VALUES))
def test_hostile_numbers_are_refused_in_one_line_or_fit(value):
    failures = []
    for section, component, key in CASES:
        raw = _set(BASE, section, component, key, VALUES[value])
        where = f"{section}[{component}].{key}={value}"
        try:
            plan(raw)
        except BackdoorlabError as exc:
            text = str(exc)
            last = key.rsplit(".", 1)[-1] or section
            if "\n" in text or last not in text:
                failures.append(f"{where}: {text!r}")
        except Exception as exc:  # a traceback for the user
            failures.append(f"{where}: {type(exc).__name__}: {str(exc)[:200]}")
        else:
            if value == "nan":
                failures.append(f"{where}: NaN accepted")
    assert not failures, "\n".join(failures)
