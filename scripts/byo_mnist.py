"""docs/examples/byo-mnist.md, an example of the Python API (not a results page): models trained
by a plain PyTorch script (its own network and loop, tests/byo/foreign_mnist.py) on real MNIST
with a BadNets backdoor, then evaluated, repaired by every post-training defense and scanned
through backdoorlab's Python API.

    .venv/bin/python scripts/byo_mnist.py [--mnist ../shared/data/mnist] [--work runs/byo-mnist]
                                          [--doc docs/examples/byo-mnist.md]

About 25 minutes on 2 CPU cores (Neural Cleanse is most of it). Every number on the page comes
from this run; `--page-only` rewrites the page from the run's results.json. DER (defense
effectiveness rating) is computed from the before / after numbers.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import sys
from pathlib import Path

import torch

import backdoorlab
from backdoorlab.metrics.core import der
from backdoorlab.records.files import write_text

REPO = Path(__file__).resolve().parents[1]
# the MNIST settings of docs/results/post-training-mnist.md and configs/paper/mu2022/table2.yaml
DEFENSES = {
    "ft": {"epochs": 10, "lr": 0.01},
    "fp": {},
    "nad": {},
    "nc": {"steps": 60, "batches_per_step": 5, "batch_size": 128, "epochs": 5},
    "aft": {"eps": 0.2, "steps": 7, "epochs": 20, "clean_epochs": 5},
}
AFT_SWEEP = [(eps, epochs) for epochs in (10, 20, 40) for eps in (0.1, 0.2, 0.3)]


def _foreign():
    """The user's script, loaded from its file (it is not part of the package)."""
    path = REPO / "tests" / "byo" / "foreign_mnist.py"
    spec = importlib.util.spec_from_file_location("foreign_mnist", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pct(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mnist", default=str(REPO.parent / "shared" / "data" / "mnist"))
    p.add_argument("--work", default="runs/byo-mnist")
    p.add_argument("--doc", default="docs/examples/byo-mnist.md")
    p.add_argument(
        "--page-only", action="store_true", help="rewrite the page from WORK/results.json"
    )
    args = p.parse_args(argv)
    command = shlex.join([".venv/bin/python", "scripts/byo_mnist.py", *(argv or sys.argv[1:])])
    if args.page_only:
        results = json.loads((Path(args.work) / "results.json").read_text())
        command = command.replace(" --page-only", "")
        write_text(args.doc, page(results, command))
        print(f"wrote {args.doc}")
        return
    torch.set_num_threads(2)
    fm = _foreign()
    norm = {"mean": (fm.MEAN,), "std": (fm.STD,), "device": "cpu"}
    results: dict = {}
    for head in ("pool", "flatten"):
        files = fm.build(Path(args.mnist), Path(args.work) / head, head=head)
        net = fm.make(head=head)
        net.load_state_dict(torch.load(files["model"], weights_only=True))
        trig = {"trigger": files["trigger"], "target": fm.TARGET, "mask": files["mask"]}
        r: dict = {"evaluate": backdoorlab.evaluate(net, files["test"], **trig, **norm)}
        print(head, "evaluate", r["evaluate"], flush=True)
        r["repair"] = {}
        for name, options in DEFENSES.items():
            _, report = backdoorlab.repair(
                net, files["clean"], name, test=files["test"], **trig, **norm, **options
            )
            r["repair"][name] = report.to_dict()
            print(head, name, report.after, f"{report.seconds:.0f} s", flush=True)
        r["aft_sweep"] = []
        for eps, epochs in AFT_SWEEP:
            options = {**DEFENSES["aft"], "eps": eps, "epochs": epochs}
            _, report = backdoorlab.repair(
                net, files["clean"], "aft", test=files["test"], **trig, **norm, **options
            )
            r["aft_sweep"].append({"eps": eps, "epochs": epochs, **report.after})
        # the page's scan: the two raw detectors as it shows them (the calibrated scan, the
        # default since, is measured on docs/results/detection-dev.md)
        scan = backdoorlab.scan(net, files["clean"], mean=norm["mean"], std=norm["std"],
                                detectors=["adv-labels", "nc"], references=None)  # fmt: skip
        r["scan"] = scan.to_dict()
        print(head, scan.verdict, flush=True)
        results[head] = r
    write_text(Path(args.work) / "results.json", json.dumps(results, indent=2) + "\n")
    write_text(args.doc, page(results, command))
    print(f"wrote {args.doc}")


def page(results: dict, command: str) -> str:
    lines = [
        "# Bring your own model: a BadNets MNIST classifier trained outside backdoorlab",
        "",
        f"Written by `{command}`; every number below comes from that run "
        "(its JSON: `runs/byo-mnist/results.json`).",
        "",
        "A plain PyTorch script, `tests/byo/foreign_mnist.py` (its own `nn.Module` and "
        "training loop, Adam, 3 epochs, normalisation in its data pipeline), trains a classifier "
        "on 8,000 real MNIST images of which 10% carry a white 3x3 square near the bottom-right "
        "corner and are relabelled 0. It saves what a user brings: a state dict (`.pt`), the "
        "trigger and its mask as PNG, 500 clean training images in class folders (the "
        "defender's data) and the 2,000 held-out images as `.npz`. Two heads: `pool` averages "
        "the last feature map over space (as ResNets do), `flatten` feeds every position to a "
        "two-layer classifier (as LeNet-style nets do). backdoorlab loads the weights with "
        "`--arch tests/byo/foreign_mnist.py:make --mean 0.1307 --std 0.3081` and works "
        "on [0, 1] images. Defense settings are those of "
        "[post-training-mnist.md](post-training-mnist.md) (AFT: eps 0.2, 7 steps, 20 epochs, "
        "5 clean epochs; NC: 300 steps, 5 unlearning epochs; FT: 10 epochs at lr 0.01; FP and "
        "NAD: their defaults, acting on the last convolutional block found by forward hooks).",
        "",
    ]
    for head, r in results.items():
        e = r["evaluate"]
        lines += [
            f"## `{head}` head",
            "",
            f"As delivered: ACC {pct(e['acc'])}, ASR {pct(e['asr'])}, RA {pct(e['ra'])} on "
            f"{e['images']} test images.",
            "",
            "| defense | ACC before | ASR before | ACC after | ASR after | RA after | DER | "
            "defense's own numbers | s |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
        ]
        for name, rep in r["repair"].items():
            b, a = rep["before"], rep["after"]
            own = {
                k: v for k, v in rep["defense_report"].items()
                if not isinstance(v, list) or (len(v) <= 10 and not isinstance(v[0], dict))
            }  # fmt: skip
            own_text = ", ".join(
                f"{k} {[round(x, 1) if isinstance(x, float) else x for x in v]}"
                if isinstance(v, list) else f"{k} {v}"
                for k, v in own.items()
            ) or "-"  # fmt: skip
            lines.append(
                f"| {name} | {pct(b['acc'])} | {pct(b['asr'])} | {pct(a['acc'])} | "
                f"{pct(a['asr'])} | {pct(a['ra'])} | {der(b, a):.3f} | {own_text} | "
                f"{rep['seconds']:.0f} |"
            )
        lines += [
            "",
            "AFT over its budget (eps) and stage-2 epochs (5 clean epochs after each):",
            "",
            "| stage-2 epochs | "
            + " | ".join(f"eps {eps:g} ACC / ASR" for eps in (0.1, 0.2, 0.3))
            + " |",
            "| ---: | ---: | ---: | ---: |",
        ]
        for epochs in (10, 20, 40):
            cells = [c for c in r["aft_sweep"] if c["epochs"] == epochs]
            lines.append(
                f"| {epochs} | "
                + " | ".join(f"{pct(c['acc'])} / {pct(c['asr'])}" for c in cells)
                + " |"
            )
        s = r["scan"]
        lines += ["", f"`scan` (trigger-free): {s['verdict']}.", ""]
        for name, d in s["detections"].items():
            lines.append(
                f"- **{name}** ({d['value_name']}): "
                + ", ".join(f"{c}: {v:.1f}" for c, v in enumerate(d["values"]))
                + f"; anomaly index max {d['score']:.2f}; suspects {d['suspects'] or 'none'} "
                f"({d['seconds']:.0f} s)."
            )
        lines.append("")
    notes = REPO / "docs" / "examples" / "byo-mnist-notes.md"
    if notes.is_file():
        lines += ["## Observations", "", notes.read_text().strip(), ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
