"""Models trained elsewhere: weights from safetensors or weights-only PyTorch files, architectures
by registry name or a user factory (`package.module:function` or `path/file.py:function`), and
key maps for the state-dict layouts users bring most."""

from __future__ import annotations

import importlib
import importlib.util
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backdoorlab.data.base import InputSpec
from backdoorlab.errors import ConfigError, DataError
from backdoorlab.limits import MAX_FILE_BYTES, check_size
from backdoorlab.models.base import MODELS, Classifier, Normalize, build_model

# checkpoints often wrap the weights: {"state_dict": ...}, {"model": ...}, ...
_WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "weights")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors file or a PyTorch file read with weights_only=True: a
    file holding anything but tensors and plain containers is refused, never executed."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        check_size(path.stat().st_size, MAX_FILE_BYTES, f"`weights` {path}")
    except OSError as exc:
        raise ConfigError(f"`weights` {path}: cannot read: {exc.strerror or exc}") from None
    if path.suffix == ".safetensors":
        try:
            state: Any = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise DataError(f"`weights` {path}: not a readable safetensors file: {exc}") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe content"
            raise DataError(
                f"`weights` {path}: refused, the file holds more than weights ({first}); "
                "save a state dict (torch.save(model.state_dict(), ...)) or safetensors"
            ) from None
        except Exception as exc:  # a malformed file fails in many ways (struct, zip, EOF...)
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise DataError(f"`weights` {path}: not a readable PyTorch file: {why}") from None
    for key in _WRAPPERS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise DataError(f"`weights` {path}: holds no state dict (a mapping of names to tensors)")
    if state and all(k.startswith("module.") for k in state):  # saved from DataParallel / DDP
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def _backdoorbench_preact(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """BackdoorBench's PreActResNet18 -> ours: conv1 -> stem, layerN -> groups.N-1,
    shortcut.0 -> shortcut, linear -> fc."""
    out = {}
    for k, v in state.items():
        k = re.sub(r"^conv1\.", "stem.", k)
        k = re.sub(r"^layer(\d)\.", lambda m: f"groups.{int(m.group(1)) - 1}.", k)
        k = re.sub(r"\.shortcut\.0\.", ".shortcut.", k)
        k = re.sub(r"^linear\.", "fc.", k)
        out[k] = v
    return out


def _torchvision_resnet(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's resnet18 -> ours with `stem: imagenet`: conv1/bn1 -> stem.0/stem.1,
    layerN -> groups.N-1, downsample -> shortcut, fc -> fc."""
    out = {}
    for k, v in state.items():
        k = re.sub(r"^conv1\.", "stem.0.", k)
        k = re.sub(r"^bn1\.", "stem.1.", k)
        k = re.sub(r"^layer(\d)\.", lambda m: f"groups.{int(m.group(1)) - 1}.", k)
        k = re.sub(r"\.downsample\.", ".shortcut.", k)
        out[k] = v
    return out


# a plain map in one place: layout name -> renaming into our architectures' keys
KEY_MAPS: dict[str, Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]] = {
    "backdoorbench-preactresnet18": _backdoorbench_preact,  # into preact_resnet18
    "torchvision-resnet18": _torchvision_resnet,  # into resnet18 with model stem=imagenet
}


class Normalized(nn.Module):
    """A user's model that expects normalised inputs, behind (x - mean) / std on [0,1] images."""

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def resolve_factory(text: str) -> Callable[..., nn.Module]:
    """The function `package.module:function` or `path/to/file.py:function` names."""
    module_name, _, func = text.partition(":")
    if not module_name or not func:
        raise ConfigError(f"`arch` {text!r}: give a registered model or MODULE:FUNCTION")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).resolve()
            if not path.is_file():
                raise ConfigError(f"`arch` {text!r}: {path} does not exist")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"`arch` {text!r}: cannot import {module_name} ({exc}); install it or put it on "
            "PYTHONPATH"
        ) from None
    factory = getattr(module, func, None)
    if not callable(factory):
        raise ConfigError(f"`arch` {text!r}: {module_name} has no function {func}")
    return factory


def build_arch(arch: str, spec: InputSpec, options: dict[str, Any] | None = None) -> nn.Module:
    """An untrained model: our registered `arch` for `spec` (normalisation inside, from
    spec.mean/std), or the module a user factory returns for `options`."""
    options = dict(options or {})
    if ":" not in arch:
        return build_model(MODELS.validate({"name": arch, **options}), spec)
    try:
        model = resolve_factory(arch)(**options)
    except TypeError as exc:
        raise ConfigError(f"`arch` {arch}: the factory refused the options: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"`arch` {arch}: the factory returned {type(model).__name__}")
    return model


def _fit_report(model: nn.Module, state: dict[str, torch.Tensor]) -> str | None:
    """None when `state` fits `model`; else the first missing / unexpected keys and shapes."""
    own = model.state_dict()
    optional = {k for k in own if k.startswith("normalize.")}  # filled from mean/std
    missing = [k for k in own if k not in state and k not in optional]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {list(state[k].shape)} vs {list(own[k].shape)}"
        for k in state
        if k in own and state[k].shape != own[k].shape
    ]
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing[:3])}" + (" ..." if len(missing) > 3 else ""))
    if unexpected:
        more = " ..." if len(unexpected) > 3 else ""
        parts.append(f"unexpected {', '.join(unexpected[:3])}{more}")
    if shapes:
        parts.append(f"shape of {', '.join(shapes[:2])}" + (" ..." if len(shapes) > 2 else ""))
    return "; ".join(parts) or None


def load_foreign(
    weights: str | Path | dict[str, torch.Tensor],
    arch: str,
    spec: InputSpec,
    *,
    options: dict[str, Any] | None = None,
    key_map: str | None = None,
    normalize: bool = False,
) -> nn.Module:
    """A model trained elsewhere, in eval mode, taking [0,1] images.

    `weights` is a file (safetensors, or a weights-only PyTorch file) or a state dict; `key_map`
    renames a foreign layout (KEY_MAPS) into ours. Our registered architectures carry
    normalisation (spec.mean/std) inside; a factory's model is put behind it when `normalize`.
    """
    state = weights if isinstance(weights, dict) else read_state_dict(weights)
    if key_map is not None:
        if key_map not in KEY_MAPS:
            raise ConfigError(f"`key_map` {key_map!r}: unknown (known: {', '.join(KEY_MAPS)})")
        state = KEY_MAPS[key_map](state)
    model = build_arch(arch, spec, options)
    problem = _fit_report(model, state)
    if problem is not None:
        raise ConfigError(f"`weights`: they do not fit `arch` {arch}: {problem}")
    model.load_state_dict(state, strict=not isinstance(model, Classifier))
    if normalize and not isinstance(model, Classifier):
        model = Normalized(model, spec.mean, spec.std)
    return model.eval()
