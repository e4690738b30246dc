"""The differentiable db4 DWT equals PyWavelets (della Maggiora et al., "DeepSPIO", IEEE TPAMI 2020, §4)."""

from __future__ import annotations

import numpy as np
import pywt
import torch
from numpy.testing import assert_allclose

from lightning_modules.spio.wavelets import Dwt2, InverseDwt2


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
