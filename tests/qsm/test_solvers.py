"""TKD and NDI recover known phantoms; qsm-forward (independent PyPI peer) makes one of the fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightning_modules.metrics import nrmse
from lightning_modules.physics.dipole import dipole_kernel, forward_field
from lightning_modules.qsm.simulate import head_phantom, simulate_field
from lightning_modules.qsm.solvers import Ndi, Tkd


def _invert(solver, field, mask=None, voxel_size=(1.0, 1.0, 1.0), b0=(0, 0, 1)):
    f = torch.as_tensor(field, dtype=torch.float32)
    m = None if mask is None else torch.as_tensor(mask, dtype=torch.float32)
    return solver(f, dipole_kernel(f.shape, voxel_size, b0), m).numpy()


def test_qsm_forward_peer_phantom_is_recovered():
    qf = pytest.importorskip("qsm_forward", reason="qsm-forward is a test dependency (pip install -e .[test])")
    n = 64
    chi = qf.generate_susceptibility_phantom(resolution=[n, n, n], background=0, large_cylinder_val=0.01,
                                             small_cylinder_radii=[3, 3, 5], small_cylinder_vals=[0.1, 0.2, 0.4])
    field = qf.generate_field(chi)  # qsm-forward's own kernel and padding
    # qsm-forward's forward model and ours agree exactly on an isotropic grid with B0 along z, up to the
    # field's mean (qsm-forward sets D(0) = 1/3, we set D(0) = 0)
    ours = forward_field(torch.as_tensor(chi), pad_factor=2.0).numpy()
    np.testing.assert_allclose(ours - ours.mean(), field - field.mean(), atol=1e-9)
    region = chi != 0
    chi_tkd = _invert(Tkd(), field)
    chi_ndi = _invert(Ndi(iterations=200, regularization=0.0), field)
    assert nrmse(chi_tkd, chi, region) < 0.35
    assert nrmse(chi_ndi, chi, region) < nrmse(chi_tkd, chi, region)
    # the small cylinders' means come back within 20 % (partial volume at radius 3 voxels)
    for value in (0.1, 0.2, 0.4):
        assert abs(chi_ndi[chi == value].mean() - value) < 0.2 * value


def test_ndi_on_noise_free_head_phantom_beats_zero_and_converges():
    chi, brain = head_phantom((48, 48, 40), (2.0, 2.0, 2.0), seed=1)
    case = simulate_field(chi, brain, (2.0, 2.0, 2.0))
    errors = [nrmse(_invert(Ndi(iterations=it, regularization=0.0), case.field_ppm, brain, (2, 2, 2)), chi, brain)
              for it in (5, 20, 80)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.6


def test_tkd_is_exact_where_the_kernel_is_above_threshold():
    rng = np.random.default_rng(0)
    chi = rng.normal(size=(16, 16, 16))
    kernel = dipole_kernel(chi.shape)
    spectrum = np.fft.rfftn(chi)
    keep = np.abs(kernel.numpy()) > 0.19
    band_limited = np.fft.irfftn(np.where(keep, spectrum, 0), s=chi.shape)
    field = forward_field(torch.as_tensor(band_limited), pad_factor=1.0).numpy()
    np.testing.assert_allclose(_invert(Tkd(), field), band_limited, atol=1e-4)


def test_ndi_weighting_and_magnitude_options():
    chi, brain = head_phantom((32, 32, 32), (2.0, 2.0, 2.0), seed=2)
    case = simulate_field(chi, brain, (2.0, 2.0, 2.0))
    f = torch.as_tensor(case.field_ppm, dtype=torch.float32)
    m = torch.as_tensor(brain, dtype=torch.float32)
    k = dipole_kernel(f.shape, (2, 2, 2))
    uniform = Ndi(iterations=10)(f, k, m)
    masked = Ndi(iterations=10, weighting="mask")(f, k, m)
    weighted = Ndi(iterations=10, weighting="mask")(f, k, m, magnitude=2 * m)
    assert not torch.allclose(uniform, masked)
    torch.testing.assert_close(weighted, masked)  # a constant magnitude changes nothing
    assert torch.all(masked[m == 0] == 0)
    with pytest.raises(ValueError):
        Ndi(weighting="magnitude")
    with pytest.raises(ValueError):
        Tkd(threshold=0.0)


def test_ndi_discrepancy_stop_runs_fewer_iterations_on_noisier_fields_and_equals_that_many_plain_steps():
    chi, brain = head_phantom((48, 48, 40), (1.5, 1.5, 1.5), seed=2)
    kernel = dipole_kernel(chi.shape, (1.5, 1.5, 1.5))
    mask = torch.as_tensor(brain, dtype=torch.float32)
    runs = []
    for noise in (5e-4, 8e-3):
        field = torch.as_tensor(simulate_field(chi, brain, (1.5, 1.5, 1.5), noise_std_ppm=noise, seed=1).field_ppm,
                                dtype=torch.float32)
        ndi = Ndi(iterations=100, stop_ratio=0.7)
        stopped = ndi(field, kernel, mask)
        assert 0 < ndi.iterations_run < 100
        torch.testing.assert_close(stopped, Ndi(iterations=ndi.iterations_run)(field, kernel, mask))
        runs.append(ndi.iterations_run)
    assert runs[1] < runs[0]
