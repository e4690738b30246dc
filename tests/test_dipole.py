"""Dipole kernel and forward model against the analytic field of a uniformly magnetised sphere.

Lorentz-corrected convention: inside a sphere of susceptibility χ the field is 0; outside it is
``χ a³ (3 cos²θ − 1) / (3 r³)`` with θ the angle between r and B0 (Schenck, Med Phys 1996).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from scipy import special

from lightning_modules.physics.dipole import b0_direction_from_affine, dipole_kernel, forward_field, forward_field_slice

CHI_PPM = 1.0


def _rotation(axis: str, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _sphere_case(shape, voxel_size_mm, radius_mm, edge_mm=1.0):
    """Sphere at the grid centre with a smooth (erfc, ``edge_mm`` wide) edge, so that the sampled object
    stays spherically symmetric: by the shell theorem its exterior field is that of a uniform sphere of
    the same total moment, and its uniform core sees no field. Returns χ, voxel positions (mm, relative
    to the centre), their radius and the radius of the uniform sphere with the same moment."""
    axes = [(np.arange(n) - n // 2) * d for n, d in zip(shape, voxel_size_mm)]
    pos = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    r = np.linalg.norm(pos, axis=-1)
    chi = CHI_PPM * 0.5 * special.erfc((r - radius_mm) / edge_mm)
    volume = chi.sum() / CHI_PPM * np.prod(voxel_size_mm)
    return chi, pos, r, (3 * volume / (4 * np.pi)) ** (1 / 3)


def _analytic_exterior(pos, r, radius_mm, b0):
    cos_theta = (pos @ b0) / np.maximum(r, 1e-9)
    return CHI_PPM * radius_mm**3 * (3 * cos_theta**2 - 1) / (3 * np.maximum(r, 1e-9) ** 3)


@pytest.mark.parametrize(
    ("voxel_size_mm", "b0"),
    [
        ((1.0, 1.0, 1.0), (0.0, 0.0, 1.0)),
        ((1.0, 1.0, 1.0), tuple(_rotation("x", 30) @ [0, 0, 1])),
        ((0.8, 1.0, 1.6), (0.0, 0.0, 1.0)),
        ((0.8, 1.0, 1.6), tuple(_rotation("y", 40) @ _rotation("x", 20) @ [0, 0, 1])),
    ],
)
def test_sphere_field_matches_analytic(voxel_size_mm, b0):
    fov_mm = 64.0
    shape = tuple(int(round(fov_mm / d)) for d in voxel_size_mm)
    chi, pos, r, radius_eff = _sphere_case(shape, voxel_size_mm, radius_mm=6.0, edge_mm=1.25 * max(voxel_size_mm))
    field = forward_field(torch.tensor(chi), voxel_size_mm, b0, pad_factor=2.0).numpy()
    b = np.asarray(b0) / np.linalg.norm(b0)

    exterior = (r >= 2.0 * radius_eff) & (r <= 3.5 * radius_eff)
    expected = _analytic_exterior(pos, r, radius_eff, b)
    peak = CHI_PPM * 2 / 3 * (radius_eff / (2 * radius_eff)) ** 3  # field scale at the inner shell
    assert_allclose(field[exterior], expected[exterior], atol=0.01 * peak)
    # sign pattern: positive along B0, negative perpendicular to it
    along = np.abs((pos @ b) / np.maximum(r, 1e-9)) > 0.95
    assert np.all(field[exterior & along] > 0)

    core = r <= 0.5 * radius_eff
    assert np.abs(field[core]).max() < 0.01 * CHI_PPM


def test_kernel_half_spectrum_matches_full_and_has_zero_dc():
    full = dipole_kernel((10, 12, 9), (1.0, 0.7, 2.0), (0.3, 0.2, 1.0), half=False)
    half = dipole_kernel((10, 12, 9), (1.0, 0.7, 2.0), (0.3, 0.2, 1.0))
    assert half.shape == (10, 12, 5)
    assert_allclose(half.numpy(), full[..., :5].numpy(), atol=1e-7)
    assert full[0, 0, 0] == 0
    assert float(full.max()) <= 1 / 3 + 1e-6 and float(full.min()) >= -2 / 3 - 1e-6


def test_kernel_uses_true_voxel_size():
    # along axis 2 with B0 along axis 2: D = 1/3 - 1 = -2/3 whatever the frequency; a mixed frequency
    # depends on the ratio of the voxel sizes: k = (1/(n0 d0), 0, 1/(n2 d2))
    kernel = dipole_kernel((8, 8, 8), (1.0, 1.0, 2.0), (0, 0, 1), half=False).numpy()
    k0, k2 = 1 / 8.0, 1 / 16.0
    assert_allclose(kernel[1, 0, 1], 1 / 3 - k2**2 / (k0**2 + k2**2), rtol=1e-6)
    assert_allclose(kernel[0, 0, 1], -2 / 3, rtol=1e-6)


def test_b0_direction_from_oblique_affine():
    rotation = _rotation("x", 25)
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.9, 0.9, 1.5])
    b = b0_direction_from_affine(affine)
    # the voxel-axis direction mapped back to world must be world z
    assert_allclose(rotation @ b, [0, 0, 1], atol=1e-12)
    # world z stored along voxel axis j: B0 is along array axis 1
    perm = np.zeros((4, 4))
    perm[0, 2] = perm[1, 0] = perm[2, 1] = 1.0
    perm[3, 3] = 1.0
    assert_allclose(b0_direction_from_affine(perm), [0, 1, 0], atol=1e-12)


def test_forward_field_kernel_cache_follows_voxel_size_and_b0():
    """forward_field keeps its last kernels; alternating grids, voxel sizes and B0 must still give the field of a
    freshly computed kernel (and leave the cached kernels unchanged)."""
    chi = torch.rand(6, 5, 7, generator=torch.Generator().manual_seed(3))
    configs = [((6, 5, 7), (1.0, 1.0, 1.0), (0.0, 0.0, 1.0)), ((6, 5, 7), (1.0, 2.0, 0.5), (0.0, 0.0, 1.0)),
               ((6, 5, 7), (1.0, 1.0, 1.0), (0.3, 0.1, 1.0)), ((4, 5, 7), (1.0, 1.0, 1.0), (0.0, 0.0, 1.0))]
    for _ in range(2):
        for shape, voxel, b0 in configs:
            x = chi[: shape[0]]
            field = forward_field(x, voxel, b0, pad_factor=1.0)
            kernel = dipole_kernel(shape, voxel, b0)
            expected = torch.fft.irfftn(torch.fft.rfftn(x) * kernel, s=shape)
            assert_allclose(field.numpy(), expected.numpy(), atol=1e-6)


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_forward_field_slice_equals_the_slice_of_the_full_field(dtype, rtol):
    """The one-slice field (a weighted sum instead of the inverse FFT along the sliced axis) is the full field's
    slice, for both allowed axes, edge and inner indices, a batch axis, anisotropic voxels and an oblique B0, also
    when χ is zero in most slices (those are skipped) or everywhere."""
    chi = torch.randn(2, 20, 12, 18, generator=torch.Generator().manual_seed(0), dtype=dtype)
    voxel, b0 = (0.5, 1.2, 0.7), (0.3, 0.2, 0.93)
    for axis, index in ((0, 0), (0, 7), (1, 11), (1, 6)):
        full = forward_field(chi, voxel, b0).select(axis - 3, index)
        one = forward_field_slice(chi, voxel, b0, axis=axis, index=index)
        assert one.shape == full.shape and one.dtype == dtype
        assert float((one - full).abs().max()) <= rtol * float(full.abs().max())
    sparse = chi.clone()                              # χ only in a few slices: the empty ones are skipped
    sparse[:, 3:17] = 0
    sparse[:, :, 2:9] = 0
    sparse[1, :, 10] = 0
    for axis, index in ((0, 5), (1, 4), (1, 10)):
        full = forward_field(sparse, voxel, b0).select(axis - 3, index)
        one = forward_field_slice(sparse, voxel, b0, axis=axis, index=index)
        assert float((one - full).abs().max()) <= rtol * float(full.abs().max())
    assert torch.equal(forward_field_slice(torch.zeros_like(chi), voxel, b0, axis=1, index=3),
                       torch.zeros(2, 20, 18, dtype=dtype))
    with pytest.raises(ValueError, match="axis must be 0 or 1"):
        forward_field_slice(chi, voxel, b0, axis=2, index=0)
    with pytest.raises(IndexError, match="outside"):
        forward_field_slice(chi, voxel, b0, axis=1, index=12)
