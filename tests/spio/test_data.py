"""SPIO training data: on-the-fly samples are fresh every epoch and disjoint across DDP ranks and loader workers;
the intensity augmentation of the base images changes nothing when off and only intensities when on; head anatomy
(scalp, skull, vessels, texture) is drawn where it belongs and changes nothing when off; a larger noise-free
fraction (session 24) turns noisy training samples noise-free, changes nothing else and reaches training only; the
extra shape families (session 26) have their geometry and change only the objects; the extent family (session 40)
is ellipsoids whose extent along y varies independently of their section, and changes only the objects."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from lightning_modules.spio import acquisition as acq
from lightning_modules.spio import data, phantoms
from lightning_modules.spio.data import OnTheFlyDataset, ViewLineDataModule, random_sample_with_snr
from lightning_modules.spio.families import ellipsoids_of_random_extent, other_family_sample
from lightning_modules.spio.phantoms import (
    agar_disk,
    augment_base,
    capsule,
    grid_3d_mm,
    head_anatomy,
    metaball,
    multilevel_metaball,
    rim_contrast,
    sphere,
    varied_concentration,
)
from lightning_modules.spio.viewline import PIXEL_MM, VOXEL_3D_MM


def _fake_sample(seed: int, index: int, *, base_augmentation: float = 0.0, head_bases: float = 0.0,
                 rim_bases: float = 0.0, shape_variety: float = 0.0, other_families: float = 0.0,
                 tube_phantoms: float = 0.0, extent_family: float = 0.0,
                 noise_free_fraction: float = data.P_NOISE_FREE, noise_models: float = 0.0,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Stands in for the simulator: the 'image' is the sample index, the 'concentration' the seed."""
    return torch.tensor([float(index)]), torch.tensor([float(seed)])


@pytest.mark.parametrize(("world_size", "n_workers", "batch_size", "samples_per_epoch"),
                         [(1, 1, 4, 8), (3, 2, 2, 10), (4, 3, 5, 24)])
def test_each_epoch_draws_new_samples_split_evenly_across_ranks_and_workers(world_size, n_workers, batch_size,
                                                                           samples_per_epoch):
    seen = []
    for epoch in range(3):
        in_epoch = []
        for rank in range(world_size):
            dataset = OnTheFlyDataset(0, samples_per_epoch=samples_per_epoch, batch_size=batch_size,
                                      n_workers=n_workers, rank=rank, world_size=world_size)
            runs = [list(dataset.indices(epoch, worker)) for worker in range(n_workers)]
            assert all(len(run) % batch_size == 0 and len(run) == len(runs[0]) for run in runs)  # whole batches
            assert sum(map(len, runs)) == len(dataset) >= samples_per_epoch / world_size  # same length on every rank
            in_epoch += [i for run in runs for i in run]
        block = len(in_epoch)
        assert sorted(in_epoch) == list(range(epoch * block, (epoch + 1) * block))  # no repeats, no gaps
        assert block < samples_per_epoch + world_size * n_workers * batch_size
        seen += in_epoch
    assert len(seen) == len(set(seen))


def test_bad_rank_is_refused():
    with pytest.raises(ValueError, match="rank 2"):
        OnTheFlyDataset(0, samples_per_epoch=8, rank=2, world_size=2)


def test_a_loader_with_other_workers_than_built_for_is_refused(monkeypatch):
    monkeypatch.setattr(data, "random_sample", _fake_sample)
    with pytest.raises(RuntimeError, match="built for 2 loader worker"):
        next(iter(OnTheFlyDataset(0, samples_per_epoch=8, n_workers=2)))


def test_loader_workers_draw_fresh_samples_every_epoch(monkeypatch):
    monkeypatch.setattr(data, "random_sample", _fake_sample)
    module = ViewLineDataModule(seed=3, pool_size=0, samples_per_epoch=8, batch_size=2, num_workers=2)
    module.train_set = OnTheFlyDataset(3, samples_per_epoch=8, batch_size=2, n_workers=2)
    loader = module.train_dataloader()
    assert loader.persistent_workers and len(loader) == 4
    epochs = [[int(i) for image, _ in loader for i in image.flatten()] for _ in range(3)]
    assert [sorted(e) for e in epochs] == [list(range(0, 8)), list(range(8, 16)), list(range(16, 24))]


def test_setup_gives_the_dataset_the_trainers_rank():
    module = ViewLineDataModule(seed=0, pool_size=0, samples_per_epoch=12, batch_size=2)
    module.val_set = []  # not needed here; setup would simulate it
    module.trainer = SimpleNamespace(global_rank=2, world_size=3)
    module.setup("fit")
    assert (module.train_set.rank, module.train_set.world_size) == (2, 3)
    assert len(module.train_set) == 4 and list(module.train_set.indices(1)) == [20, 21, 22, 23]


def test_base_augmentation_off_gives_exactly_the_plain_samples_and_on_changes_some() -> None:
    for index in range(3):
        plain = random_sample_with_snr(7, index)
        off = random_sample_with_snr(7, index, base_augmentation=0.0)
        assert all(torch.equal(a, b) for a, b in zip(plain[:2], off[:2], strict=True)) and plain[2] == off[2]
    changed = [not torch.equal(random_sample_with_snr(7, i)[0], random_sample_with_snr(7, i, base_augmentation=1.0)[0])
               for i in range(3)]
    assert all(changed)


def test_augment_base_changes_intensity_only() -> None:
    disk = agar_disk(radius_mm=18.0, centre_mm=(0.0, 0.0))
    out = augment_base(disk, np.random.default_rng(0))
    assert out.shape == disk.shape and torch.isfinite(out).all()
    assert torch.equal(out > 0, disk > 0)                    # the support (zero stays zero, tissue stays tissue)
    assert float(out.max()) == pytest.approx(float(disk.max()))
    inside = disk > 0.99 * disk.max()
    assert float(out[inside].std()) > 0.05 * float(out.max())  # the uniform disk is no longer uniform
    torch.testing.assert_close(augment_base(disk, np.random.default_rng(0)), out)


@pytest.mark.parametrize("option", ["base_augmentation", "head_bases", "rim_bases", "shape_variety",
                                    "other_families", "tube_phantoms", "extent_family", "noise_free_fraction",
                                    "noise_models"])
def test_base_image_options_need_fresh_samples_and_reach_the_dataset(option: str) -> None:
    with pytest.raises(ValueError, match="pool_size 0"):
        ViewLineDataModule(pool_size=100, **{option: 0.5})
    module = ViewLineDataModule(seed=0, pool_size=0, samples_per_epoch=4, batch_size=2, **{option: 0.5})
    module.val_set = []
    module.setup("fit")
    assert getattr(module.train_set, option) == 0.5


def test_noise_free_fraction_turns_noisy_samples_noise_free_and_changes_nothing_else() -> None:
    n = 40
    default = [random_sample_with_snr(5, i) for i in range(n)]
    for i, (image, concentration, snr_db) in enumerate(default):       # the default is what every run saw
        same = random_sample_with_snr(5, i, noise_free_fraction=data.P_NOISE_FREE)
        assert torch.equal(same[0], image) and torch.equal(same[1], concentration) and same[2] == snr_db
    more = [random_sample_with_snr(5, i, noise_free_fraction=0.5) for i in range(n)]
    noise_free = [np.isinf(s[2]) for s in more]
    assert all(noise_free[i] for i in range(n) if np.isinf(default[i][2]))   # noise-free stays noise-free
    assert 0.25 * n < sum(noise_free) < 0.75 * n and sum(noise_free) > sum(np.isinf(s[2]) for s in default)
    turned = []                                                           # (SNR, noise level) of those turned
    for (image, concentration, snr_db), (image2, concentration2, snr2) in zip(default, more, strict=True):
        assert torch.equal(concentration, concentration2)                 # the same object in the same tissue
        if snr2 == snr_db:
            assert torch.equal(image, image2)
        else:       # the same image without its noise: the difference is noise of the sample's SNR (tissue ≈ 1)
            noise = float((image - image2).std() / image2[image2 > 0.5 * image2.max()].mean())
            assert 0.1 < noise / 10 ** (-snr_db / 20) < 3
            turned.append((snr_db, noise))
    snrs, noises = np.array(turned).T
    assert len(turned) >= 5 and np.corrcoef(snrs, np.log10(noises))[0, 1] < -0.9  # lower SNR, more noise removed
    for i in range(8):                           # a fixed SNR: the same sample, its noise set by the SNR given
        drawn, fixed = default[i], random_sample_with_snr(5, i, snr_db=12.0)
        assert fixed[2] == 12.0 and torch.equal(fixed[1], drawn[1])
        assert torch.equal(random_sample_with_snr(5, i, snr_db=np.inf)[0], more[i][0] if np.isinf(more[i][2])
                           else random_sample_with_snr(5, i, noise_free_fraction=1.0)[0])
        if drawn[2] == 12.0 or np.isinf(drawn[2]):
            continue
        assert not torch.equal(fixed[0], drawn[0])
    assert all(np.isinf(random_sample_with_snr(5, i, noise_free_fraction=1.0)[2]) for i in range(8))
    assert not any(np.isinf(random_sample_with_snr(5, i, noise_free_fraction=0.0)[2]) for i in range(8))
    with pytest.raises(ValueError, match="noise_free_fraction"):
        ViewLineDataModule(pool_size=0, noise_free_fraction=1.5)


@pytest.mark.parametrize("option", ["head_bases", "rim_bases", "shape_variety", "other_families", "tube_phantoms",
                                    "extent_family"])
def test_sample_options_off_give_exactly_the_plain_samples_and_on_change_them(option: str) -> None:
    for index in range(3):
        plain, off = random_sample_with_snr(8, index), random_sample_with_snr(8, index, **{option: 0.0})
        assert all(torch.equal(a, b) for a, b in zip(plain[:2], off[:2], strict=True)) and plain[2] == off[2]
        assert not torch.equal(plain[0], random_sample_with_snr(8, index, **{option: 1.0})[0])


def test_other_families_draw_base_and_objects_from_the_variants_families_on_a_stream_of_their_own() -> None:
    for index in range(4):
        rng = np.random.default_rng([6, index, 67])   # the option's own stream: its first number decides
        chosen = rng.random() < 0.5
        rho, concentration = other_family_sample(rng)
        plain = random_sample_with_snr(6, index)
        half = random_sample_with_snr(6, index, other_families=0.5)
        always = random_sample_with_snr(6, index, other_families=1.0)
        plane = concentration[:, concentration.shape[1] // 2, :]
        assert torch.equal(always[1][0], plane.float())  # the families' objects, cut by the imaged plane
        assert always[2] == plain[2]                      # the SNR is drawn as for the plain sample
        assert torch.equal(half[1], always[1] if chosen else plain[1])
    kinds = {other_family_sample(np.random.default_rng(i))[0].gt(0).float().mean().round(decimals=1).item()
             for i in range(12)}
    assert len(kinds) > 2  # several different bases, not one


@pytest.mark.parametrize(("option", "draw"), [("shape_variety", "varied_concentration"),
                                              ("extent_family", "ellipsoids_of_random_extent")])
def test_object_families_change_only_the_objects(monkeypatch, option: str, draw: str) -> None:
    plain_objects = {}
    draw_plain = data.random_concentration

    def recording(rng, rho):
        plain_objects["last"] = draw_plain(rng, rho)
        return plain_objects["last"]

    monkeypatch.setattr(data, "random_concentration", recording)   # the family's objects equal to the plain ones …
    monkeypatch.setattr(data, draw, lambda rng, rho: plain_objects["last"].clone())
    options = {"head_bases": 0.5, "base_augmentation": 0.5, "rim_bases": 0.5}
    for index in range(3):                                 # … give the plain sample: base, bubble and noise unchanged
        plain = random_sample_with_snr(9, index, **options)
        changed = random_sample_with_snr(9, index, **options, **{option: 1.0})
        assert all(torch.equal(a, b) for a, b in zip(plain[:2], changed[:2], strict=True)) and plain[2] == changed[2]


def test_object_families_draw_the_objects_from_the_given_families_only(monkeypatch) -> None:
    families_drawn = []
    draw = data.random_concentration

    def recording(rng, rho, **kwargs):
        families_drawn.append(kwargs.get("families"))
        return draw(rng, rho, **kwargs)

    monkeypatch.setattr(data, "random_concentration", recording)
    plain = random_sample_with_snr(9, 0)
    assert families_drawn == [None]                        # training's families unless told: the plain samples …
    monkeypatch.undo()
    assert all(torch.equal(a, b) for a, b in zip(plain[:2], random_sample_with_snr(9, 0, object_families=None)[:2],
                                                  strict=True))
    shapes = []
    monkeypatch.setattr(phantoms, "random_object", lambda rng, centre, shape: shapes.append(shape) or
                        phantoms.sphere(centre, 2.0))
    for index in range(4):                                 # … and only the given family when told
        random_sample_with_snr(9, index, object_families=("metaball",))
    assert shapes and set(shapes) == {"metaball"}


def test_the_extent_family_is_ellipsoids_whose_extent_along_y_varies_independently_of_their_section() -> None:
    """One-object draws (the first draw of the stream is the count): each object is a solid axis-parallel ellipsoid
    at one level, centred within ±1.5 mm of the plane, and its extent along y ranges from a flat disc to a rod
    for sections of the same size."""
    rho = agar_disk(radius_mm=20.0)
    x, y, z = grid_3d_mm()
    ratios = []
    for seed in range(400):
        if np.random.default_rng(seed).integers(1, 6) != 1:
            continue
        concentration = ellipsoids_of_random_extent(np.random.default_rng(seed), rho)
        inside = concentration > 0
        levels = concentration[inside].unique()
        assert len(levels) == 1 and 0.22 <= float(levels) <= 27.9
        xs, ys, zs = (c.expand_as(concentration)[inside] for c in (x, y, z))
        assert abs(float(ys.max() + ys.min()) / 2) <= 1.5 + VOXEL_3D_MM[1]    # centred near the plane
        semi = [(float(c.max() - c.min()) + step) / 2 for c, step in zip((xs, ys, zs), VOXEL_3D_MM, strict=True)]
        volume = float(inside.sum()) * float(np.prod(VOXEL_3D_MM))
        if semi[1] < 14.0:   # not cut by the grid's ends: each true semi-axis is within half a voxel of `semi`
            low, high = (4 / 3 * np.pi * np.prod([a + sign * step / 2
                                                  for a, step in zip(semi, VOXEL_3D_MM, strict=True)])
                         for sign in (-1, 1))
            assert 0.85 * low <= volume <= 1.15 * high                   # a solid ellipsoid, not a shell or a box
        ratios.append(semi[1] / np.sqrt(semi[0] * semi[2]))
        if len(ratios) == 30:
            break
    assert len(ratios) == 30 and min(ratios) < 0.8 and max(ratios) > 2.0  # discs and rods, not one typical extent


def test_a_capsule_has_the_volume_of_a_rod_with_round_ends() -> None:
    radius, half_length = 2.0, 5.0   # large enough for the 1.25 mm steps along y to resolve it to ± 5 %
    for axis in (np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 1.0]) / np.sqrt(2.0), np.array([1.0, 0.0, 0.0])):
        mask = capsule((0.0, 0.0, 0.0), radius, half_length, axis)
        volume = float(mask.sum()) * float(np.prod(VOXEL_3D_MM))
        expected = np.pi * radius**2 * 2 * half_length + 4 / 3 * np.pi * radius**3
        assert volume == pytest.approx(expected, rel=0.05)
        assert capsule((0.0, 0.0, 0.0), radius, 0.0, axis).sum() == sphere((0.0, 0.0, 0.0), radius).sum()


def test_a_multilevel_metaball_splits_the_metaball_into_one_part_per_ball() -> None:
    centres, radii = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [3.0, 0.0, 3.5]]), np.array([2.0, 1.5, 2.5])
    parts = multilevel_metaball(centres, radii)
    union = torch.stack(parts).sum(0)
    assert int(union.max()) == 1                                         # disjoint
    assert torch.equal(union.bool(), metaball(centres, radii))            # together: the metaball
    for part, centre in zip(parts, centres, strict=True):                 # each ball's centre is in its own part
        x, y, z = (torch.argmin((g.flatten() - c).abs()) for g, c in zip(grid_3d_mm(), centre, strict=True))
        assert bool(part[x, y, z])


def test_varied_objects_take_a_level_per_part_within_the_training_range() -> None:
    low, high = acq.SPIO_CONCENTRATION_RANGE_UG_FE_PER_MM3
    levels = set()
    for seed in range(6):
        concentration = varied_concentration(np.random.default_rng(seed), agar_disk(radius_mm=20.0))
        values = concentration[concentration > 0]
        assert values.numel() > 0 and low <= float(values.min()) and float(values.max()) <= high
        levels.update(np.unique(values.numpy()).tolist())
    assert len(levels) > 6 * 1.5                                          # more levels than objects alone give


def _radius_mm(image: torch.Tensor) -> torch.Tensor:
    """Distance of each pixel's centre from the image's centre, mm."""
    centre = [n / 2 - 0.5 for n in image.shape]
    grids = np.meshgrid(*(np.arange(n) - c for n, c in zip(image.shape, centre, strict=True)), indexing="ij")
    return torch.from_numpy(np.hypot(*grids) * PIXEL_MM[0])


def test_rim_contrast_makes_a_bright_thin_rim_around_a_dim_interior() -> None:
    disk = agar_disk(radius_mm=10.0, centre_mm=(0.0, 0.0))
    radius_mm = _radius_mm(disk)
    peak = float(disk.max())
    for seed in range(5):
        out = rim_contrast(disk, np.random.default_rng(seed))
        torch.testing.assert_close(rim_contrast(disk, np.random.default_rng(seed)), out)
        assert float(out[disk <= 0.05 * peak].abs().max()) == 0.0  # nothing outside the tissue
        rim = out[(radius_mm > 10.0 - 0.9) & (radius_mm < 10.0 - 0.3)]  # within 1 mm of the edge: always rim
        interior = out[radius_mm < 10.0 - 4.5]  # deeper than the rim (≤ 3 mm) and its smoothing
        assert 0.6 * peak < float(rim.median()) <= 1.2 * peak
        assert 0.15 * peak - 1e-6 <= float(interior.median()) <= 0.5 * peak + 1e-6


def test_a_sample_is_drawn_on_the_base_it_is_given() -> None:
    disk = agar_disk(radius_mm=10.0, centre_mm=(0.0, 0.0))
    image, concentration, _ = random_sample_with_snr(9, 0, base=lambda rng: disk)
    assert concentration.shape == (1, *disk.shape) and concentration.sum() > 0
    # objects are centred on the disk's tissue, and the noise-free part of the image lies inside the disk's
    # footprint moved by at most the field's displacement: far outside it, the image is noise only
    far = torch.from_numpy(np.hypot(*np.meshgrid(*(np.arange(n) - n / 2 + 0.5 for n in disk.shape),
                                                 indexing="ij")) * PIXEL_MM[0] > 22.0)
    assert float(image.abs().sum(0)[far].mean()) < 0.2 * float(image.abs().sum(0)[disk > 0].mean())


def test_head_anatomy_adds_scalp_outside_the_tissue_and_keeps_it_inside() -> None:
    disk = agar_disk(radius_mm=8.0, centre_mm=(0.0, 0.0))
    radius_mm = _radius_mm(disk)
    for seed in range(5):
        out = head_anatomy(disk, np.random.default_rng(seed))
        assert out.shape == disk.shape and torch.isfinite(out).all() and out.min() >= 0
        torch.testing.assert_close(head_anatomy(disk, np.random.default_rng(seed)), out)
        # beyond CSF + skull + scalp (at most 3 + 8 + 9 mm, plus a pixel of smoothing) there is only air
        assert float(out[radius_mm > 8.0 + 20.0 + 1.5].abs().max()) == 0.0
        # the scalp: a ring of bright signal (≥ 0.5 × the tissue's) 3.5–20 mm outside the tissue
        ring = (radius_mm > 8.0 + 3.5) & (radius_mm < 8.0 + 20.0)
        assert float(out[ring].max()) > 0.5
        # the layer right outside the tissue (CSF, then skull) is darker than the tissue
        assert float(out[(radius_mm > 8.6) & (radius_mm < 9.0)].mean()) < 0.5
        # inside, the tissue keeps its level within the texture (≤ 0.1 · 4 sd) and vessels (0.1–2 ×)
        inside = out[radius_mm < 7.0]
        assert 0.7 < float(inside.median()) < 1.3 and float(inside.max()) <= 2.0 * 1.5


@pytest.mark.parametrize(("option", "default"), [("noise_free_fraction", data.P_NOISE_FREE), ("noise_models", 0.0)])
def test_train_json_passes_noise_options_to_the_training_samples_only(option: str, default: float) -> None:
    config_file = Path(__file__).parents[2] / "monai_bundles/spio_quantification/configs/train.json"
    for given, expected in ((None, default), (0.25, 0.25)):
        config = ConfigParser(ConfigParser.load_config_file(str(config_file)))
        config.update({"pool_size": 0, "samples_per_epoch": 4, "n_val": 2, "cache_dir": None})
        if given is not None:
            config[option] = given
        module = config.get_parsed_content("datamodule")
        module.val_set = []
        module.setup("fit")
        assert getattr(module.train_set, option) == expected
