"""Candidate S's pieces (issue 24, session 30): the ball-like lift, the simulated hypothesis, the refiner's start."""

from __future__ import annotations

import numpy as np
import torch

from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.phantoms import sphere
from lightning_modules.spio.simulation_refiner import (
    SimulationRefiner,
    ball_half_thickness_mm,
    lift_ball,
    refine_map,
    simulate_hypothesis,
)
from lightning_modules.spio.viewline import VOXEL_3D_MM, acquire, offresonance_tesla


def test_lift_of_a_sphere_cut_is_the_sphere():
    """A sphere centred on the plane, cut by it, lifted back: nearly the same ball (the pixelated cut loses about a
    pixel of radius, y is sampled at 1.25 mm), so nearly the same field in the plane."""
    ball = sphere((0.0, 0.0, 0.0), 3.0).float() * 2.0
    plane = ball[:, acq.VIEWLINE_NY // 2].numpy()
    lifted = lift_ball(plane)
    assert torch.equal(lifted[:, acq.VIEWLINE_NY // 2], torch.from_numpy(plane))
    half = ball_half_thickness_mm(plane)
    assert abs(half.max() - 3.0) < 0.6  # the centre: the radius, to 1.5 pixels (the cut is pixelated)
    assert half[plane == 0].max() == 0.0
    voxel = float(np.prod(VOXEL_3D_MM))
    true_volume, lifted_volume = float((ball > 0).sum()) * voxel, float((lifted > 0).sum()) * voxel
    assert abs(lifted_volume / true_volume - 1.0) < 0.2  # y is sampled at 1.25 mm
    field_true, field_lifted = offresonance_tesla(ball), offresonance_tesla(lifted)
    # within 15 %: the pixelated cut loses about a pixel of radius (the refiner learns what the lift gets wrong)
    assert float((field_lifted - field_true).abs().max() / field_true.abs().max()) < 0.15


def test_hypothesis_without_iron_is_the_nominal_line_pattern():
    """No iron: no field, and the simulated lines are the acquisition's lines on uniform tissue (excited ≈ 1)."""
    h = simulate_hypothesis(np.zeros(acq.VIEWLINE_MATRIX, np.float32))
    assert h.shape == (3, *acq.VIEWLINE_MATRIX)
    assert float(h[2].abs().max()) == 0.0
    flat = torch.zeros(acq.VIEWLINE_MATRIX)
    nominal = acquire(torch.ones(acq.VIEWLINE_MATRIX), flat, flat)
    scale = np.exp(acq.VIEWLINE_TE_S * acq.VIEWLINE_R2STAR_TISSUE_PER_S)
    assert torch.allclose(h[:2], nominal * scale, atol=1e-5)
    assert abs(float(h[:2].sum(0).max()) - 1.0) < 1e-4


def test_hypothesis_field_scales_with_the_map_and_shows_the_void():
    """The field channel is asinh of the excitation shift, linear in the level before the asinh; the iron darkens
    the simulated image where the map has iron (lines displaced from outside may still land there)."""
    ball = sphere((0.0, 0.0, 0.0), 3.0)[:, acq.VIEWLINE_NY // 2].float().numpy()
    low, high = simulate_hypothesis(0.5 * ball), simulate_hypothesis(1.0 * ball)
    shift_low, shift_high = torch.sinh(low[2]), torch.sinh(high[2])
    assert torch.allclose(shift_high, 2 * shift_low, rtol=1e-3, atol=1e-5)
    empty = simulate_hypothesis(np.zeros_like(ball))
    inside = torch.from_numpy(ball > 0)
    assert float(high[:2].sum(0)[inside].mean()) < 0.5 * float(empty[:2].sum(0)[inside].mean())


def test_refiner_starts_exactly_at_the_prior_and_learns():
    """At initialisation m₂ = m₁ (both outputs are zero), and both output channels get a gradient, so training
    moves it from the first step (unlike an additive correction on a frozen network's map alone)."""
    torch.manual_seed(0)
    refiner = SimulationRefiner(widths=(4, 8))
    image, hyp = torch.rand(2, 2, 128, 128), torch.rand(2, 3, 128, 128)
    prior = torch.relu(torch.randn(2, 1, 128, 128))
    out = refiner(image, hyp, prior)
    assert torch.equal(out, prior)
    truth = 1.5 * prior
    (out - truth).abs().sum().backward()
    grad = refiner.head.weight.grad
    assert grad is not None and float(grad[0].abs().sum()) > 0 and float(grad[1].abs().sum()) > 0


def test_refined_map_does_not_depend_on_the_direction_x_is_stored_in():
    """``refine_map``'s flip average: mirrored inputs give the mirrored map (a one-pass U-Net does not)."""
    torch.manual_seed(1)
    refiner = SimulationRefiner(widths=(4, 8)).eval()
    torch.nn.init.normal_(refiner.head.weight, std=0.5)  # a refiner that changes the map, asymmetrically
    plane = sphere((3.0, 0.0, -2.0), 3.0)[:, acq.VIEWLINE_NY // 2].float()
    image = torch.rand(1, 2, *acq.VIEWLINE_MATRIX)
    prior = (2.0 * plane)[None, None]
    refined = refine_map(refiner, image, prior)
    mirrored = refine_map(refiner, image.flip(-2), prior.flip(-2)).flip(-2)
    assert float((refined - prior).abs().max()) > 0.1
    torch.testing.assert_close(mirrored, refined, atol=1e-5, rtol=1e-5)
    one_pass = refine_map(refiner, image, prior, flip_average=False)
    one_pass_mirrored = refine_map(refiner, image.flip(-2), prior.flip(-2), flip_average=False).flip(-2)
    assert float((one_pass - one_pass_mirrored).abs().max()) > 1e-3
