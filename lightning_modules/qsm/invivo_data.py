"""Real in-vivo training data: local fields with a multi-orientation (COSMOS) reference, as random patches.

QSMGAN (Chen et al., NeuroImage 2020) and QSMnet (Yoon et al., NeuroImage 2018) learn from in-vivo fields with
COSMOS χ as the target; on real brains that is what a network trained on simulations alone lacked (noise that
is not white, background residue, anisotropy, the cut at the mask edge). A subject is a folder holding
``{name}_phs.nii.gz`` (local field, ppm), ``{name}_susc.nii.gz`` (COSMOS χ, ppm) and ``{name}_msk.nii.gz`` (the
layout of ``../shared/data/qsm_invivo/qsmnet_slabs``; 1 mm, B0 along the third array axis).

The network corrects a physics prior (the whole-volume TV inversion), so the prior is computed once per subject
on the whole volume, as at inference, and patches are cut from field, mask, prior and target alike. The target is
COSMOS shifted to the prior's mean over the mask (the field does not determine the mean of χ, and the network's
correction has zero mean). Augmentation keeps the physics: flips of any axis and the swap of the two axes
across B0 leave the dipole kernel unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from lightning_modules.physics.dipole import b0_direction_from_affine, dipole_kernel
from lightning_modules.qsm.qsmgan_inference import QsmganInversion


def load_invivo_subject(folder: str | Path, name: str) -> dict[str, np.ndarray]:
    """Field (ppm), COSMOS χ (ppm), mask (bool) and the affine of subject ``name`` in ``folder``.

    Raises:
        FileNotFoundError: a file of the subject is missing.
    """
    folder = Path(folder)
    images = {key: nib.load(folder / f"{name}_{suffix}.nii.gz") for key, suffix in
              (("field", "phs"), ("chi", "susc"), ("mask", "msk"))}
    mask = np.asarray(images["mask"].dataobj) > 0
    return {"field": np.where(mask, np.asarray(images["field"].dataobj, dtype=np.float32), 0.0).astype(np.float32),
            "chi": np.asarray(images["chi"].dataobj, dtype=np.float32), "mask": mask,
            "affine": images["field"].affine, "voxel_size_mm": np.asarray(images["field"].header.get_zooms()[:3])}


def prepare_subject(subject: dict[str, np.ndarray], network: QsmganInversion) -> dict[str, torch.Tensor]:
    """Whole-volume tensors for patch sampling: field, mask, the network's prior χ and the mean-matched COSMOS
    target."""
    field = torch.as_tensor(subject["field"])
    mask = torch.as_tensor(subject["mask"], dtype=torch.float32)
    voxel = [float(v) for v in subject["voxel_size_mm"]]
    kernel = dipole_kernel(field.shape, voxel, b0_direction_from_affine(subject["affine"]))
    estimate = network.prior_estimate(field, kernel, mask, voxel)
    inside = mask > 0
    chi = torch.as_tensor(subject["chi"])
    target = (chi - chi[inside].mean() + estimate[inside].mean()) * mask
    return {"field": field * mask, "mask": mask, "prior": estimate * mask, "chi": target}


class InvivoPatchDataset(Dataset):
    """``n_samples`` random ``patch_size``³ patches (with at least ``min_mask_fraction`` of brain) of prepared
    subjects, each drawn from its own seed ``(seed, index)``, randomly flipped and with the two axes across B0
    swapped half of the time."""

    def __init__(
        self, subjects: Sequence[dict[str, torch.Tensor]], *, n_samples: int, patch_size: int = 64, seed: int = 0,
        min_mask_fraction: float = 0.3, augment: bool = True,
    ) -> None:
        if not subjects:
            raise ValueError("InvivoPatchDataset needs at least one subject")
        self.subjects, self.n_samples, self.patch_size = list(subjects), int(n_samples), int(patch_size)
        self.seed, self.min_mask_fraction, self.augment = int(seed), float(min_mask_fraction), bool(augment)

    def __len__(self) -> int:
        return self.n_samples

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, int(index)])
        subject = self.subjects[int(rng.integers(len(self.subjects)))]
        volumes = {k: v for k, v in subject.items()}
        if self.augment and rng.random() < 0.5:
            volumes = {k: v.transpose(0, 1) for k, v in volumes.items()}
        shape = volumes["mask"].shape
        n = [min(self.patch_size, s) for s in shape]
        for _ in range(20):
            corner = [int(rng.integers(0, s - p + 1)) for s, p in zip(shape, n)]
            window = tuple(slice(c, c + p) for c, p in zip(corner, n))
            if float(volumes["mask"][window].mean()) >= self.min_mask_fraction:
                break
        patch = {k: _pad_to(v[window], self.patch_size) for k, v in volumes.items()}
        if self.augment:
            flips = [d for d in range(3) if rng.random() < 0.5]
            if flips:
                patch = {k: v.flip(flips) for k, v in patch.items()}
        return {k: v.contiguous().float() for k, v in patch.items()}


def _pad_to(volume: torch.Tensor, size: int) -> torch.Tensor:
    pad = []
    for s in reversed(volume.shape):
        pad += [0, size - s]
    return torch.nn.functional.pad(volume, pad) if any(pad) else volume


class InvivoQsmDataModule(pl.LightningDataModule):
    """Patches of the in-vivo subjects ``train_subjects`` in ``data_dir`` (see the module docstring).

    Args:
        data_dir: folder with the subjects' files (e.g. ``../shared/data/qsm_invivo/qsmnet_slabs``).
        train_subjects: names of the training subjects (e.g. ``["s1o1"]``).
        network: the physics-informed QSMGAN being trained; its ``prior`` (run once per subject on the whole
            volume) gives the estimate the generator corrects.
        val_subjects: subjects whose fixed patches (``val_samples`` of them, no augmentation) are validated on
            (empty: no validation, the final weights are saved; the shipped recipe validates on nothing, so no
            in-vivo subject is used for selection).
        train_samples: size of the patch index space (each epoch takes ``limit_train_batches`` random batches).
    """

    def __init__(
        self, *, data_dir: str, train_subjects: Sequence[str], network: QsmganInversion,
        val_subjects: Sequence[str] = (), train_samples: int = 100000, val_samples: int = 8, patch_size: int = 64,
        batch_size: int = 2, num_workers: int = 0, seed: int = 0,
    ) -> None:
        super().__init__()
        self.data_dir, self.train_subjects, self.network = data_dir, list(train_subjects), network
        self.train_samples, self.patch_size = int(train_samples), int(patch_size)
        self.batch_size, self.num_workers, self.seed = int(batch_size), int(num_workers), int(seed)
        self.val_subjects, self.val_samples = list(val_subjects), int(val_samples)
        self.train_set: InvivoPatchDataset | None = None
        self.val_set: InvivoPatchDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if not Path(self.data_dir).is_dir():
            raise FileNotFoundError(f"in-vivo data folder {self.data_dir!r} does not exist "
                                    "(see ../shared/data/README.md)")
        prepared = {name: prepare_subject(load_invivo_subject(self.data_dir, name), self.network)
                    for name in dict.fromkeys([*self.train_subjects, *self.val_subjects])}
        self.train_set = InvivoPatchDataset([prepared[n] for n in self.train_subjects], n_samples=self.train_samples,
                                            patch_size=self.patch_size, seed=self.seed)
        if self.val_subjects:
            self.val_set = InvivoPatchDataset([prepared[n] for n in self.val_subjects], n_samples=self.val_samples,
                                              patch_size=self.patch_size, seed=self.seed + 1, augment=False)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0,
                          generator=torch.Generator().manual_seed(self.seed))

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=0)
