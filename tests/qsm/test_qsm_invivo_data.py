"""In-vivo training data for QSMGAN: subject files → whole-volume prior and target → augmented patches, and a
Lightning run of ``train_qsmgan.json``'s module on them (synthetic subjects in the in-vivo file layout)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from lightning_modules.qsm.invivo_data import (
    InvivoPatchDataset,
    InvivoQsmDataModule,
    load_invivo_subject,
    prepare_subject,
)
from lightning_modules.qsm.methods import qsmgan_network
from lightning_modules.qsm.simulate import head_phantom, simulate_field


def write_subject(folder: Path, name: str, shape=(40, 36, 32), seed: int = 0) -> np.ndarray:
    """A simulated subject in the layout of ../shared/data/qsm_invivo/qsmnet_slabs (field, χ with an offset, mask)."""
    chi, brain = head_phantom(shape, (1.0, 1.0, 1.0), seed=seed)
    field = simulate_field(chi, brain, noise_std_ppm=1e-3, seed=seed).field_ppm
    for suffix, volume in (("phs", field), ("susc", chi + 0.05 * brain), ("msk", brain.astype(np.uint8))):
        nib.save(nib.Nifti1Image(np.asarray(volume, dtype=np.float32 if suffix != "msk" else np.uint8), np.eye(4)),
                 folder / f"{name}_{suffix}.nii.gz")
    return chi


def test_prepared_target_has_the_priors_mean_and_patches_are_transformed_alike(tmp_path):
    write_subject(tmp_path, "a")
    network = qsmgan_network()
    prepared = prepare_subject(load_invivo_subject(tmp_path, "a"), network)
    inside = prepared["mask"] > 0
    assert float(prepared["chi"][inside].mean()) == pytest.approx(float(prepared["prior"][inside].mean()), abs=1e-6)
    assert torch.all(prepared["prior"][~inside] == 0) and float(prepared["prior"].abs().max()) > 0.05
    # every key holds the same volume: any patch must then be equal across keys (same crop, flips, transpose)
    ramp = torch.arange(40 * 36 * 32, dtype=torch.float32).reshape(40, 36, 32)
    same = {"field": ramp, "chi": ramp.clone(), "prior": ramp.clone(), "mask": torch.ones(40, 36, 32)}
    data = InvivoPatchDataset([same], n_samples=20, patch_size=24, seed=3)
    transposed = 0
    for i in range(len(data)):
        patch = data[i]
        assert patch["field"].shape == (24, 24, 24)
        assert torch.equal(patch["field"], patch["chi"]) and torch.equal(patch["field"], patch["prior"])
        step = patch["field"][0, 1, 0] - patch["field"][0, 0, 0]
        transposed += abs(float(step)) == 32  # the j step of the ramp along axis 1 is 32; transposed it is 36·32
    assert 0 < transposed < 20


def test_datamodule_trains_the_generator_with_lightning(tmp_path):
    import pytorch_lightning as pl

    from lightning_modules.qsm.qsmgan_module import QsmganModule

    write_subject(tmp_path, "a", seed=0)
    write_subject(tmp_path, "b", seed=1)
    network = qsmgan_network()
    datamodule = InvivoQsmDataModule(data_dir=str(tmp_path), train_subjects=["a"], val_subjects=["b"],
                                     network=network, patch_size=32, batch_size=2, val_samples=2)
    before = [p.detach().clone() for p in network.generator.parameters()]
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=2, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(QsmganModule(network, adversarial_start_epoch=100), datamodule=datamodule)
    assert "val_nrmse" in trainer.callback_metrics
    assert any(not torch.equal(a, b) for a, b in zip(before, network.generator.parameters()))


def test_missing_data_folder_is_a_clear_error(tmp_path):
    datamodule = InvivoQsmDataModule(data_dir=str(tmp_path / "nope"), train_subjects=["a"], network=qsmgan_network())
    with pytest.raises(FileNotFoundError, match="in-vivo data folder"):
        datamodule.setup("fit")
