"""The papers' GPU settings run as written: every cell of every `full` profile resolves, and a set
of them covering every model, attack, defense and dataset those profiles use runs end to end for
two training batches on CIFAR-10 files in the official format, at the real models' shapes (a user
with a GPU does not find a broken config after an hour).

Only the amounts shrink (epochs and inner steps to 1, batches of 8 out of 16 training images,
poison rates raised to two images where they would poison none); every name, shape, threat model,
label mode and setting stays the full profile's."""

from __future__ import annotations

import json
from functools import cache

import pytest

from backdoorlab.experiment import run
from backdoorlab.experiment.sweep_spec import expand, load_sweep, sweep_files
from backdoorlab.paths import slug
from tests.data.test_cifar import write_cifar10

TRAIN, TEST, BATCH = 16, 8, 8


@cache
def full_cells() -> list[tuple[str, str, dict]]:
    """(sweep, cell label, resolved config) of every cell of every `full` profile."""
    cells = []
    for name, path in sweep_files().items():
        if "full:" not in path.read_text():
            continue
        for cell in expand(load_sweep(path, "full")):
            cells.append((name, cell.label, cell.config.to_dict()))
    return cells


def features(cfg: dict) -> set[str]:
    """What a cell exercises: its dataset, model, attack kind and defense kind."""
    a, d = cfg["attack"], cfg["defense"]
    return {
        "dataset " + cfg["dataset"]["name"],
        "model " + json.dumps(cfg["model"], sort_keys=True),
        f"attack {a['name']} {a.get('label_mode')} {a.get('control')} {a.get('mode')}",
        f"defense {d['name']} {d.get('threat')} {d.get('norm')} {d.get('data')}",
    }


@cache
def covering() -> list[tuple[str, str, dict]]:
    """Cells, chosen greedily, until every feature of every full cell is covered once."""
    todo = set().union(*(features(c) for _, _, c in full_cells()))
    chosen = []
    while todo:
        best = max(full_cells(), key=lambda c: len(features(c[2]) & todo))
        chosen.append(best)
        todo -= features(best[2])
    return chosen


def shrink(node, key: str = ""):
    """The same config with every amount cut to a smoke test's."""
    if isinstance(node, dict):
        return {k: shrink(v, k) for k, v in node.items()}
    if isinstance(node, int) and not isinstance(node, bool) and node > 1:
        if key.endswith("epochs") or key in ("steps", "batches_per_step"):
            return 1
        if key.endswith("batch_size"):
            return BATCH
    return node


def smoke_config(cfg: dict, root) -> dict:
    out = shrink(cfg)
    out["device"] = "cpu"
    out["dataset"].update(root=str(root), md5=None, download=False, train_size=TRAIN,
                          test_size=TEST)  # fmt: skip
    out["train"]["eval_every"] = 0
    if out["train"]["milestones"]:
        out["train"]["milestones"] = [1]
    attack = out["attack"]
    if attack.get("rate") is not None and attack["rate"] * TRAIN < 2:
        attack["rate"] = 2 / TRAIN
    if "check_size" in out["defense"]:
        out["defense"]["check_size"] = 32
    return out


def test_every_full_cell_resolves_and_the_covering_set_spans_them():
    cells = full_cells()
    assert len(cells) > 200 and {s for s, _, _ in cells} >= {"gao2023-table7", "mu2022-table2"}
    chosen = covering()
    assert len(chosen) <= 24
    models = {c["model"]["name"] for _, _, c in chosen}
    assert models == {"resnet18", "preact_resnet18", "wrn16_1"}


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_cifar10(root / "cifar-10-python.tar.gz", per_batch=TRAIN // 5 + 1, test=TEST,
                  balanced=True)  # fmt: skip
    return root


@pytest.mark.parametrize(
    "sweep,label,cfg", covering(), ids=[f"{s}:{label}" for s, label, _ in covering()]
)
def test_a_covering_full_cell_runs_two_batches(sweep, label, cfg, cifar_root):
    cfg = smoke_config(cfg, cifar_root)
    cfg["name"] = slug(f"smoke-{sweep}-{label}")
    result = run(cfg, save=False, progress=False)
    assert 0 <= result.metrics.acc <= 100
    assert result.metrics.asr is not None  # every full cell plants a backdoor
