"""The learned-inversion training simulator's options: enclosed brains, large shapes, log-uniform noise, and the
NRMSE loss of the training module."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_modules.metrics import nrmse
from lightning_modules.physics.dipole import forward_field
from lightning_modules.qsm.data import SimulatedQsmDataset
from lightning_modules.qsm.learned_ndi import LearnedNdi
from lightning_modules.qsm.module import LearnedInversionModule
from lightning_modules.qsm.simulate import random_training_case

SHAPE = (32, 32, 32)


def test_enclosed_cases_keep_every_source_away_from_the_box_faces():
    """Sources stay ≥ 10 % of the box from its faces; a local field is 0 outside its brain mask, and a
    whole-box case carries the complete field of the enclosed sources, non-zero up to the faces."""
    margin = 3  # semi-axes ≤ 40 % of the box leave ≥ 10 % (3.2 voxels) free on every side
    inner = np.zeros(SHAPE, bool)
    inner[margin:-margin, margin:-margin, margin:-margin] = True
    kinds = []
    for seed in range(12):
        case = random_training_case(SHAPE, np.random.default_rng(seed), enclosed=True, large_shapes=True)
        assert np.all(case.chi_ppm[~inner] == 0)
        if case.mask.all():
            kinds.append("whole box")
            assert np.abs(case.field_ppm[~inner]).max() > 1e-3
        else:
            kinds.append("local")
            assert case.mask.any() and not case.mask[~inner].any() and np.all(case.field_ppm[~case.mask] == 0)
    assert 2 <= kinds.count("whole box") <= 8, kinds


def test_large_shapes_cover_much_of_the_brain_with_sources():
    """Tissue is within ±0.03 ppm and the small sources cover little of the brain; the large shapes
    (half-sizes 8–35 % of the box, |χ| mostly > 0.04 ppm) cover a large part of it."""

    def covered(large: bool) -> float:
        shares = []
        for seed in range(8):
            case = random_training_case(SHAPE, np.random.default_rng(seed), enclosed=True, large_shapes=large)
            shares.append(np.mean(np.abs(case.chi_ppm[case.mask]) > 0.04))
        return float(np.median(shares))

    with_large, without = covered(True), covered(False)
    assert with_large > 0.3 and with_large > 3 * without, (with_large, without)


def test_phantom_cases_are_piecewise_constant_with_the_complete_field_of_the_whole_box():
    """A ``phantom_fraction`` of the cases are shape phantoms on a zero background: whole-box mask, a few distinct
    χ values, large low-contrast regions, and the field of the forward model (its mean removed in about half)."""
    from lightning_modules.qsm.simulate import shapes_chi

    phantoms, mean_removed = 0, 0
    for seed in range(16):
        case = random_training_case(SHAPE, np.random.default_rng(seed), enclosed=True, large_shapes=True,
                                    phantom_fraction=0.5)
        if not case.mask.all():
            continue
        values = np.unique(np.round(case.chi_ppm, 9))
        if len(values) > 40:  # a whole-box brain-like case (MNI texture), not a phantom
            continue
        phantoms += 1
        assert np.any(case.chi_ppm == 0) and -0.5 < case.chi_ppm.min() and case.chi_ppm.max() < 1.2
        exact = forward_field(torch.as_tensor(case.chi_ppm), case.voxel_size_mm, case.b0_direction).numpy()
        difference = case.field_ppm - exact
        assert difference.std() < 3.5e-3  # only noise (σ ≤ 0.003 ppm) and perhaps a constant
        mean_removed += abs(case.field_ppm.mean()) < 1e-9
    assert 4 <= phantoms <= 12 and 1 <= mean_removed < phantoms, (phantoms, mean_removed)
    chi = shapes_chi((40, 40, 40), (1.0, 1.0, 1.0), np.random.default_rng(0))
    small = (np.abs(chi) > 0) & (np.abs(chi) <= 0.05)
    assert small.mean() > 0.1  # large low-contrast regions cover much of the box


def test_source_cases_fill_the_box_with_many_overlapping_shapes_and_carry_the_forward_field():
    """``sources_fraction`` cases are dense DeepQSM-style phantoms: whole-box mask, many distinct values drawn
    around 0, shapes cut by the box faces, later shapes covering earlier ones, and the forward model's field."""
    from lightning_modules.qsm.simulate import sources_chi

    for seed in range(4):
        case = random_training_case(SHAPE, np.random.default_rng(seed), sources_fraction=1.0, max_noise_ppm=1e-3)
        chi = case.chi_ppm
        assert case.mask.all()
        assert 0.05 < (chi != 0).mean() < 0.7 and len(np.unique(chi)) >= 10
        assert (chi[0] != 0).any() or (chi[-1] != 0).any()  # sources run out of the box
        exact = forward_field(torch.as_tensor(chi), case.voxel_size_mm, case.b0_direction).numpy()
        assert (case.field_ppm - exact).std() < 1.2e-3  # noise and perhaps a constant, nothing else
    values = np.concatenate([np.unique(sources_chi(SHAPE, (1, 1, 1), np.random.default_rng(s))) for s in range(8)])
    assert abs(np.median(values)) < 0.02 and (values < 0).mean() > 0.3 and (values > 0).mean() > 0.3
    # covering, not summing: every value of the map is one shape's draw, so no value exceeds ~5 σ (0.6 ppm)
    assert np.abs(values).max() < 0.6
    with pytest.raises(ValueError, match="sum ≤ 1"):
        SimulatedQsmDataset(n_samples=1, phantom_fraction=0.6, sources_fraction=0.5)


def test_noise_is_log_uniform_within_the_requested_range():
    sigmas = []
    for seed in range(24):
        case = random_training_case((24, 24, 24), np.random.default_rng(seed), min_noise_ppm=1e-4,
                                    max_noise_ppm=3e-3, max_background_ppm=0.0, voxel_size_mm=(1, 1, 1))
        clean = forward_field(torch.as_tensor(case.chi_ppm, dtype=torch.float64), case.voxel_size_mm,
                              case.b0_direction).numpy()
        sigmas.append(float(np.std((case.field_ppm - clean)[case.mask])))
    sigmas = np.asarray(sigmas)
    assert sigmas.min() > 0.8e-4 and sigmas.max() < 3.3e-3
    # log-uniform on [1e-4, 3e-3]: a third of the draws below 3e-4 (a uniform draw would give a tenth)
    assert 0.15 < np.mean(sigmas < 3e-4) < 0.55, sigmas


def test_the_nrmse_loss_is_the_mean_case_nrmse_and_bad_names_are_refused():
    data = SimulatedQsmDataset(n_samples=2, patch_size=16, seed=4, enclosed=True)
    batch = {k: torch.stack([data[i][k] for i in range(2)]) for k in ("field", "chi", "mask", "kernel")}
    module = LearnedInversionModule(LearnedNdi(iterations=3, channels=0), loss="nrmse")
    loss, reported = module._errors(batch)
    with torch.no_grad():
        chi = module(batch["field"], batch["kernel"], batch["mask"]).numpy()
    expected = np.mean([nrmse(chi[i], batch["chi"][i].numpy(), batch["mask"][i].numpy() > 0) for i in range(2)])
    assert float(loss) == pytest.approx(expected, rel=1e-4) and float(reported) == pytest.approx(expected, rel=1e-4)
    with pytest.raises(ValueError, match="loss must be"):
        LearnedInversionModule(LearnedNdi(iterations=1, channels=0), loss="mse")


def test_command_line_flags_parse_and_bad_ones_are_refused(tmp_path):
    """fire hands ``--datamodule#enclosed false`` over as the string "false", which must not switch it on."""
    assert SimulatedQsmDataset(n_samples=1, enclosed="false", large_shapes="True").enclosed is False
    assert SimulatedQsmDataset(n_samples=1, enclosed="false", large_shapes="True").large_shapes is True
    with pytest.raises(ValueError, match="enclosed must be true or false"):
        SimulatedQsmDataset(n_samples=1, enclosed="maybe")


def test_the_module_starts_from_init_weights(tmp_path):
    source = LearnedNdi(iterations=3, channels=4, cnn_iterations=1, initial_step=2.5)
    torch.save(source.state_dict(), tmp_path / "start.pt")
    module = LearnedInversionModule(LearnedNdi(iterations=3, channels=4, cnn_iterations=1),
                                    init_weights=str(tmp_path / "start.pt"))
    for name, value in source.state_dict().items():
        torch.testing.assert_close(module.network.state_dict()[name], value)
