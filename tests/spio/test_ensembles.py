"""Test-time shift average (:class:`ShiftAverageInferer`) and checkpoint ensembles (:class:`MapEnsemble`) of the
SPIO networks (issue 24, session 18): exact against hand-computed maps, and no wrap-round at the field's edges;
weight interpolation with a fine-tuned copy (session 19): the end points are the two networks, the middle their mean."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightning_modules.spio.ensemble import (
    MapEnsemble,
    deepspio_ensemble,
    ensemble_state,
    interpolate_states,
    write_ensemble,
)
from lightning_modules.spio.inferers import FlipAverageInferer, ShiftAverageInferer, shift
from lightning_modules.spio.networks import DeepSpio


def _blur(t: torch.Tensor) -> torch.Tensor:
    """3 × 3 mean filter with zero padding: shift-equivariant when zeros are shifted in."""
    return F.conv2d(t[:, :1], torch.full((1, 1, 3, 3), 1 / 9), padding=1)


def test_shift_average_of_an_equivariant_map_is_the_map_even_with_tissue_at_the_edge() -> None:
    x = torch.zeros(2, 2, 12, 10)
    x[:, :, -1, :] = 5.0          # bright tissue on the last x row: a roll would carry it next to row 0
    x[:, :, 4:7, 3:6] = torch.rand(2, 2, 3, 3)
    for shifts in ((0, 1), (-1, 0, 1), (0, 1, 2, 3)):
        averaged = ShiftAverageInferer(shifts=shifts)(x, _blur)
        # exact except within the filter's reach of rows a shift pushed out of the field (those lose a neighbour)
        inner = slice(1 + max(0, -min(shifts)), 12 - 1 - max(shifts))
        torch.testing.assert_close(averaged[:, :, inner], _blur(x)[:, :, inner])
        torch.testing.assert_close(averaged[:, :, 0], _blur(x)[:, :, 0])   # no wrap-round into row 0
        torch.testing.assert_close(averaged[:, :, -1], _blur(x)[:, :, -1])
    rolled = torch.stack([_blur(x.roll(s, 2)).roll(-s, 2) for s in (-1, 0, 1)]).mean(0)
    assert rolled[:, :, 0].abs().max() > 0.1  # what the zero fill avoids: the wrapped edge leaks into row 0


def test_shift_average_is_the_mean_over_the_shifts_that_saw_each_pixel() -> None:
    x = torch.rand(1, 2, 8, 6)
    ramp = torch.arange(8.0)[:, None]
    network = lambda t: t[:, :1] * ramp  # noqa: E731  (position-dependent: the shifts disagree)
    out = ShiftAverageInferer(shifts=(0, 2))(x, network)[0, 0]
    for i in range(8):
        seen = [x[0, 0, i] * ramp[i]] + ([x[0, 0, i] * ramp[i + 2]] if i + 2 < 8 else [])
        torch.testing.assert_close(out[i], torch.stack(seen).mean(0))


def test_shift_moves_along_the_axis_with_zeros_in() -> None:
    t = torch.arange(1.0, 7.0).reshape(2, 3)
    assert shift(t, 1, 1).tolist() == [[0.0, 1.0, 2.0], [0.0, 4.0, 5.0]]
    assert shift(t, -2, 1).tolist() == [[3.0, 0.0, 0.0], [6.0, 0.0, 0.0]]
    assert shift(t, 5, 0).abs().sum() == 0


def test_shift_average_rejects_bad_settings() -> None:
    x = torch.rand(1, 2, 4, 4)
    with pytest.raises(ValueError, match="whole pixels"):
        ShiftAverageInferer(shifts=(0, 0.5))
    with pytest.raises(ValueError, match="non-empty"):
        ShiftAverageInferer(shifts=())
    with pytest.raises(ValueError, match="spatial_axis 2 does not exist"):
        ShiftAverageInferer(spatial_axis=2)(x, _blur)


def test_ensemble_is_the_mean_of_its_members_and_loads_from_their_weights() -> None:
    torch.manual_seed(0)
    members = [DeepSpio(encoder_widths=(4, 8, 8), bottleneck_channels=8, decoder_widths=(4,)).eval() for _ in range(2)]
    x = torch.rand(2, 2, 32, 32)
    with torch.no_grad():
        expected = 0.5 * (members[0](x) + members[1](x))
        ensemble = MapEnsemble(members).eval()
        torch.testing.assert_close(ensemble(x), expected)
        fresh = MapEnsemble([DeepSpio(encoder_widths=(4, 8, 8), bottleneck_channels=8, decoder_widths=(4,))
                             for _ in range(2)]).eval()
        fresh.load_state_dict(ensemble_state([m.state_dict() for m in members]))
        torch.testing.assert_close(fresh(x), expected)
        inferred = FlipAverageInferer(ShiftAverageInferer(shifts=(-1, 0, 1)))(x, fresh)
    assert inferred.shape == (2, 1, 32, 32) and torch.isfinite(inferred).all()
    with pytest.raises(ValueError, match="at least one member"):
        MapEnsemble([])


def test_weight_interpolation_runs_from_the_base_to_the_tuned_network() -> None:
    torch.manual_seed(0)
    base, tuned = DeepSpio().state_dict(), DeepSpio().state_dict()
    tuned = {k: v + 1.0 if v.is_floating_point() else v + 3 for k, v in tuned.items()}
    for key in base:                      # the fixtures differ in every floating-point entry
        assert not base[key].is_floating_point() or not torch.equal(base[key], tuned[key])
    for alpha, expected in ((0.0, base), (1.0, tuned)):
        mixed = interpolate_states(base, tuned, alpha)
        for key, value in mixed.items():
            if value.is_floating_point():
                torch.testing.assert_close(value, expected[key], rtol=0, atol=1e-6)
    half = interpolate_states(base, tuned, 0.5)
    for key, value in half.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (base[key] + tuned[key]) / 2)
        else:                             # counters (e.g. BatchNorm's num_batches_tracked) come from the tuned copy
            assert torch.equal(value, tuned[key])
    network = DeepSpio()
    network.load_state_dict(half)         # a plain state_dict the bundle's network_def loads strictly


def test_weight_interpolation_refuses_other_networks_and_alphas_outside_0_1() -> None:
    base = DeepSpio().state_dict()
    with pytest.raises(ValueError, match="differ"):
        interpolate_states(base, {**base, "extra.weight": torch.zeros(1)}, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        interpolate_states(base, base, 1.5)


def test_written_ensemble_of_two_deepspio_files_is_the_mean_of_their_maps(tmp_path) -> None:
    torch.manual_seed(1)
    paths, members = [], []
    for i in range(2):
        member = DeepSpio().eval()
        torch.save(member.state_dict(), tmp_path / f"m{i}.pt")
        paths.append(str(tmp_path / f"m{i}.pt"))
        members.append(member)
    write_ensemble(paths, str(tmp_path / "ensemble.pt"))
    ensemble = deepspio_ensemble(2).eval()
    ensemble.load_state_dict(torch.load(tmp_path / "ensemble.pt", weights_only=True))  # strict: every key
    x = torch.rand(1, 2, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ensemble(x), 0.5 * (members[0](x) + members[1](x)))
