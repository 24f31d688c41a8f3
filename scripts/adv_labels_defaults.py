"""How `adv-labels`' defaults were chosen: its budget (eps) and PGD steps over a grid, each
measured on the digits zoo (configs/sweeps/digits-zoo.yaml: 4 benign, 4 infected models). The
MNIST zoo, where the detector is judged, plays no part in the choice.

    .venv/bin/python scripts/adv_labels_defaults.py [--work runs/digits-zoo]

About a minute on 2 CPU cores (the zoo is trained once, then reused).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from backdoorlab.detectors import run_detector
from backdoorlab.experiment.config import load_config
from backdoorlab.experiment.runner import load_model
from backdoorlab.experiment.sweep import sweep
from backdoorlab.metrics.detection import separation
from backdoorlab.records.store import ResultStore

REPO = Path(__file__).resolve().parents[1]
GRID = [(eps, steps) for eps in (0.05, 0.1, 0.2, 0.3) for steps in (10, 20)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/digits-zoo", help="the zoo's sweep folder")
    parser.add_argument("--cpus", type=int, default=None, help="threads per model (default 2)")
    args = parser.parse_args()
    spec = REPO / "configs" / "sweeps" / "digits-zoo.yaml"
    result = sweep(spec, args.work, cpus=args.cpus, progress=False)
    from backdoorlab.data import load_dataset

    models = []
    for row in ResultStore(result.db).rows(sweep="digits-zoo"):
        cfg = load_config(json.loads(row["config_json"]))
        test = load_dataset(cfg.dataset, cfg.seed).test
        target = cfg.attack.target if cfg.attack.name != "none" else None
        models.append((target, load_model(row["out_dir"]), test))
    print("| eps | steps | AUROC | target acc % |\n| ---: | ---: | ---: | ---: |")
    for eps, steps in GRID:
        labels, scores, hits = [], [], []
        for target, model, test in models:
            found = run_detector("adv-labels", model, test, {"eps": eps, "steps": steps})
            labels.append(int(target is not None))
            scores.append(found.score)
            if target is not None:
                hits.append(max(range(len(found.scores)), key=found.scores.__getitem__) == target)
        sep = separation(labels, scores)
        print(f"| {eps} | {steps} | {sep.auroc:.3f} | {100 * sum(hits) / len(hits):.1f} |")


if __name__ == "__main__":
    main()
