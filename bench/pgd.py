"""(b) PGD, L_inf and L_2: time and robust accuracy against torchattacks and ART's PyTorch PGD.

Same trained small CNN (weights), images, eps, step size, steps, random start and batch size for
all three; robust accuracy (RA) is the accuracy on each implementation's adversarial examples.
torchattacks and ART get the model in PyTorch's default memory layout, as a user's model comes;
ours lays it out channels_last (its fast path, what `fit` trains). A last row gives torchattacks
the channels_last model too, for the record.

    python bench/pgd.py [--quick]
"""

from __future__ import annotations

import argparse
import copy

import numpy as np
import torch
from common import Row, interleaved, mnist_or_digits, print_rows, trained_cnn

from backdoorlab.perturb import L2Ball, LinfBall, pgd

SETTINGS = {"linf": (0.1, 0.02), "l2": (1.5, 0.3)}  # eps, step size (MNIST scale)
STEPS, BATCH = 10, 256


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return 100.0 * float((model(x).argmax(1) == y).float().mean())


def bench(quick: bool = False, device: str = "cpu") -> tuple[list[Row], dict[str, float]]:
    import torchattacks
    from art.attacks.evasion import ProjectedGradientDescentPyTorch
    from art.estimators.classification import PyTorchClassifier

    dev = torch.device(device)
    splits, _ = mnist_or_digits(4000, 1000 if quick else 2000, dev)
    ours_model = trained_cnn(splits.train, dev)
    model = copy.deepcopy(ours_model).to(memory_format=torch.contiguous_format)
    model_cl = copy.deepcopy(ours_model).to(memory_format=torch.channels_last)
    x, y = splits.test.floats(), splits.test.labels
    batches = [(x[i : i + BATCH], y[i : i + BATCH]) for i in range(0, len(y), BATCH)]
    estimator = PyTorchClassifier(
        model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=splits.test.spec.num_classes,
        clip_values=(0.0, 1.0),
        device_type="gpu" if dev.type == "cuda" else "cpu",
    )
    rows, numbers = [], {}
    for norm, (eps, alpha) in SETTINGS.items():
        threat = LinfBall(eps) if norm == "linf" else L2Ball(eps)
        ta_cls = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
        ta = ta_cls(model, eps=eps, alpha=alpha, steps=STEPS, random_start=True)
        ta_cl = ta_cls(model_cl, eps=eps, alpha=alpha, steps=STEPS, random_start=True)
        art = ProjectedGradientDescentPyTorch(
            estimator,
            norm=np.inf if norm == "linf" else 2,
            eps=eps,
            eps_step=alpha,
            max_iter=STEPS,
            num_random_init=1,
            batch_size=BATCH,
            verbose=False,
        )
        runs = {
            "ours": lambda t=threat, a=alpha: [
                pgd(ours_model, xb, yb, t, STEPS, a) for xb, yb in batches
            ],
            "torchattacks": lambda a=ta: [a(xb, yb) for xb, yb in batches],
            "torchattacks_cl": lambda a=ta_cl: [a(xb, yb) for xb, yb in batches],
            "art": lambda a=art: [
                a.generate(xb.cpu().numpy(), yb.cpu().numpy()) for xb, yb in batches
            ],
        }
        t = interleaved(runs, dev, repeats=3 if quick else 5)
        torch.manual_seed(1)
        ra = {
            "ours": _accuracy(model, torch.cat(runs["ours"]()), y),
            "torchattacks": _accuracy(model, torch.cat(runs["torchattacks"]()), y),
            "art": _accuracy(model, torch.from_numpy(np.concatenate(runs["art"]())).to(dev), y),
        }
        label = f"{norm} eps {eps} step {alpha} x{STEPS}"
        rows += [
            Row(f"PGD {label}: time", t["ours"], t["torchattacks"], "s",
                t["ours"] / t["torchattacks"], "<= 0.9x torchattacks"),
            Row(f"PGD {label}: time", t["ours"], t["art"], "s", t["ours"] / t["art"], "< 1x ART"),
            Row(f"PGD {label}: RA", ra["ours"], ra["torchattacks"], "%",
                ra["ours"] - ra["torchattacks"], "ours - theirs <= +0.5 points"),
            Row(f"PGD {label}: time, torchattacks on channels_last", t["ours"],
                t["torchattacks_cl"], "s", t["ours"] / t["torchattacks_cl"], "(for the record)"),
        ]  # fmt: skip
        numbers[f"{norm}_time_vs_torchattacks"] = t["ours"] / t["torchattacks"]
        numbers[f"{norm}_time_vs_art"] = t["ours"] / t["art"]
        numbers[f"{norm}_ra_minus_torchattacks"] = ra["ours"] - ra["torchattacks"]
        numbers[f"{norm}_ra_minus_art"] = ra["ours"] - ra["art"]
        numbers[f"{norm}_time_vs_torchattacks_channels_last"] = t["ours"] / t["torchattacks_cl"]
    return rows, numbers


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print_rows("(b) PGD vs torchattacks and ART", bench(args.quick, args.device)[0])
