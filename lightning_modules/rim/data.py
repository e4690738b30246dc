"""Lesion-level training data: simulated subjects → cached patches + radiomic features, stratified splits.

Building the cache (:func:`build_cache`) runs the simulator and pyradiomics once per subject and stores one
``.npz`` per subject; training then reads only these small arrays. A subject is a seed of the synthetic-shape
simulator (:func:`lightning_modules.rim.synth.make_subject`, an ``int``) or a real-shape key ``patientNN_sS``
(:func:`lightning_modules.rim.real_shapes.make_real_shape_subject`, a ``str``). :class:`RimLesionDataModule`
either splits the lesions (not the subjects) into stratified folds (rim+ / rim− proportions kept) and uses one
fold for validation, as QSMRim-Net's lesion-level cross-validation (Zhang et al., NeuroImage: Clinical 2022),
or takes given training and validation subjects (patient-level split of the real-shape subjects).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_modules.rim.lesions import (
    describe_lesions,
    edge_minus_core_ppm,
    lesion_patches,
    normalise_flair,
)
from lightning_modules.rim.radiomics import FeatureStandardiser, feature_matrix, lesion_features, make_extractor


def subject_arrays(subject, extractor) -> dict[str, np.ndarray]:
    """Patches, radiomic features, rule scores, volumes and rim labels of every lesion of a synthetic subject."""
    from lightning_modules.io import voxel_sizes_mm

    voxel_mm = voxel_sizes_mm(subject.affine)
    lesions = describe_lesions(subject.labels, subject.affine)
    flair = normalise_flair(subject.flair, subject.brain)
    rows = [lesion_features(extractor, subject.qsm_ppm, subject.labels == les.label, voxel_mm) for les in lesions]
    names = sorted(set().union(*rows))
    return {
        "patches": lesion_patches(subject.qsm_ppm, flair, subject.labels, lesions, voxel_mm).astype(np.float16),
        "features": feature_matrix(rows, names),
        "feature_names": np.array(names),
        "rule_ppm": np.array([edge_minus_core_ppm(subject.qsm_ppm, subject.labels == les.label) for les in lesions]),
        "volume_mm3": np.array([les.volume_mm3 for les in lesions]),
        "rim_positive": subject.rim_positive[[les.label - 1 for les in lesions]].astype(np.int64),
    }


def _cache_path(cache_dir: str | os.PathLike, key: int | str) -> Path:
    name = key if isinstance(key, str) else f"{int(key):06d}"
    return Path(cache_dir) / f"subject_{name}.npz"


def make_any_subject(key: int | str):
    """The subject of a cache key: a synthetic-shape seed (int) or a real-shape key ``patientNN_sS`` (str)."""
    if isinstance(key, str):
        from lightning_modules.rim.real_shapes import make_real_shape_subject, parse_key

        return make_real_shape_subject(*parse_key(key))
    from lightning_modules.rim.synth import make_subject

    return make_subject(int(key))


def _build_one(args: tuple[int | str, str, str]) -> None:
    torch.set_num_threads(1)
    key, cache_dir, params = args
    path = _cache_path(cache_dir, key)
    if not path.is_file():
        arrays = subject_arrays(make_any_subject(key), make_extractor(params))
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")  # several processes may build at once (DDP)
        np.savez(tmp, **arrays)
        os.replace(tmp, path)


def build_cache(seeds: list[int | str], cache_dir: str | os.PathLike, *, params: str | os.PathLike,
                workers: int = 1) -> list[str]:
    """Simulate the subjects ``seeds`` (synthetic seeds or real-shape keys) and cache their lesion arrays in
    ``cache_dir`` (existing files are kept)."""
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    jobs = [(s if isinstance(s, str) else int(s), str(cache_dir), str(params)) for s in seeds
            if not _cache_path(cache_dir, s).is_file()]
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            _build_one(job)
    else:  # only when something is missing: setup() after prepare_data() finds everything built
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_build_one, jobs))
    return [str(_cache_path(cache_dir, s)) for s in seeds]


def load_cache(paths: list[str]) -> dict[str, np.ndarray]:
    """Concatenate cached subjects (feature columns aligned by name; absent features → NaN)."""
    parts = [dict(np.load(p)) for p in paths]
    names = sorted(set().union(*(set(p["feature_names"].tolist()) for p in parts)))
    features = []
    for part in parts:
        index = {n: i for i, n in enumerate(part["feature_names"].tolist())}
        cols = [part["features"][:, index[n]] if n in index else np.full(len(part["features"]), np.nan)
                for n in names]
        features.append(np.stack(cols, 1).astype(np.float32))
    out = {k: np.concatenate([p[k] for p in parts]) for k in ("patches", "rule_ppm", "volume_mm3", "rim_positive")}
    out["features"] = np.concatenate(features)
    out["feature_names"] = np.array(names)
    return out


def stratified_folds(labels: np.ndarray, *, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fold index (0..n_folds-1) of every lesion, rim+ and rim− each spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    folds = np.zeros(len(labels), dtype=np.int64)
    for value in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == value))
        folds[index] = np.arange(len(index)) % n_folds
    return folds


def augment_patches(patches: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random flips along each axis and 90° turns in the axial plane (both keep B0 ∥ k and the dipole pattern)."""
    for axis in (2, 3, 4):
        if torch.rand((), generator=generator) < 0.5:
            patches = patches.flip(axis)
    turns = int(torch.randint(0, 4, (), generator=generator))
    return torch.rot90(patches, turns, dims=(2, 3))


class RimLesionDataModule(pl.LightningDataModule):
    """Cached synthetic lesions, one stratified fold as validation, standardised radiomic features.

    Args:
        cache_dir: folder of the per-subject ``.npz`` files (built if missing).
        params: pyradiomics YAML of the bundle.
        stats_path: where the feature standardisation statistics of the training lesions are written.
        n_subjects: number of training subjects (seeds ``0..n_subjects-1``).
        n_folds: number of stratified folds; fold ``val_fold`` is the validation set.
        val_fold: validation fold.
        batch_size: lesions per batch.
        seed: split seed.
        workers: processes used to build the cache.
        stats_from: standardisation statistics to reuse instead of fitting them on this split's training lesions
            (so that the members of a cross-validation ensemble share one standardisation); copied to ``stats_path``.
        train_subjects, val_subjects: subject keys (e.g. real-shape ``patientNN_sS``) for training and validation;
            when given they replace ``n_subjects`` and the lesion folds (a subject-level split).
    """

    def __init__(self, *, cache_dir: str, params: str, stats_path: str, n_subjects: int = 48, n_folds: int = 5,
                 val_fold: int = 0, batch_size: int = 64, seed: int = 0, workers: int = 1,
                 stats_from: str | None = None, train_subjects: list[str] | None = None,
                 val_subjects: list[str] | None = None) -> None:
        super().__init__()
        self.cache_dir, self.params, self.stats_path, self.stats_from = cache_dir, params, stats_path, stats_from
        self.n_subjects, self.n_folds, self.val_fold = n_subjects, n_folds, val_fold
        self.batch_size, self.seed, self.workers = batch_size, seed, workers
        if (train_subjects is None) != (val_subjects is None):
            raise ValueError("give both train_subjects and val_subjects, or neither")
        self.train_subjects, self.val_subjects = train_subjects, val_subjects
        self.feature_names: list[str] = []

    def _subjects(self) -> list[int | str]:
        if self.train_subjects is not None:
            return [*self.train_subjects, *self.val_subjects]
        return list(range(self.n_subjects))

    def prepare_data(self) -> list[str]:
        """Build the lesion cache (Lightning runs this once per node, on local rank 0, before ``setup``); its files."""
        return build_cache(self._subjects(), self.cache_dir, params=self.params, workers=self.workers)

    def setup(self, stage: str | None = None) -> None:
        paths = self.prepare_data()  # the files exist by now (or, outside a Trainer, are built here)
        data = load_cache(paths)
        if self.train_subjects is not None:
            counts = [len(np.load(p)["rim_positive"]) for p in paths[:len(self.train_subjects)]]
            train = np.arange(len(data["rim_positive"])) < sum(counts)
            val = ~train
        else:
            folds = stratified_folds(data["rim_positive"], n_folds=self.n_folds, seed=self.seed)
            train, val = folds != self.val_fold, folds == self.val_fold
        names = data["feature_names"].tolist()
        if self.stats_from:
            standardiser = FeatureStandardiser.load(self.stats_from)
            missing = sorted(set(standardiser.names) - set(names))
            if missing:
                raise ValueError(f"{self.stats_from} standardises {len(missing)} features the cache lacks, e.g. "
                                 f"{missing[0]}")
            column = {n: i for i, n in enumerate(names)}
            features = data["features"][:, [column[n] for n in standardiser.names]]
        else:
            standardiser, features = FeatureStandardiser.fit(names, data["features"][train]), data["features"]
        standardiser.save(self.stats_path)
        self.feature_names = standardiser.names

        def tensors(index: np.ndarray) -> TensorDataset:
            return TensorDataset(torch.as_tensor(data["patches"][index], dtype=torch.float32),
                                 torch.as_tensor(standardiser(features[index])),
                                 torch.as_tensor(data["rim_positive"][index], dtype=torch.float32))

        self.train_set, self.val_set = tensors(train), tensors(val)
        print(f"lesions: {train.sum()} training ({int(data['rim_positive'][train].sum())} rim+), "
              f"{val.sum()} validation ({int(data['rim_positive'][val].sum())} rim+), "
              f"{len(self.feature_names)} radiomic features", flush=True)

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, drop_last=True,
                          generator=generator)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=256)
