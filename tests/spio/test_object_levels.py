"""One level per object (issue 24, session 41): ``shrink_object_levels`` and its bundle transform."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from lightning_modules.spio.transforms import ObjectLevelShrinkd, shrink_object_levels


def _two_objects(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A map with two separate noisy disks at 2 and 9 µg Fe/mm³ and a faint halo around the first."""
    x, z = np.mgrid[:64, :64]
    a = (x - 20) ** 2 + (z - 20) ** 2 <= 36
    b = (x - 44) ** 2 + (z - 40) ** 2 <= 25
    halo = ((x - 20) ** 2 + (z - 20) ** 2 <= 64) & ~a
    m = np.zeros((64, 64))
    m[a] = 2.0 * (1 + 0.1 * rng.standard_normal(a.sum()))
    m[b] = 9.0 * (1 + 0.1 * rng.standard_normal(b.sum()))
    m[halo] = 0.3  # below half of the disk's 75th percentile: outside the core
    return np.clip(m, 0.2, None) * (a | b | halo), a, b


def test_each_core_moves_the_given_fraction_toward_its_own_median() -> None:
    m, a, b = _two_objects(np.random.default_rng(0))
    out = shrink_object_levels(m, core_fraction=0.5, strength=0.5)
    for disk in (a, b):  # each disk is its own core: the halo is below half its 75th percentile
        np.testing.assert_allclose(out[disk], 0.5 * m[disk] + 0.5 * np.median(m[disk]))
    assert abs(np.median(out[a]) - np.median(m[a])) < 1e-12 and np.median(out[b]) > 8  # levels not mixed
    halo = (m > 0) & ~a & ~b
    np.testing.assert_array_equal(out[halo], m[halo])
    np.testing.assert_array_equal(out[m == 0], 0.0)  # the support is unchanged
    assert np.abs(out[a] - np.median(m[a])).sum() == pytest.approx(0.5 * np.abs(m[a] - np.median(m[a])).sum())


def test_noise_on_uniform_objects_is_halved_and_strength_zero_is_the_identity() -> None:
    m, a, b = _two_objects(np.random.default_rng(1))
    truth = np.where(a, 2.0, 0.0) + np.where(b, 9.0, 0.0)
    core = a | b
    before = np.abs(m - truth)[core].sum()
    after = np.abs(shrink_object_levels(m) - truth)[core].sum()
    assert after < 0.6 * before  # the medians are near the true levels, so the scatter around them halves
    np.testing.assert_array_equal(shrink_object_levels(m, strength=0.0), m)
    full = shrink_object_levels(m, strength=1.0)
    assert len(np.unique(full[a])) == 1 and len(np.unique(full[b])) == 1
    with pytest.raises(ValueError, match="strength"):
        shrink_object_levels(m, strength=1.5)


def test_the_transform_keeps_a_metatensors_grid_and_dtype() -> None:
    m, a, _ = _two_objects(np.random.default_rng(2))
    affine = torch.diag(torch.tensor([0.39, 0.39, 1.0, 1.0], dtype=torch.float64))
    pred = MetaTensor(torch.tensor(m[None], dtype=torch.float32), affine=affine)
    out = ObjectLevelShrinkd("pred")({"pred": pred})["pred"]
    assert isinstance(out, MetaTensor) and out.dtype == torch.float32 and out.shape == (1, 64, 64)
    assert torch.equal(out.affine, affine)
    np.testing.assert_allclose(out[0].numpy(), shrink_object_levels(m.astype(np.float32)), rtol=1e-6)
    assert pred[0].numpy()[a].std() > out[0].numpy()[a].std()  # the input is not changed in place
    np.testing.assert_array_equal(pred[0].numpy(), m.astype(np.float32))


def test_pixels_below_the_floor_neither_join_objects_nor_move() -> None:
    """A map floored at 0 (``--floor_ug_per_mm3 0``) has faint leakage everywhere; objects are still the pixels at or
    above the bundle's floor, so two disks joined by leakage keep their own levels."""
    m, a, b = _two_objects(np.random.default_rng(3))
    leaky = np.where(m > 0, m, 0.01)
    out = shrink_object_levels(leaky)
    np.testing.assert_array_equal(out[leaky == 0.01], 0.01)
    np.testing.assert_allclose(out[b], 0.5 * m[b] + 0.5 * np.median(m[b]))
    np.testing.assert_array_equal(out[m > 0], shrink_object_levels(m)[m > 0])  # as if the leakage were not there


def test_the_training_copy_is_the_same_step_with_a_gradient() -> None:
    """``refiner_module.object_step`` (``--object_step``) gives the bundle's step exactly, and a gradient to every
    core pixel (through its own value and the core's median)."""
    from lightning_modules.spio.refiner_module import object_step

    maps = np.stack([_two_objects(np.random.default_rng(seed))[0] for seed in (4, 5)])[:, None].astype(np.float32)
    x = torch.tensor(maps, requires_grad=True)
    out = object_step(x)
    np.testing.assert_array_equal(out.detach().numpy(), np.stack([shrink_object_levels(m[0]) for m in maps])[:, None])
    out.sum().backward()
    _, a, b = _two_objects(np.random.default_rng(4))
    grad = x.grad[0, 0].numpy()
    assert np.all(grad[a | b] >= 0.5 - 1e-6) and grad[a | b].sum() == pytest.approx((a | b).sum(), rel=1e-5)
    np.testing.assert_array_equal(grad[~(a | b) & (maps[0, 0] > 0)], 1.0)  # the halo passes through unchanged


def test_the_benchmark_splits_the_change_by_what_lies_under_each_component() -> None:
    """``benchmarks/spio_object_shrinkage.py --decompose`` on known truth: a map component over one true level gains,
    one over two touching levels of 5 and 8 µg Fe/mm³ loses (the pull mixes them), one over no iron is counted apart."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import spio_object_shrinkage as bench

    truth = np.zeros((64, 64))
    truth[5:15, 5:15] = 3.0                                       # one level
    truth[30:40, 30:35], truth[30:40, 35:40] = 5.0, 8.0           # two touching levels, both in the core
    rng = np.random.default_rng(6)
    m = np.where(truth > 0, truth * (1 + 0.15 * rng.standard_normal(truth.shape)), 0.0)
    m[50:54, 50:54] = 1.0                                         # false iron
    parts = bench.decompose(truth[None], m[None], 0.5, 0.5)
    assert parts["one level"][0] == 1 and parts["one level"][1] < 0
    assert parts["several levels"][0] == 1 and parts["several levels"][1] > 0
    assert parts["no iron"] == (1, 0.0)  # a uniform false object does not move
    total = np.abs(shrink_object_levels(m) - truth).sum() - np.abs(m - truth).sum()
    assert sum(v for _, v in parts.values()) == pytest.approx(total / truth.sum())


def test_the_refiner_benchmark_maps_as_the_bundle_does() -> None:
    """``benchmarks/spio_refiner_candidate.py`` refines a shared DeepSPIO map: the result is ``predict_concentration``'s
    map (the bundle's), bit for bit."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import spio_refiner_candidate as bench

    from lightning_modules.spio.app import load_network, predict_concentration
    from lightning_modules.spio.data import random_sample
    from lightning_modules.spio.networks import DeepSpio
    from lightning_modules.spio.simulation_refiner import load_refiner, refine_map
    from lightning_modules.spio.transforms import floor_concentration

    network = load_network(DeepSpio(), str(bench.MODELS / "model.pt"))
    refiner = load_refiner(str(bench.MODELS / "refiner.pt"))
    image = random_sample(987, 5)[0].numpy()
    prior = predict_concentration(network, image, object_shrinkage=0.0)
    mapped = bench.bundle_maps(refiner, image[None], prior[None])[0]
    np.testing.assert_array_equal(mapped, predict_concentration(network, image, refiner=refiner))
    assert mapped.max() > 0
    # session 42: a list of refiners is their ensemble — the mean of their flip-averaged maps, then floor and step
    np.testing.assert_allclose(bench.bundle_maps([refiner, refiner], image[None], prior[None])[0], mapped, atol=1e-6)
    other = load_refiner(str(bench.MODELS / "refiner_noise_robust.pt"))
    x, p = torch.as_tensor(image[None]), torch.as_tensor(prior[None, None])
    mean = 0.5 * (refine_map(refiner, x, p) + refine_map(other, x, p))
    np.testing.assert_allclose(bench.bundle_maps([refiner, other], image[None], prior[None])[0],
                               shrink_object_levels(floor_concentration(mean)[0, 0].numpy()), atol=1e-6)


def test_error_budget_splits_the_nmae_on_known_truth():
    """``benchmarks/spio_error_budget.py`` (session 42) on a hand-made case: object A (4 × 4 at 2) read at 1 with its
    support one column short, object B (2 × 2 at 1) missed entirely, a false blob (2 × 2 at 0.5). The parts add up
    to the NMAE, each is the hand-computed share, and the per-object scale oracle reads A at its true level."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import spio_error_budget as bench

    truth, estimate = np.zeros((32, 32)), np.zeros((32, 32))
    truth[4:8, 4:8] = 2.0
    truth[20:22, 20:22] = 1.0
    estimate[4:8, 4:7] = 1.0
    estimate[12:14, 25:27] = 0.5
    total = 32.0 + 4.0
    parts = bench.budget(truth, estimate)
    assert parts["missed: whole objects"] == pytest.approx(4.0 / total)
    assert parts["missed: ≤ 1.5 px from the map"] == pytest.approx(8.0 / total)  # A's last column, 4 px at 2
    assert parts["missed"] == pytest.approx(12.0 / total)
    assert parts["false"] == pytest.approx(2.0 / total)
    assert parts["level"] == pytest.approx(12.0 / total)  # 12 px read 1 short
    assert parts["missed"] + parts["false"] + parts["level"] == pytest.approx(parts["NMAE"])
    assert parts["oracle: best scale per object"] == pytest.approx((12.0 + 0.0) / total)  # A at 2, the blob → 0
    assert parts["oracle: objects without iron removed"] == pytest.approx(parts["NMAE"] - 2.0 / total)
