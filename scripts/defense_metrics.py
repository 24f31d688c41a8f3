"""Every registered paper defense's metrics on one small digits run, as JSON: run it at two
commits and compare the files to show a refactor left every number (and the defense's own
numbers, key order included) unchanged.

    .venv/bin/python -m scripts.defense_metrics OUT.json [--cache DIR]

About 3 minutes on one thread (NC and auto take most of it).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from backdoorlab import run

BASE = {
    "name": "defense-metrics",
    "seed": 0,
    "device": "cpu",
    "dataset": {"name": "digits"},
    "model": {"name": "small_cnn", "width": 16, "stages": 2},
    "attack": {
        "name": "badnets",
        "target": 0,
        "rate": 0.1,
        "rate_of": "dataset",
        "label_mode": "dirty",
        "patch_size": 2,
    },
    "train": {
        "epochs": 4,
        "batch_size": 64,
        "lr": 0.05,
        "schedule": "cosine",
        "crop_padding": 0,
        "flip": False,
        "eval_every": 0,
    },
}
DEFENSES = {
    "ft": {"name": "ft", "epochs": 2},
    "fp": {"name": "fp", "epochs": 1},
    "fp-ratio": {"name": "fp", "ratio": 0.5, "epochs": 1},
    "nad": {"name": "nad", "teacher_epochs": 1, "epochs": 1},
    "nc": {"name": "nc", "steps": 5, "epochs": 1},
    "aft": {"name": "aft", "epochs": 1},
    "aft-poisoned": {
        "name": "aft",
        "data": "poisoned",
        "epochs": 1,
        "early_stop": True,
        "check_every": 5,
    },
    "abl": {"name": "abl", "isolation_epochs": 2, "unlearning_epochs": 2, "gamma": 0.0},
    "dpsgd": {"name": "dpsgd", "noise_multiplier": 0.1},
    "cat": {"name": "cat", "steps": 2},
    "auto": {"name": "auto", "references": 3},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--cache", type=Path, help="stage cache (default: a temporary folder)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache or Path(tmp)
        found = {}
        for label, defense in DEFENSES.items():
            cfg = {**BASE, "defense": defense}
            if label == "dpsgd":  # per-sample gradients need GroupNorm
                cfg["model"] = {**BASE["model"], "norm": "group"}
            found[label] = run(cfg, save=False, progress=False, cache=cache).metrics.to_dict()
            print(label, found[label]["acc"], found[label]["asr"], flush=True)
    args.out.write_text(json.dumps(found, indent=1) + "\n")


if __name__ == "__main__":
    main()
