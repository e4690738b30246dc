"""benchmarks/spio_train_on_variant.py (session 36): the samples a variant-trained arm sees are the variant's own."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import spio_train_on_variant as arm  # noqa: E402  (a benchmark module, found through sys.path)
import spio_variant2 as v2  # noqa: E402

from lightning_modules.spio.data import random_sample  # noqa: E402


def test_a_variant_arm_draws_the_variant_at_its_shifted_seed() -> None:
    image, truth = arm.variant_random_sample("variant2")(5, 3, head_bases=0.5)
    expected = v2.variant2_sample(5 + arm.SEED_OFFSET, 3)
    assert image.dtype == torch.float32 and image.shape == (2, 128, 128) and truth.shape == (1, 128, 128)
    assert np.array_equal(image.numpy(), expected[0]) and np.array_equal(truth[0].numpy(), expected[1])


def test_the_mixed_arm_takes_training_or_a_variant_by_its_own_stream() -> None:
    calls = []

    def training(seed, index, **options):
        calls.append(options)
        return random_sample(seed, index, **options)

    mixed = arm.mixed_random_sample(training)
    kinds = []
    for index in range(12):
        choice = int(np.random.default_rng([9, index, 97]).integers(3))
        image, truth = mixed(9, index, rim_bases=0.125)
        reference = (training(9, index, rim_bases=0.125) if choice == 0
                     else arm.variant_random_sample(("variant", "variant2")[choice - 1])(9, index))
        assert torch.equal(image, reference[0]) and torch.equal(truth, reference[1])
        kinds.append(choice)
    assert set(kinds) == {0, 1, 2}
    assert all(options == {"rim_bases": 0.125} for options in calls)  # training's options reach its samples


def test_the_ellipsoid_arm_keeps_trainings_other_samples_and_their_options() -> None:
    """Session 39: a quarter of the samples (their own stream) are ellipsoid samples; the rest are training's own,
    with the run's options; with auxiliary targets the same image and map come with the targets."""
    calls = []

    def training(seed, index, **options):
        calls.append(options)
        return random_sample(seed, index, **options)

    drawn = arm.ellipsoid_random_sample(training)
    chosen = [np.random.default_rng([84, i, 83]).random() < arm.P_ELLIPSOIDS for i in range(40)]
    assert 4 <= sum(chosen) <= 16  # about a quarter
    for index in [i for i, c in enumerate(chosen) if not c][:3]:
        image, truth = drawn(84, index, rim_bases=0.125)
        reference = random_sample(84, index, rim_bases=0.125)
        assert torch.equal(image, reference[0]) and torch.equal(truth, reference[1])
    assert calls and all(options == {"rim_bases": 0.125} for options in calls)
    index = chosen.index(True)
    image, truth = drawn(84, index, noise_free_fraction=1.0)
    assert image.shape == (2, 128, 128) and truth.shape == (1, 128, 128)
    with_targets = arm.ellipsoid_random_sample(training, with_targets=True)(84, index, noise_free_fraction=1.0)
    assert torch.equal(with_targets[0], image) and torch.equal(with_targets[1], truth)
    assert with_targets[2].shape == (2, 64, 64)
    noisy = arm.ellipsoid_sample(84, index, noise_free_fraction=0.0)
    assert torch.equal(noisy[1], truth) and not torch.equal(noisy[0], image)  # the same objects, noise added


def test_an_ellipsoid_samples_plane_map_is_its_ellipsoids_section_at_log_uniform_levels() -> None:
    """The map is the centre slice of the 3-D ellipsoids: positive levels inside the training range, on tissue."""
    for index in range(4):
        _, truth = arm.ellipsoid_sample(7, index)
        levels = truth[truth > 0]
        assert levels.numel() == 0 or (levels.min() >= 0.22 - 1e-6 and levels.max() <= 27.9 + 1e-6)
