"""Layers of any classifier by module name, found and read with forward hooks: what Fine-Pruning
and NAD act on when the model is not a backdoorlab Classifier."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from backdoorlab.errors import ConfigError


def module_named(model: nn.Module, name: str) -> nn.Module:
    """The submodule `name` (a full dotted name, or a unique suffix of one, e.g. 'layer4')."""
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    hits = [k for k in modules if k.endswith("." + name)]
    if len(hits) == 1:
        return modules[hits[0]]
    known = ", ".join(k for k in modules if k and k.count(".") < 2)
    why = f"matches several modules ({', '.join(hits[:4])})" if hits else "is not a module"
    raise ConfigError(f"layer {name!r} {why}; modules: {known}")


@contextmanager
def capture(model: nn.Module, names: list[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, each forward of `model` stores the outputs of modules `names`."""
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    for name in names:
        module = module_named(model, name)

        def hook(_m, _inp, out, name=name):
            outputs[name] = out

        handles.append(module.register_forward_hook(hook))
    try:
        yield outputs
    finally:
        for h in handles:
            h.remove()


def _contains_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in module.modules())


@torch.no_grad()
def conv_blocks(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Names of the modules holding a convolution whose output is a feature map [B,C,H,W], in
    the order their forward passes finish (one forward of `example`)."""
    order: list[str] = []
    handles = []
    for name, module in model.named_modules():
        if name and _contains_conv(module):

            def hook(_m, _inp, out, name=name):
                if isinstance(out, torch.Tensor) and out.ndim == 4:
                    order.append(name)

            handles.append(module.register_forward_hook(hook))
    was = model.training
    model.eval()
    try:
        model(example)
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    seen: dict[str, None] = {}
    for name in order:  # a module called twice counts at its last call
        seen.pop(name, None)
        seen[name] = None
    return list(seen)


def default_layer(model: nn.Module, example: torch.Tensor) -> str:
    """The last convolutional block before global pooling: of the modules that hold a conv and
    output a feature map, the one whose forward finishes last (the outermost such block)."""
    blocks = conv_blocks(model, example)
    if not blocks:
        names = ", ".join(n for n, _ in model.named_modules() if n and n.count(".") < 2)
        raise ConfigError(
            f"no convolutional block with a feature-map output to act on; name one with "
            f"defense.layer (modules: {names})"
        )
    return blocks[-1]


def last_conv(module: nn.Module) -> nn.Conv2d:
    """The last Conv2d registered inside `module` (itself if it is one)."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ConfigError(f"{type(module).__name__} holds no Conv2d to prune")
    return convs[-1]
