"""Threat models: how a perturbation is initialised, stepped, projected and applied."""

from __future__ import annotations

import torch

from backdoorlab.perturb.flow import affine_flow, warp


def random_signs(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    """-1 or +1 per coordinate, uniformly, with `like`'s device and dtype."""
    return torch.randint(0, 2, shape, device=like.device).to(like.dtype) * 2 - 1


class Threat:
    """A perturbation set around clean [0,1] images x; `delta` has the shape of x."""

    def __init__(self, eps: float) -> None:
        self.eps = eps

    def shape(self, x: torch.Tensor) -> tuple[int, ...]:
        """The shape of a perturbation of x."""
        return tuple(x.shape)

    def init(self, x: torch.Tensor, random: bool) -> torch.Tensor:
        """A starting delta: zeros, or a random point of the budget."""
        if random:
            return self.start(x)
        return torch.zeros(self.shape(x), device=x.device, dtype=x.dtype)

    def start(self, x: torch.Tensor) -> torch.Tensor:
        """A random point of the budget."""
        raise NotImplementedError

    def step(self, delta: torch.Tensor, grad: torch.Tensor, alpha: float) -> torch.Tensor:
        """One ascent step of size `alpha` along the steepest direction for this norm."""
        raise NotImplementedError

    def project(self, delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """delta projected onto the budget and so that x + delta stays in [0,1]."""
        raise NotImplementedError

    def apply(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """The perturbed images."""
        return (x + delta).clamp(0, 1)

    def corners(self, x: torch.Tensor) -> torch.Tensor:
        """A random corner of the budget (every coordinate -eps or +eps), not yet clipped to
        keep x + delta in [0,1]."""
        return self.eps * random_signs(self.shape(x), x)

    def random(self, x: torch.Tensor) -> torch.Tensor:
        """A random perturbation at the budget's corners, projected."""
        return self.project(self.corners(x), x)


class LinfBall(Threat):
    """||delta||_inf <= eps (Madry et al.)."""

    def start(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.empty_like(x).uniform_(-self.eps, self.eps), x)

    def step(self, delta: torch.Tensor, grad: torch.Tensor, alpha: float) -> torch.Tensor:
        return delta + alpha * grad.sign()

    def project(self, delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        delta = delta.clamp(-self.eps, self.eps)
        return (x + delta).clamp(0, 1) - x


def _norms(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.ndim - 1)))


class L2Ball(Threat):
    """||delta||_2 <= eps per image; steps along the normalised gradient."""

    def start(self, x: torch.Tensor) -> torch.Tensor:
        direction = torch.randn_like(x)
        radius = torch.rand(x.shape[0], device=x.device).view(-1, *([1] * (x.ndim - 1)))
        return self.project(direction / _norms(direction) * radius * self.eps, x)

    def step(self, delta: torch.Tensor, grad: torch.Tensor, alpha: float) -> torch.Tensor:
        return delta + alpha * grad / _norms(grad)

    def project(self, delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        delta = delta * (self.eps / _norms(delta)).clamp(max=1.0)
        return (x + delta).clamp(0, 1) - x

    def corners(self, x: torch.Tensor) -> torch.Tensor:
        """A random sign pattern scaled onto the sphere of radius eps (not yet clipped)."""
        signs = random_signs(x.shape, x)
        return signs / _norms(signs) * self.eps


class FlowField(Threat):
    """Spatial: a per-pixel flow w [B,H,W,2] with ||w||_inf <= eps added to the identity grid
    (Xiao et al.; Gao et al. Sec. II-C solve it first-order with sign steps on w)."""

    def shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return (x.shape[0], x.shape[2], x.shape[3], 2)

    def start(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.empty(self.shape(x), device=x.device, dtype=x.dtype)
        return w.uniform_(-self.eps, self.eps)

    def step(self, delta: torch.Tensor, grad: torch.Tensor, alpha: float) -> torch.Tensor:
        return delta + alpha * grad.sign()

    def project(self, delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return delta.clamp(-self.eps, self.eps)

    def apply(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return warp(x, delta)


class AffineParams(FlowField):
    """Spatial, as Gao et al. draw their random spatial perturbation (Sec. III-D-1): the six
    parameters of an affine map, each within eps of the identity's, ||theta||_inf <= eps; drawn,
    stepped and projected as a flow field's coordinates are."""

    def shape(self, x: torch.Tensor) -> tuple[int, ...]:
        return (x.shape[0], 2, 3)

    def apply(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return warp(x, affine_flow(delta, x.shape[2], x.shape[3]))


THREATS: dict[str, type[Threat]] = {
    "linf": LinfBall,
    "l2": L2Ball,
    "spatial": FlowField,
    "affine": AffineParams,
}
