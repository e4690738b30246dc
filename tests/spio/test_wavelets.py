"""The differentiable db4 DWT equals PyWavelets (della Maggiora et al., "DeepSPIO", IEEE TPAMI 2020, §4)."""

from __future__ import annotations

import numpy as np
import pytest
import pywt
import torch
from numpy.testing import assert_allclose

from lightning_modules.spio.wavelets import (
    Dwt2,
    InverseDwt2,
    _analysis_1d,
    _filters,
    analysis_matrix,
    synthesis_matrix,
)


def test_forward_and_inverse_match_pywavelets():
    x = np.random.default_rng(0).random((2, 1, 32, 48))
    ca, (ch, cv, cd) = pywt.dwt2(x, "db4", mode="periodization")
    bands = Dwt2()(torch.tensor(x)).numpy()
    assert_allclose(bands, np.concatenate([ca, ch, cv, cd], axis=1), atol=1e-10)
    rng = np.random.default_rng(1)
    coeffs = [rng.normal(size=(2, 1, 16, 24)) for _ in range(4)]
    expected = pywt.idwt2((coeffs[0], tuple(coeffs[1:])), "db4", mode="periodization")
    result = InverseDwt2()(torch.tensor(np.concatenate(coeffs, axis=1))).numpy()
    assert_allclose(result, expected, atol=1e-10)


def test_inverse_is_differentiable():
    bands = torch.randn(1, 4, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(InverseDwt2(), (bands,))


def test_matrices_are_the_strided_convolutions():
    """The modules' matrices are the 1-D convolutions they are built from, and synthesis inverts analysis."""
    x = torch.randn(5, 3, 24, dtype=torch.float64)
    dec_lo, dec_hi, _, _ = _filters("db4")
    low, high = _analysis_1d(x, dec_lo.flip(0), dec_hi.flip(0), dim=-1)
    assert_allclose((x @ analysis_matrix("db4", 24).T).numpy(), torch.cat([low, high], -1).numpy(), atol=1e-12)
    assert_allclose((synthesis_matrix("db4", 24) @ analysis_matrix("db4", 24)).numpy(), np.eye(24), atol=1e-12)


def test_float32_dwt_keeps_its_precision_and_odd_sides_are_refused():
    x = torch.rand(2, 1, 64, 32)
    assert Dwt2()(x).dtype == torch.float32
    assert_allclose(InverseDwt2()(Dwt2()(x)).numpy(), x.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="even"):
        Dwt2()(torch.rand(1, 1, 9, 8))
