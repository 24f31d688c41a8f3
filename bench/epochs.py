"""(c) An AT epoch and (d) a CAT epoch against their floors, measured in the same run.

The floor of one batch is what the method cannot avoid, in plain PyTorch on the same model and
batch: k bare input-gradient passes (forward + torch.autograd.grad w.r.t. the input; for CAT's
spatial loop w.r.t. a flow field sampled with grid_sample) per PGD loop, plus one bare training
step (forward, backward, SGD step). Ours is one epoch of `fit` with the `at` / `cat` defense's
hook over the same batches (no augmentation on either side). The floor runs the model and batches
in the memory layout ours runs them in (channels_last), so the ratio is our overhead alone.

    python bench/epochs.py [--quick]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from common import Row, interleaved, mnist_or_digits, print_rows, small_cnn

from backdoorlab.defenses import DEFENSES, DefenseContext, build_defense
from backdoorlab.train import TrainConfig, fit

BATCH = 128


def _grad_pass(model, x, y) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    return g


def _spatial_grad_pass(model, x, y, identity) -> torch.Tensor:
    flow = torch.zeros_like(identity).requires_grad_(True)
    xs = F.grid_sample(x, identity + flow, mode="bilinear", align_corners=True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(xs), y), flow)
    return g


def _train_step(model, opt, x, y) -> None:
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()


def bench(quick: bool = False, device: str = "cpu", steps: int = 10) -> tuple[list[Row], dict]:
    dev = torch.device(device)
    splits, _ = mnist_or_digits(2048 if quick else 8192, 100, dev)
    data = splits.train
    tc = TrainConfig(epochs=1, batch_size=BATCH, lr=0.05, crop_padding=0, flip=False)
    cl = torch.channels_last
    batches = [
        (
            data.floats(torch.arange(i, min(i + BATCH, len(data)), device=dev)).contiguous(
                memory_format=cl
            ),
            data.labels[i : i + BATCH],
        )
        for i in range(0, len(data), BATCH)
    ]
    h, w = data.spec.size
    eye = torch.eye(2, 3, device=dev).expand(BATCH, 2, 3)
    identity = F.affine_grid(eye, (BATCH, data.spec.channels, h, w), align_corners=True)
    rows, numbers = [], {}
    for name, section, loops in (
        ("at", {"name": "at", "threat": "linf", "eps": 0.1, "steps": steps}, 1),
        ("cat", {"name": "cat", "eps_s": 0.025, "eps_l": 0.1, "steps": steps}, 2),
    ):
        ours_model = small_cnn(data, dev)
        floor_model = small_cnn(data, dev).to(memory_format=cl)
        defense = build_defense(DEFENSES.validate(section))
        hooks = defense.training_hooks(
            DefenseContext(train=data, train_config=tc, device=dev, seed=0)
        )
        opt = torch.optim.SGD(floor_model.parameters(), lr=0.05, momentum=0.9)

        def ours(m=ours_model, hk=hooks) -> None:
            fit(m, data, tc, hk, progress=False)

        def floor(m=floor_model, o=opt, spatial=(loops == 2)) -> None:
            for x, y in batches:
                ident = identity[: len(y)]
                m.eval()  # crafting runs BatchNorm in eval mode, as ours does
                for _ in range(steps):
                    _grad_pass(m, x, y)
                    if spatial:
                        _spatial_grad_pass(m, x, y, ident)
                m.train()
                _train_step(m, o, x, y)

        t = interleaved({"ours": ours, "floor": floor}, dev, repeats=5 if quick else 7)
        ratio = t["ours"] / t["floor"]
        label = "AT (L_inf)" if name == "at" else "CAT (spatial + L_inf)"
        rows.append(
            Row(f"{label} epoch, PGD-{steps}", t["ours"], t["floor"], "s", ratio, "<= 1.15x floor")
        )
        numbers[f"{name}_epoch_over_floor"] = ratio
        numbers[f"{name}_epoch_s"] = t["ours"]
    # the parts of the floor, for the record: one pass of each kind on one batch
    x, y = batches[0]
    m = small_cnn(data, dev).to(memory_format=cl).eval()
    o = torch.optim.SGD(m.parameters(), lr=0.05)
    parts = interleaved(
        {
            "forward": lambda: m(x),
            "input_grad": lambda: _grad_pass(m, x, y),
            "spatial_grad": lambda: _spatial_grad_pass(m, x, y, identity),
            "train_step": lambda: _train_step(m, o, x, y),
        },
        dev,
        repeats=10,
    )
    numbers["pass_over_forward"] = {k: v / parts["forward"] for k, v in parts.items()}
    return rows, numbers


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    rows, numbers = bench(args.quick, args.device, args.steps)
    print_rows("(c, d) AT and CAT epochs vs their floors", rows)
    print(
        {
            k: {p: round(v, 2) for p, v in d.items()}
            for k, d in numbers.items()
            if isinstance(d, dict)
        }
    )
