"""Issue 26's SGD LeNet and its benign twins (tests/byo/foreign_mnist.py:sgd_lenet, seeds
0..N-1) scanned with and without the trigger-search screen (Neural Cleanse's search on the
probes' 3 top classes, on the model and every reference; detectors/scan.py ScreenConfig), at
the scan's defaults and at the 400-image development choice (adv-labels-l2 + mm-bd on raw
values, references trained for 320 steps). Each setting trains its references once per seed
(a model and its twin share the defender's 500 clean images).

    .venv/bin/python -m scripts.screen_foreign_lenet [--mnist ../shared/data/mnist] [--twins 3]
                                                     [--doc PATH]

(run from the repository's root; about 15 minutes on one CPU thread). `--doc` writes the
example page docs/examples/sgd-lenet-screen.md.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import backdoorlab
from scripts.repair_foreign_lenet import top_class
from tests.byo.foreign_mnist import LENET_TARGET as TARGET
from tests.byo.foreign_mnist import sgd_lenet

REPO = Path(__file__).resolve().parents[1]
DOC = "docs/examples/sgd-lenet-screen.md"
SETTINGS = {
    "defaults": {},
    "defaults + screen": {"screen": 3},
    "400-image choice": {"detectors": ["adv-labels-l2", "mm-bd"], "evidence": "values",
                         "recipe": {"min_steps": 320}},
    "400-image choice + screen": {"detectors": ["adv-labels-l2", "mm-bd"], "evidence": "values",
                                  "recipe": {"min_steps": 320}, "screen": 3},
}  # fmt: skip


def measure(mnist: Path, count: int) -> list[dict]:
    """Every setting's scan of the infected model and its twin at seeds 0..count-1."""
    rows = []
    with tempfile.TemporaryDirectory() as cache:  # references trained here, for these only
        for seed in range(count):
            for poisoned in (True, False):
                case = sgd_lenet(mnist, seed, poisoned)
                for name, kw in SETTINGS.items():
                    r = backdoorlab.scan(case["model"], case["clean"], cache=cache, **kw)
                    c = r.calibration
                    assert c is not None
                    row = {"seed": seed, "poisoned": poisoned, "setting": name,
                           "score": c.score, "threshold": c.threshold, "target": c.target,
                           "top": top_class({"class_z": c.class_z()}),
                           "screen": c.screen}  # fmt: skip
                    rows.append(row)
                    print({k: v for k, v in row.items() if k != "screen"})
    return rows


def page(rows: list[dict]) -> str:
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        "# The SGD LeNet and its benign twins, scanned with a trigger-search screen",
        "",
        "Written by `.venv/bin/python -m scripts.screen_foreign_lenet "
        f"--twins {len(seeds)} --doc {DOC}` (one CPU thread). An example of the Python API, "
        "not a results page.",
        "",
        "Issue 26's model (tests/byo/foreign_mnist.py: a LeNet trained by plain PyTorch, SGD "
        f"with momentum, a 4x4 white square at the top-left sent to class {TARGET}) at seeds "
        f"{seeds[0]}-{seeds[-1]}, and each one's benign twin (the same script and images, nothing "
        "stamped), scanned by `backdoorlab.scan(model, clean, ...)` on the defender's 500 clean "
        "images. `screen=3`: Neural Cleanse's trigger search on the probes' 3 top classes of the "
        "model and of every reference, the log mask norm z-scored per class against the "
        "references'. The 400-image choice: `detectors=['adv-labels-l2', 'mm-bd'], "
        "evidence='values', recipe={'min_steps': 320}`.",
        "",
        "| setting | seed | model | score (threshold) | flagged class | most anomalous class "
        "| screened classes | screen z |",
        "|---|---:|---|---:|---:|---:|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (list(SETTINGS).index(r["setting"]), r["seed"],
                                         not r["poisoned"])):  # fmt: skip
        s = r["screen"]
        lines.append(
            f"| {r['setting']} | {r['seed']} | {'infected' if r['poisoned'] else 'benign twin'} "
            f"| {r['score']:.2f} ({r['threshold']:.2f}) "
            f"| {'none' if r['target'] is None else r['target']} | {r['top']} "
            f"| {'-' if s is None else ', '.join(map(str, s['classes']))} "
            f"| {'-' if s is None else ', '.join(f'{z:.1f}' for z in s['z'])} |"
        )
    lines += ["", "Flagged, per setting (infected at class "
              f"{TARGET} / infected / benign twins, of {len(seeds)} each):", ""]  # fmt: skip
    for name in SETTINGS:
        mine = [r for r in rows if r["setting"] == name]
        hit = sum(r["poisoned"] and r["target"] == TARGET for r in mine)
        inf = sum(r["poisoned"] and r["target"] is not None for r in mine)
        ben = sum(not r["poisoned"] and r["target"] is not None for r in mine)
        lines.append(f"- {name}: {hit} / {inf} / {ben}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--twins", type=int, default=3)
    parser.add_argument("--doc", help=f"write the example page here (e.g. {DOC})")
    args = parser.parse_args()
    rows = measure(Path(args.mnist), args.twins)
    if args.doc:
        Path(args.doc).write_text(page(rows))
        print("wrote", args.doc)


if __name__ == "__main__":
    main()
