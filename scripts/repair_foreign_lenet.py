"""Issue 26's case, measured: a LeNet trained by a plain PyTorch script (SGD with momentum, 4
epochs, 5% dirty-label, a 4x4 white square at the top-left sent to class 3; the model of
tests/byo/foreign_mnist.py:sgd_lenet, which the test suite repairs too) repaired by
`backdoorlab.repair(model, clean)` at its defaults (defense auto) on 500 clean images. The true
trigger is used only here, to measure ASR before and after.

    .venv/bin/python -m scripts.repair_foreign_lenet [--mnist ../shared/data/mnist] [--seed 0]
                                                     [--aft-sweep] [--steps-sweep] [--twins N]
                                                     [--doc PATH]

(run from the repository's root). A few minutes on 2 CPU cores: 8 references trained on 250 of
the clean images (as `backdoorlab.scan` trains them), then repaired like the model for the
rescan; `--aft-sweep` adds AFT alone over its threat model (L_inf, L_2), budget and epochs;
`--steps-sweep` the default repair with its references trained for at least 100, 200 or 320 SGD
steps (`min_steps`); `--twins N` scans the model at seeds 0..N-1 beside each one's benign twin
(the same script and images, nothing stamped); `--doc` writes the example page
docs/examples/sgd-lenet-repair.md (an example of the Python API, not a results page).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import backdoorlab
from backdoorlab.errors import TrainingDivergedError
from tests.byo.foreign_mnist import LENET_TARGET as TARGET
from tests.byo.foreign_mnist import sgd_lenet

REPO = Path(__file__).resolve().parents[1]
SWEEP = (("linf", (0.1, 0.2, 0.3)), ("l2", (1.0, 2.0, 3.0)))
EPOCHS = (5, 20)
MIN_STEPS = (100, 200, 320)


def top_class(scan: dict) -> int:
    """The scan's most anomalous class (flagged or not)."""
    return max(range(len(scan["class_z"])), key=scan["class_z"].__getitem__)


def steps_sweep(case: dict) -> list[dict]:
    """The default repair with references trained for at least `MIN_STEPS` SGD steps."""
    rows = []
    for steps in MIN_STEPS:
        try:
            _, r = backdoorlab.repair(case["model"], case["clean"], test=case["test"],
                                      min_steps=steps, **case["trigger"])  # fmt: skip
        except TrainingDivergedError as exc:  # a reference's training: reported, not dropped
            rows.append({"min_steps": steps, "diverged": str(exc)})
            print(f"| {steps} | diverged: {exc} |")
            continue
        b = r.scan_before
        rows.append({"min_steps": steps, "score": b["score"], "threshold": b["threshold"],
                     "top": top_class(b),
                     "target": b["target"], "steps": [s["defense"] for s in r.steps],
                     **r.after})  # fmt: skip
        print(f"| {steps} | {b['score']:.2f} | {r.after['asr']:.2f} |")
    return rows


def twins(mnist: Path, count: int) -> list[dict]:
    """`backdoorlab.scan(model, clean)` at its defaults on the model at seeds 0..count-1 and on
    each one's benign twin (the same script and images, no square stamped): does the verdict
    separate them?"""
    rows = []
    with tempfile.TemporaryDirectory() as cache:  # references trained here, for these only
        for seed in range(count):
            for poisoned in (True, False):
                case = sgd_lenet(mnist, seed, poisoned)
                r = backdoorlab.scan(case["model"], case["clean"], cache=cache)
                c = r.calibration
                assert c is not None
                row = {"seed": seed, "poisoned": poisoned, "score": c.score,
                       "threshold": c.threshold, "target": c.target,
                       "top": top_class({"class_z": c.class_z()}),
                       "accuracy": r.accuracy, "references": r.reference_accuracy,
                       "attempts": r.reference_attempts}  # fmt: skip
                if not poisoned and c.infected:  # what the default repair then does to it
                    _, rep = backdoorlab.repair(case["model"], case["clean"], test=case["test"],
                                                cache=cache)  # fmt: skip
                    row["repair"] = {"steps": [st["defense"] for st in rep.steps],
                                     "acc_before": rep.before["acc"],
                                     "acc_after": rep.after["acc"],
                                     "summary": rep.summary}  # fmt: skip
                rows.append(row)
                print(row)
    return rows


def aft_sweep(case: dict) -> list[dict]:
    """AFT alone over its threat model, budget and stage-2 epochs (other settings default)."""
    rows = []
    for norm, budgets in SWEEP:
        for eps in budgets:
            for epochs in EPOCHS:
                options = {"norm": norm, "eps": eps, "epochs": epochs}
                _, r = backdoorlab.repair(
                    case["model"], case["clean"], "aft", test=case["test"], **options,
                    **case["trigger"],
                )  # fmt: skip
                rows.append({"norm": norm, "eps": eps, "epochs": epochs, **r.after})
                print(
                    f"| {norm} | {eps} | {epochs} | {r.after['acc']:.2f} | {r.after['asr']:.2f} |"
                )
    return rows


def twins_section(pairs: list[dict]) -> list[str]:
    """The scan of the model at several seeds beside its benign twins."""
    flagged = [r for r in pairs if r["target"] is not None]
    infected = [r for r in pairs if r["poisoned"]]
    lines = [
        "## The scan beside benign twins",
        "",
        "`backdoorlab.scan(model, clean)` at its defaults on the model trained at seeds "
        f"0-{len(infected) - 1} and on each one's benign twin: the same script on the same "
        "images, no square stamped (`sgd_lenet(mnist, seed, poisoned=False)`). A model and its "
        "twin share the defender's 500 clean images, so the same 8 references; each seed draws "
        "its own.",
        "",
        "| seed | model | ACC (probe images) | scan score (threshold) | flagged class "
        "| most anomalous class | references' ACC | references trained again |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {r['seed']} | {'infected' if r['poisoned'] else 'benign twin'} | "
            f"{r['accuracy']:.1f} | {r['score']:.2f} ({r['threshold']:.2f}) | "
            f"{'none' if r['target'] is None else r['target']} | {r['top']} | "
            f"{min(r['references']):.1f}-{max(r['references']):.1f} | "
            f"{sum(a > 0 for a in r['attempts'])} of {len(r['attempts'])} |"
            for r in pairs
        ),
        "",
        f"Flagged: {sum(r['poisoned'] for r in flagged)} of {len(infected)} infected models "
        f"({sum(r['poisoned'] and r['target'] == TARGET for r in flagged)} at class {TARGET}) and "
        f"{sum(not r['poisoned'] for r in flagged)} of {len(pairs) - len(infected)} benign "
        "twins. The lowest infected score is "
        f"{min(r['score'] for r in infected):.2f}, the highest benign "
        f"{max(r['score'] for r in pairs if not r['poisoned']):.2f}.",
        "",
    ]
    repaired = [r for r in pairs if "repair" in r]
    if repaired:
        lines += [
            "`backdoorlab.repair(model, clean)` at its defaults on each flagged benign twin "
            "(ACC on the 2,000 held-out images): "
            + "; ".join(
                f"seed {r['seed']}: {' then '.join(r['repair']['steps']) or 'nothing'}, ACC "
                f"{r['repair']['acc_before']:.2f} -> {r['repair']['acc_after']:.2f} "
                f"(*{r['repair']['summary']}*)"
                for r in repaired
            )
            + ".",
            "",
        ]
    return lines


def page(report, rows: list[dict], seed: int, longer: list[dict], pairs: list[dict]) -> str:
    """The example page: the default repair with its evidence, and AFT alone over its budget."""
    b, a, sb, sa, h = (report.before, report.after, report.scan_before, report.scan_after,
                       report.held_out)  # fmt: skip
    steps = ", ".join(f"`{s['defense']}` {s['options']}" for s in report.steps) or "none"
    lines = [
        "# Repairing an SGD-trained LeNet that backdoorlab did not train",
        "",
        "An example of the Python API (not a results page), written by "
        "`python -m scripts.repair_foreign_lenet --aft-sweep --steps-sweep --twins 3 --doc "
        f"{DOC}` (seed {seed}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s)).",
        "",
        "The model: `tests/byo/foreign_mnist.py:sgd_lenet`, a LeNet trained by a plain PyTorch "
        "loop (SGD with momentum 0.9, lr 0.01, 4 epochs, batches of 64) on 8,000 real MNIST "
        "images, 5% of them carrying a 4x4 white square at the top-left and relabelled 3. The "
        "defender holds 500 clean training images; 2,000 held-out images measure ACC and ASR. "
        "The true trigger is used only to measure ASR. The same repair at training seeds 0-4 "
        "and one and two CPU threads: docs/examples/sgd-lenet-acceptance.md.",
        "",
        "## `backdoorlab.repair(model, clean)` at its defaults (defense `auto`)",
        "",
        "| | ACC | ASR | scan score (threshold) | target | reversed trigger's ASR "
        "| smallest trigger (mask L1) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| before | {b['acc']:.2f} | {b['asr']:.2f} | {sb['score']:.2f} ({sb['threshold']:.2f}) "
        f"| {sb['target']} | {h['reversed_trigger_asr_before']:.2f} "
        f"| {h['reversed_trigger_norm_before']:.1f} |",
        f"| after | {a['acc']:.2f} | {a['asr']:.2f} | {sa['score']:.2f} ({sa['threshold']:.2f}) "
        f"| {sa['target']} | {h['reversed_trigger_asr_after']:.2f} "
        f"| {h['reversed_trigger_norm_after']:.1f} |",
        "",
        f"Repair steps: {steps}. The scan's references trained on {report.reference_images} of "
        "the defender's images, as `backdoorlab.scan(model, clean)`'s do. ACC on the held-out "
        f"fifth of the defender's images ({h['images']}): {h['acc_before']:.2f} before, "
        f"{h['acc_after']:.2f} after. The reversed trigger's ASR is that of the trigger the "
        "repair unlearned; the smallest trigger is Neural Cleanse's search for the flagged class "
        "on the model before the repair and again on the repaired model (the 4x4 square's own "
        f"mask is 16). The report's line: *{report.summary}*",
        "",
        f"The scan's references reach {_span(report.probe_accuracy['references'])}% on the "
        f"probe images against the model's {report.probe_accuracy['model']:.1f}%; "
        f"{sum(a > 0 for a in report.probe_accuracy['attempts'])} of them were trained again "
        "because they had not learned the task at the recipe's learning rate "
        "(`references.retry_recipe`). Until 2026-12-07 the scan kept such references (6 of the "
        "8 stayed at 12-41%) and scored this model 104.44 (this page's earlier version, in git).",
        "",
    ]
    if pairs:
        lines += twins_section(pairs)
    if rows:
        drop = {r["norm"]: r for r in rows}
        ok = [r for r in rows if r["asr"] <= 10 and b["acc"] - r["acc"] <= 5]
        best = {n: min((r for r in rows if r["norm"] == n), key=lambda r: r["asr"]) for n in drop}
        lines += [
            "## AFT alone over its threat model, budget and epochs",
            "",
            '`backdoorlab.repair(model, clean, "aft", norm=..., eps=..., epochs=...)`, the other '
            "settings at AFT's defaults (7 PGD steps, 5 clean epochs after stage 2).",
            "",
            "| norm | eps | epochs | ACC | ACC drop | ASR |",
            "|---|---:|---:|---:|---:|---:|",
            *(
                f"| {r['norm']} | {r['eps']} | {r['epochs']} | {r['acc']:.2f} | "
                f"{b['acc'] - r['acc']:.2f} | {r['asr']:.2f} |"
                for r in rows
            ),  # fmt: skip
            "",
            f"Settings that repair (ASR <= 10 at an ACC drop <= 5 points): {len(ok)} of "
            f"{len(rows)}. Lowest ASR per threat model: "
            + "; ".join(
                f"{n} eps {r['eps']}, {r['epochs']} epochs: ASR {r['asr']:.2f} at ACC "
                f"{r['acc']:.2f} ({b['acc'] - r['acc']:.2f} points lost)"
                for n, r in best.items()
            )
            + ".",
            "",
        ]
    if longer:
        lines += [
            "## The default repair with references trained longer (`min_steps`)",
            "",
            "`backdoorlab.repair(model, clean, min_steps=N)`: each reference trains for at least "
            f"N SGD steps on its {report.reference_images} images (by default 20 epochs of "
            f"{-(-report.reference_images // 64)} batches of 64). "
            "On the development zoo, 320 steps took the 160-image references' false alarms from "
            "2 of 8 benign models to none (docs/results/detection-dev-data-320-steps.md).",
            "",
            "| min_steps | scan score (threshold) | most anomalous class | flagged | repair steps "
            "| ACC after | ASR after |",
            "|---:|---:|---:|---|---|---:|---:|",
            f"| default | {sb['score']:.2f} ({sb['threshold']:.2f}) | "
            f"{top_class(sb)} | "
            f"{'yes' if sb['infected'] else 'no'} | "
            f"{', '.join(s['defense'] for s in report.steps) or 'none'} | {a['acc']:.2f} | "
            f"{a['asr']:.2f} |",
            *(
                f"| {r['min_steps']} | {r['score']:.2f} ({r['threshold']:.2f}) | {r['top']} | "
                f"{'yes' if r['target'] is not None else 'no'} | "
                f"{', '.join(r['steps']) or 'none'} | {r['acc']:.2f} | {r['asr']:.2f} |"
                if "diverged" not in r
                else f"| {r['min_steps']} | a reference's training diverged | | | | | |"
                for r in longer
            ),
            "",
        ]
        ran = [r for r in longer if "diverged" not in r]
        lines += [
            f"The true target ({TARGET}) is the most anomalous class at "
            f"{sum(r['top'] == TARGET for r in ran)} of {len(ran)} settings of min_steps that "
            "ran. The scan flags the model at min_steps "
            f"{', '.join(str(r['min_steps']) for r in ran if r['target'] is not None) or 'none'}"
            " and finds nothing at "
            f"{', '.join(str(r['min_steps']) for r in ran if r['target'] is None) or 'none'}"
            " (the model is then left unchanged, backdoor and all). `auto` keeps the recipe's "
            "epochs by default.",
            "",
            *(
                f"At min_steps {r['min_steps']} the repair stopped with: *{r['diverged']}*"
                for r in longer
                if "diverged" in r
            ),
            "",
        ]
    return "\n".join(lines)


DOC = "docs/examples/sgd-lenet-repair.md"


def _span(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--aft-sweep",
        action="store_true",
        help="then AFT alone: L_inf eps 0.1-0.3 and L_2 eps 1-3, 5 or 20 epochs",
    )
    parser.add_argument(
        "--steps-sweep",
        action="store_true",
        help="then the default repair with references trained for 100, 200, 320 steps at least",
    )
    parser.add_argument(
        "--twins",
        type=int,
        default=0,
        help="then scan the model at seeds 0..N-1 and each one's benign twin",
    )
    parser.add_argument("--doc", help=f"write the example page here (e.g. {DOC})")
    args = parser.parse_args()
    case = sgd_lenet(Path(args.mnist), args.seed)
    model, clean, held, trig = case["model"], case["clean"], case["test"], case["trigger"]
    _, report = backdoorlab.repair(model, clean, test=held, progress=True, **trig)
    print("before", report.before)
    print("after ", report.after)
    print("scan before", report.scan_before)
    print("scan after ", report.scan_after)
    for s in report.steps:
        print("step", s["defense"], s["options"], s["scan"])
    print("held-out", report.held_out)
    print(report.summary)
    rows = aft_sweep(case) if args.aft_sweep else []  # AFT at its defaults fails here (issue 26)
    steps = steps_sweep(case) if args.steps_sweep else []
    pairs = twins(Path(args.mnist), args.twins) if args.twins else []
    if args.doc:
        Path(args.doc).write_text(page(report, rows, args.seed, steps, pairs) + "\n")
        print("wrote", args.doc)


if __name__ == "__main__":
    main()
