import pytest
import torch

from backdoorlab.perturb import (
    AffineParams,
    FlowField,
    L2Ball,
    LinfBall,
    affine_flow,
    relaxed,
    warp,
)


def test_zero_flow_returns_the_input_exactly():
    for size in (8, 12, 28, 32):
        x = torch.rand(3, 2, size, size)
        assert torch.equal(warp(x, torch.zeros(3, size, size, 2)), x)


def test_flow_moves_content_by_the_right_number_of_pixels():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    flow = torch.zeros(1, 9, 9, 2)
    flow[..., 0] = 2 / (9 - 1)  # sample one pixel to the right: content moves left by one
    out = warp(x, flow)
    assert out[0, 0, 4, 3] == pytest.approx(1.0) and out[0, 0, 4, 4] == pytest.approx(0.0)
    half = warp(x, flow / 2)
    assert half[0, 0, 4, 3] == pytest.approx(0.5) and half[0, 0, 4, 4] == pytest.approx(0.5)


def test_flow_gradient_reaches_the_field():
    x = torch.rand(2, 3, 10, 10)
    flow = torch.zeros(2, 10, 10, 2, requires_grad=True)
    warp(x, flow).sum().backward()
    assert flow.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "threat", [LinfBall(0.1), L2Ball(0.5), FlowField(0.05), AffineParams(0.05)]
)
def test_projection_keeps_every_example_in_its_ball_and_in_range(threat):
    x = torch.rand(16, 3, 12, 12)
    delta = threat.init(x, random=True) * 0 + 10 * torch.randn(threat.init(x, True).shape)
    delta = threat.project(delta, x)
    if isinstance(threat, LinfBall):
        assert delta.abs().max() <= 0.1 + 1e-6
    elif isinstance(threat, L2Ball):
        assert delta.flatten(1).norm(dim=1).max() <= 0.5 + 1e-5
    else:
        assert delta.abs().max() <= 0.05 + 1e-7
    out = threat.apply(x, delta)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1


def test_random_perturbations_sit_on_the_budget_corners():
    x = torch.full((4, 1, 8, 8), 0.5)
    r = LinfBall(0.1).random(x)
    assert torch.allclose(r.abs(), torch.full_like(r, 0.1)) and len(r.unique()) == 2
    f = FlowField(0.05).random(x)
    assert f.shape == (4, 8, 8, 2) and torch.all(f.abs() == 0.05)
    n = L2Ball(0.5).random(x).flatten(1).norm(dim=1)
    assert torch.allclose(n, torch.full_like(n, 0.5), atol=1e-5)


def test_relaxation_endpoints():
    adv, rand = torch.randn(5), torch.randn(5)
    assert torch.equal(relaxed(adv, rand, 1.0), adv)
    assert torch.equal(relaxed(adv, rand, 0.0), rand)
    assert torch.allclose(relaxed(adv, rand, 0.8), 0.8 * adv + 0.2 * rand)


def test_an_affine_map_is_its_flow_field_warp():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    threat = AffineParams(0.5)
    assert torch.equal(threat.apply(x, torch.zeros(1, 2, 3)), x)  # identity: exactly x
    shift = torch.zeros(1, 2, 3)
    shift[0, 0, 2] = 2 / (9 - 1)  # translation by one pixel: content moves left by one
    out = threat.apply(x, shift)
    assert out[0, 0, 4, 3] == pytest.approx(1.0) and out[0, 0, 4, 4] == pytest.approx(0.0)
    zoom = torch.zeros(1, 2, 3)
    zoom[0, 0, 0] = zoom[0, 1, 1] = 0.25  # scale the sampling grid: a zoom out about the centre
    flow = affine_flow(zoom, 9, 9)
    assert torch.allclose(flow[0, 4, 4], torch.zeros(2)) and flow[0, 0, 8].tolist() == [0.25, -0.25]


def test_random_affine_parameters_sit_on_the_budget_corners_and_gradients_reach_them():
    x = torch.rand(4, 3, 8, 8)
    theta = AffineParams(0.05).random(x)
    assert theta.shape == (4, 2, 3) and torch.all(theta.abs() == 0.05)
    delta = torch.zeros(4, 2, 3, requires_grad=True)
    AffineParams(0.05).apply(x, delta).sum().backward()
    assert delta.grad.abs().sum() > 0
