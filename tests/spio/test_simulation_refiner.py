"""Candidate S's pieces (issue 24, sessions 30–31): the lifts, the simulated hypothesis, the refiner's start."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.app import bundle_refiner
from lightning_modules.spio.line_features import DISPLACEMENT_MM_PER_TESLA, LINE_PERIOD_MM, LineFeatures
from lightning_modules.spio.phantoms import cylinder, sphere
from lightning_modules.spio.simulation_refiner import (
    LIFTS,
    SimulationRefiner,
    ball_half_thickness_mm,
    lift_map,
    load_refiner,
    object_labels,
    object_mean,
    phase_residual,
    refine_map,
    simulate_hypothesis,
)
from lightning_modules.spio.viewline import VOXEL_3D_MM, acquire, offresonance_tesla


def test_lift_of_a_sphere_cut_is_the_sphere():
    """A sphere centred on the plane, cut by it, lifted back: nearly the same ball (the pixelated cut loses about a
    pixel of radius, y is sampled at 1.25 mm), so nearly the same field in the plane."""
    ball = sphere((0.0, 0.0, 0.0), 3.0).float() * 2.0
    plane = ball[:, acq.VIEWLINE_NY // 2].numpy()
    lifted = lift_map(plane)
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


def test_rod_and_plane_lifts_are_the_shapes_they_name():
    """``rod``: a disc becomes a cylinder along y over the whole simulated range, as the phantom's cylinder;
    ``plane``: only the imaged slice. At the disc's centre the three extents give the textbook fields (B0 in the
    plane, Lorentz-corrected): a sphere ≈ 0, a long cylinder across B0 −χB0/6, a thin plate along B0 up to +χB0/3
    — so their simulations differ most where the measured image has to tell them apart."""
    rod = cylinder((0.0, 0.0, 0.0), 3.0, np.array([0.0, 1.0, 0.0])).float() * 2.0
    disc = rod[:, acq.VIEWLINE_NY // 2].numpy()
    assert torch.equal(lift_map(disc, "rod"), rod)
    flat = lift_map(disc, "plane")
    assert torch.equal(flat[:, acq.VIEWLINE_NY // 2], torch.from_numpy(disc))
    assert float(flat.sum()) == float(disc.sum())
    centre = tuple(np.argwhere(disc > 0).mean(0).round().astype(int))
    chi_b0 = 2.0 * acq.SPIO_CHI_SI_PER_UG_FE_PER_MM3 * acq.VIEWLINE_B0_TESLA
    plane, ball, long_rod = (float(offresonance_tesla(lift_map(disc, lift))[centre]) / chi_b0
                             for lift in ("plane", "ball", "rod"))
    assert abs(ball) < 0.06  # a pixelated sphere: 0 up to its staircase
    assert abs(long_rod + 1 / 6) < 0.02  # 30 mm long, 6 mm wide: close to the infinite cylinder
    assert 0.15 < plane < 1 / 3  # a 1.25 mm plate 6 mm wide: below the infinitely thin plate's 1/3
    with pytest.raises(ValueError, match="unknown lift"):
        lift_map(disc, "cube")


def test_hypothesis_channels_follow_the_refiner_lifts():
    """Three channels per lift, in the order given; each block equals that lift simulated alone; the refiner
    built for three lifts reads nine hypothesis channels and still starts exactly at m₁."""
    disc = sphere((0.0, 0.0, 0.0), 3.0)[:, acq.VIEWLINE_NY // 2].float().numpy()
    h = simulate_hypothesis(disc, LIFTS)
    assert h.shape == (3 * len(LIFTS), *acq.VIEWLINE_MATRIX)
    for k, lift in enumerate(LIFTS):
        assert torch.equal(h[3 * k:3 * k + 3], simulate_hypothesis(disc, (lift,)))
    assert torch.equal(h[:3], simulate_hypothesis(disc))  # the default is the ball lift (0.9.0)
    refiner = SimulationRefiner(widths=(4, 8), lifts=LIFTS)
    prior = torch.from_numpy(disc)[None, None]
    refined = refine_map(refiner, torch.rand(1, 2, *acq.VIEWLINE_MATRIX), prior)
    assert torch.equal(refined, prior)


def test_bundle_refiner_reads_the_lifts_the_weights_were_trained_for(tmp_path, capsys):
    """``load_refiner`` takes the lifts from the weights (the U-Net's first convolution: three channels per lift);
    the bundle's ``bundle_refiner`` names them, and a mismatch — like a non-boolean ``--refine`` — is one line on
    stderr and exit status 2, not a state-dict traceback."""
    path = tmp_path / "three.pt"
    torch.save(SimulationRefiner(lifts=LIFTS).state_dict(), path)
    assert load_refiner(str(path)).lifts == LIFTS
    assert bundle_refiner(str(path), lifts=list(LIFTS)).lifts == LIFTS
    assert bundle_refiner(str(path), refine="false") is None
    for kwargs, message in (({"lifts": ["ball"]}, "holds a refiner for ball, plane, rod, not for ball"),
                            ({"refine": "maybe"}, "--refine must be true or false, not 'maybe'")):
        with pytest.raises(SystemExit) as exit_info:
            bundle_refiner(str(path), **kwargs)
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


def test_refiner_weights_name_their_lifts(tmp_path):
    """Session 38: one lift's or two lifts' channels do not say which lifts they are (session 37's ``rod`` refiner
    was read back as ``ball``), so weights for any lifts but ``ball`` alone record them; weights from before that
    (no record) are read as the caller names them, and two unnamed lifts are refused. The shipped ``ball`` weights
    keep their exact keys."""
    assert "lift_codes" not in SimulationRefiner().state_dict()
    rod, two = tmp_path / "rod.pt", tmp_path / "two.pt"
    torch.save(SimulationRefiner(lifts=("rod",)).state_dict(), rod)
    assert load_refiner(str(rod)).lifts == ("rod",)
    with pytest.raises(ValueError, match="holds a refiner for rod, not for ball"):
        load_refiner(str(rod), lifts=("ball",))
    old = {k: v for k, v in SimulationRefiner(lifts=("ball", "rod")).state_dict().items() if k != "lift_codes"}
    torch.save(old, two)
    with pytest.raises(ValueError, match="2 lifts but does not say which"):
        load_refiner(str(two))
    refiner = load_refiner(str(two), lifts=("ball", "rod"))
    assert refiner.lifts == ("ball", "rod") and refiner.lift_codes.tolist() == [LIFTS.index("ball"), LIFTS.index("rod")]


def test_phase_residual_reads_the_line_displacement_the_hypothesis_misses():
    """Session 32: lines shifted by a uniform off-resonance against a hypothesis without it. The 4 mm pattern's phase
    difference is −ω·u (u the lines' displacement, ω = 2π / 4 mm) away from the edges, the 2 mm pattern's −2ω·u; the
    same image against itself gives no phase difference and no amplitude mismatch."""
    features = LineFeatures()
    delta_b = 2.0e-5  # T: u = −0.375 mm, inside the 4 mm pattern's wrap (±2 mm) and the 2 mm pattern's (±1 mm)
    u = DISPLACEMENT_MM_PER_TESLA * delta_b
    plain = acquire(torch.ones(128, 128), torch.zeros(128, 128), torch.zeros(128, 128))[None]
    shifted = acquire(torch.ones(128, 128), torch.zeros(128, 128), torch.full((128, 128), delta_b))[None]
    residual = phase_residual(features(shifted), features(plain))[0]
    inner = (slice(10, -10), slice(20, -20))
    omega = 2 * np.pi / LINE_PERIOD_MM
    for (cos_c, sin_c), expected in (((0, 1), -omega * u), ((3, 4), -2 * omega * u)):
        angle = torch.atan2(residual[sin_c][inner], residual[cos_c][inner])
        assert abs(float(angle.median()) - expected) < 0.1  # radians; the pattern is sampled at 0.39 mm
    itself = phase_residual(features(plain), features(plain))[0]
    assert float(itself[[1, 4]].abs().max()) < 1e-4 and float(itself[[2, 5]].abs().max()) < 1e-6


def test_refiner_reading_the_residual_loads_as_such(tmp_path):
    """A one-lift refiner with the six residual channels has as many input channels as a three-lift refiner without
    them (21); ``load_refiner`` tells them apart by the weights' marker and builds the right one."""
    residual = SimulationRefiner(widths=(4, 8), residual=True)
    three_lifts = SimulationRefiner(widths=(4, 8), lifts=LIFTS)
    assert residual.down[0][0].weight.shape[1] == three_lifts.down[0][0].weight.shape[1]
    torch.save(residual.state_dict(), tmp_path / "p.pt")
    loaded = load_refiner(str(tmp_path / "p.pt"))
    assert loaded.residual and loaded.lifts == ("ball",)
    inputs = torch.rand(1, 2, 128, 128), simulate_hypothesis(np.zeros((128, 128)))[None], torch.rand(1, 1, 128, 128)
    torch.testing.assert_close(loaded(*inputs), inputs[2])  # starts exactly at m₁, like every refiner
    torch.save(SimulationRefiner(widths=(4, 8), lifts=LIFTS).state_dict(), tmp_path / "m.pt")
    assert not load_refiner(str(tmp_path / "m.pt")).residual and load_refiner(str(tmp_path / "m.pt")).lifts == LIFTS


def test_refiner_shift_average_is_exact_for_a_shift_equivariant_answer():
    """``refine_map(..., shifts_px=…)`` (session 32) averages the refiner over inputs shifted along x and shifted back:
    a refiner at its start (m₂ = m₁, exactly shift-equivariant) gives m₁ back at every pixel, edges included; a
    trained-like refiner gives a flip-equivariant map, like the two-pass average."""
    refiner = SimulationRefiner(widths=(4, 8)).eval()
    image = torch.rand(1, 2, 128, 128, generator=torch.Generator().manual_seed(0))
    prior = torch.zeros(1, 1, 128, 128)
    prior[0, 0, 40:60, 50:70] = 2.0
    torch.testing.assert_close(refine_map(refiner, image, prior, shifts_px=(-1, 0, 1)), prior)
    torch.nn.init.normal_(refiner.head.weight, std=0.1)
    shifted = refine_map(refiner, image, prior, shifts_px=(-1, 0, 1))
    mirrored = refine_map(refiner, image.flip(-2), prior.flip(-2), shifts_px=(-1, 0, 1)).flip(-2)
    torch.testing.assert_close(shifted, mirrored, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(shifted, refine_map(refiner, image, prior), atol=1e-4)  # the shifts do change it


def test_object_mean_is_each_objects_own_mean_with_its_gradient():
    """Session 42's pooling: every pixel of an object gets the mean of the features over that object (objects are
    the 4-connected components of the map ≥ the floor, numbered across the batch), 0 outside; the gradient of a
    pooled value reaches every pixel of its object by 1 / size and nothing else."""
    prior = torch.zeros(2, 1, 16, 16)
    prior[0, 0, 1:4, 1:4] = 2.0  # object A: 9 pixels
    prior[0, 0, 4, 4] = 2.0  # touches A only diagonally: its own object
    prior[0, 0, 8:10, 8:12] = 0.1  # below the 0.15 floor: not an object
    prior[1, 0, 5:7, 5:7] = 0.5  # the second map's object, labelled after the first map's
    assert object_labels(prior).unique().tolist() == [0, 1, 2, 3]
    features = torch.randn(2, 3, 16, 16, requires_grad=True)
    pooled = object_mean(features, prior)
    torch.testing.assert_close(pooled[0, :, 2, 2], features[0, :, 1:4, 1:4].mean((1, 2)))
    torch.testing.assert_close(pooled[0, :, 4, 4], features[0, :, 4, 4])
    torch.testing.assert_close(pooled[1, :, 6, 6], features[1, :, 5:7, 5:7].mean((1, 2)))
    assert float(pooled[0, :, 9, 9].abs().sum()) == 0.0 and float(pooled[1, :, 0, 0].abs().sum()) == 0.0
    pooled[0, 0, 1, 1].backward()
    grad = features.grad[0, 0]
    torch.testing.assert_close(grad[1:4, 1:4], torch.full((3, 3), 1 / 9))
    assert float(grad.sum()) == pytest.approx(1.0) and float(features.grad[1].abs().sum()) == 0.0


def test_object_pooling_refiner_starts_at_the_prior_and_loads_as_such(tmp_path):
    """The pooling head reads twice the U-Net's features, starts exactly at m₁, and ``load_refiner`` rebuilds it
    from the weights' marker (a refiner without it loads without it)."""
    pooling = SimulationRefiner(widths=(4, 8), object_pool=True)
    assert pooling.head.weight.shape[1] == 2 * SimulationRefiner(widths=(4, 8)).head.weight.shape[1]
    torch.save(pooling.state_dict(), tmp_path / "op.pt")
    loaded = load_refiner(str(tmp_path / "op.pt"))
    assert loaded.object_pool and not load_refiner(str(tmp_path / "op.pt")).residual
    prior = torch.zeros(1, 1, 128, 128)
    prior[0, 0, 40:50, 60:70] = 3.0
    inputs = torch.rand(1, 2, 128, 128), simulate_hypothesis(prior[0, 0].numpy())[None], prior
    torch.testing.assert_close(loaded(*inputs), prior)
    torch.save(SimulationRefiner(widths=(4, 8)).state_dict(), tmp_path / "plain.pt")
    assert not load_refiner(str(tmp_path / "plain.pt")).object_pool
