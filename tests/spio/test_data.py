"""SPIO training data: on-the-fly samples are fresh every epoch and disjoint across DDP ranks and loader workers;
the intensity augmentation of the base images changes nothing when off and only intensities when on."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lightning_modules.spio import data
from lightning_modules.spio.data import OnTheFlyDataset, ViewLineDataModule, random_sample_with_snr
from lightning_modules.spio.phantoms import agar_disk, augment_base


def _fake_sample(seed: int, index: int, *, base_augmentation: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
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


def test_base_augmentation_needs_fresh_samples_and_reaches_the_dataset() -> None:
    with pytest.raises(ValueError, match="pool_size 0"):
        ViewLineDataModule(pool_size=100, base_augmentation=0.5)
    module = ViewLineDataModule(seed=0, pool_size=0, samples_per_epoch=4, batch_size=2, base_augmentation=0.5)
    module.val_set = []
    module.setup("fit")
    assert module.train_set.base_augmentation == 0.5
