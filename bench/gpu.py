"""ResNet-18 on CIFAR-10-shaped data: standard training images/s and a PGD-10 AT epoch's seconds.

The issue's targets on one H100: >= 25,000 images/s of standard training and <= 12 s per PGD-10
AT epoch (50,000 images). Both run `fit` as an experiment does (random crop 4 + flip, SGD with
momentum, the AT epoch through the `at` defense's hooks: L_inf eps 8/255, 10 steps of 2/255), on
synthetic uint8 images, with the performance switches given here. Each measures the last of
`--epochs` epochs (the first pays for cudnn.benchmark and torch.compile). Under `torchrun` the
same command trains data-parallel (`--batch` stays the global batch).

    python bench/gpu.py --device cuda [--amp bf16] [--compile] [--json FILE]
    torchrun --nproc-per-node 8 bench/gpu.py --device cuda --amp bf16
    python bench/gpu.py --quick        # tiny and on CPU: checks that it runs; no real numbers
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from common import machine, synthetic_images

from backdoorlab.defenses import DEFENSES, DefenseContext, build_defense
from backdoorlab.models import MODELS, build_model
from backdoorlab.train import TrainConfig, fit
from backdoorlab.train.distributed import distributed
from backdoorlab.train.perf import Performance, performance


def epoch_seconds(
    data, cfg: TrainConfig, defense: dict | None, width: int, perf: Performance
) -> float:
    """Seconds of the last epoch of `fit` on a fresh ResNet-18 (AT hooks when `defense`)."""
    torch.manual_seed(0)
    model = build_model(MODELS.validate({"name": "resnet18", "width": width}), data.spec)
    model = model.to(data.device)
    hooks = []
    if defense is not None:
        d = build_defense(DEFENSES.validate(defense))
        hooks = d.training_hooks(
            DefenseContext(train=data, train_config=cfg, device=data.device, seed=0, perf=perf)
        )
    state = fit(model, data, cfg, hooks, progress=False, perf=perf)
    return state.history[-1]["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=512, help="global batch")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--amp", choices=["off", "bf16"], default="bf16")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--quick", action="store_true", help="512 images of width 8 on CPU")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    width = 64
    if args.quick:
        args.device, args.images, args.batch, args.epochs, width = "cpu", 512, 128, 1, 8
    cuda = args.device.startswith("cuda")
    amp = args.amp if cuda else "off"  # autocast is CUDA-only here
    perf = Performance(channels_last=not args.no_channels_last, amp=amp, compile=args.compile)
    with distributed(cuda) as w, performance(perf):
        device = torch.device("cuda", w.local_rank) if cuda else torch.device(args.device)
        data = synthetic_images(args.images, 3, 32, device)
        cfg = TrainConfig(
            epochs=args.epochs, batch_size=args.batch, lr=0.1, crop_padding=4, flip=True
        )
        at = {"name": "at", "threat": "linf", "eps": 8 / 255, "steps": 10, "alpha": 2 / 255}
        standard = epoch_seconds(data, cfg, None, width, perf)
        adversarial = epoch_seconds(data, cfg, at, width, perf)
        numbers = {
            "standard_images_per_s": args.images / standard,
            "pgd10_at_epoch_s": adversarial,
            "images": args.images,
            "global_batch": args.batch,
            "processes": w.size,
            "performance": perf.model_dump(),
            "device": torch.cuda.get_device_name(device) if cuda else machine(),
        }
        main = w.main
    if not main:
        return
    print(f"{numbers['device']} x{numbers['processes']}, {perf.model_dump()}")
    print(f"standard training: {numbers['standard_images_per_s']:,.0f} images/s (target >= 25,000)")
    print(f"PGD-10 AT epoch of {args.images:,} images: {adversarial:.2f} s (target <= 12 s)")
    if args.json:
        Path(args.json).write_text(json.dumps(numbers, indent=2) + "\n")


if __name__ == "__main__":
    main()
