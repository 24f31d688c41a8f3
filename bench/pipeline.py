"""(a) Poisoned training data: trigger application + augmentation, images/s, against ART.

Ours: BadNets poisons the stored set in one batched call, then `BatchIterator` yields shuffled,
randomly cropped (padding 4) and flipped float batches. Reference: ART's
`PoisoningAttackBackdoor(add_pattern_bd)` poisons the same share of a numpy copy, which feeds the
usual per-sample PyTorch pipeline: a Dataset whose __getitem__ pads, randomly crops and flips one
image (as torchvision transforms do), batched by a DataLoader. Both produce one epoch of augmented
poisoned [0,1] batches of CIFAR-shaped images, from scratch (poisoning included: the key
`pipeline_vs_art`); a second row times a later epoch of each (poisoned set, our padded copy and
ART's loader already built), as a training run streams them. A last row times float batches
alone (gather and uint8 -> float, no trigger, no augmentation): the memory-bound floor of any
such pipeline.

    python bench/pipeline.py [--quick]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import Row, interleaved, print_rows, synthetic_images

from backdoorlab.attacks import ATTACKS, build_attack
from backdoorlab.data.iterator import Augment, BatchIterator


def bench(quick: bool = False, device: str = "cpu") -> list[Row]:
    from art.attacks.poisoning import PoisoningAttackBackdoor
    from art.attacks.poisoning.perturbations import add_pattern_bd

    dev = torch.device(device)
    n, batch, rate, target = (5000 if quick else 20000), 128, 0.1, 0
    data = synthetic_images(n, 3, 32, dev)
    section = ATTACKS.validate({"name": "badnets", "rate": rate, "target": target, "patch_size": 3})
    attack = build_attack(section, data.spec, dev)

    augment = Augment(crop_padding=4, flip=True)

    def ours() -> None:
        poisoned = attack.poison(data, torch.Generator().manual_seed(0))
        for _ in BatchIterator(poisoned.data, batch, shuffle=True, augment=augment, seed=0):
            pass

    stream = BatchIterator(
        attack.poison(data, torch.Generator().manual_seed(0)).data,
        batch,
        shuffle=True,
        augment=augment,
        seed=0,
    )

    def ours_later() -> None:
        for _ in stream:
            pass

    images = data.images.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32) / 255  # NHWC
    labels = data.labels.cpu().numpy()
    backdoor = PoisoningAttackBackdoor(add_pattern_bd)
    rng = np.random.default_rng(0)

    class PerSample(torch.utils.data.Dataset):
        def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
            self.x, self.y = x, y

        def __len__(self) -> int:
            return len(self.y)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            img = torch.nn.functional.pad(torch.from_numpy(self.x[i]).permute(2, 0, 1), (4,) * 4)
            dy, dx = torch.randint(0, 9, (2,)).tolist()
            img = img[:, dy : dy + 32, dx : dx + 32]
            return (img.flip(2) if torch.rand(()) < 0.5 else img), int(self.y[i])

    def art_loader() -> torch.utils.data.DataLoader:
        idx = rng.choice(np.flatnonzero(labels != target), round(rate * n), replace=False)
        x, y = images.copy(), labels.copy()
        x[idx], _ = backdoor.poison(x[idx], y=np.full(len(idx), target), broadcast=True)
        y[idx] = target
        return torch.utils.data.DataLoader(PerSample(x, y), batch_size=batch, shuffle=True)

    def epoch(loader: torch.utils.data.DataLoader) -> None:
        for xb, yb in loader:
            xb.to(dev), yb.to(dev)

    def art() -> None:
        epoch(art_loader())

    loader = art_loader()

    def art_later() -> None:
        epoch(loader)

    def floor() -> None:  # batches of float images, nothing else: gather + uint8 -> float
        for _ in BatchIterator(data, batch, shuffle=True, seed=0):
            pass

    fns = {"ours": ours, "art": art, "ours_later": ours_later, "art_later": art_later}
    t = interleaved({**fns, "floor": floor}, dev, repeats=5 if quick else 9)
    ips = {k: n / v for k, v in t.items()}
    return [
        Row("poisoned epoch from scratch, 3x32x32", ips["ours"], ips["art"], "img/s",
            ips["ours"] / ips["art"], ">= 20x ART"),
        Row("a later epoch (set and loader built)", ips["ours_later"], ips["art_later"], "img/s",
            ips["ours_later"] / ips["art_later"], "(for the record)"),
        Row("float batches alone (our floor) vs ART", ips["floor"], ips["art_later"], "img/s",
            ips["floor"] / ips["art_later"], "(for the record)"),
    ]  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print_rows("(a) poisoned-data pipeline vs ART", bench(args.quick, args.device))
