"""The shipped rim classifier: a cross-validation ensemble of QSMRim-Net members.

Each member is the same :class:`~lightning_modules.rim.networks.QsmRimNet` that ``configs/train.json`` trains,
with a different stratified fold held out for validation (``--val_fold k``, k = 0…n_folds−1) and one shared
radiomics standardisation (``--datamodule#stats_from``). The ensemble's rim+ logit is the mean of the members'
logits, which removes much of the seed-to-seed scatter of a single network trained on a few hundred rim+
lesions. The mean logit is then calibrated, ``a · z + b`` (Platt / temperature scaling,
:mod:`lightning_modules.rim.calibration`; ``a = 1, b = 0`` when not calibrated).

Two ways to assemble trained members into the bundle's ``models/model.pt``:

- cross-validation members (synthetic shapes, member k held out fold k): the threshold is F1-optimal on the
  out-of-fold probabilities (every training lesion scored by the member that did not train on it)::

    python -m lightning_modules.rim.ensemble --members m0.pt m1.pt m2.pt m3.pt m4.pt \\
        --cache_dir ~/.cache/qsm_slicer_extension/rim/lesions \\
        --output monai_bundles/rim_lesion_detection/models/model.pt

- members validated on the same held-out subjects (real lesion shapes, ``--val_subjects``): the calibration
  ``a, b`` is fitted on the ensemble's logits of those subjects' lesions, and the threshold is the F1-optimal
  one on their calibrated probabilities.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lightning_modules.rim.networks import QsmRimNet
from lightning_modules.rim.scores import best_f1_threshold, pr_auc, roc_auc


class QsmRimNetEnsemble(nn.Module):
    """Mean rim+ logit of ``n_members`` QSMRim-Net members (keyword arguments are passed to each member).

    Like a single :class:`QsmRimNet` it has a ``threshold`` buffer (the validated operating point) and
    ``forward(patches, radiomics) → logits (B,)``; it is for inference only (DeepSMOTE is a training-time layer of
    each member).
    """

    def __init__(self, n_members: int = 5, **member_kwargs) -> None:
        super().__init__()
        if n_members < 1:
            raise ValueError(f"an ensemble needs at least one member, got n_members={n_members}")
        self.members = nn.ModuleList(QsmRimNet(**member_kwargs) for _ in range(n_members))
        self.register_buffer("threshold", torch.tensor(0.5))
        self.register_buffer("logit_scale", torch.tensor(1.0))
        self.register_buffer("logit_bias", torch.tensor(0.0))

    def mean_logit(self, patches: torch.Tensor, radiomics: torch.Tensor | None = None) -> torch.Tensor:
        """The members' mean rim+ logit (B,), before calibration."""
        return torch.stack([member(patches, radiomics) for member in self.members]).mean(0)

    def forward(self, patches: torch.Tensor, radiomics: torch.Tensor | None = None) -> torch.Tensor:
        """Calibrated rim+ logits (B,): ``logit_scale · mean logit + logit_bias``."""
        return self.logit_scale * self.mean_logit(patches, radiomics) + self.logit_bias

    @classmethod
    def from_member_files(cls, paths: Sequence[str | os.PathLike], **member_kwargs) -> QsmRimNetEnsemble:
        """An ensemble whose members hold the ``state_dict`` files ``paths`` (as written by training)."""
        ensemble = cls(len(paths), **member_kwargs)
        for member, path in zip(ensemble.members, paths):
            member.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return ensemble.eval()


class LesionRimClassifier(QsmRimNetEnsemble):
    """The bundle's ``network_def``: the QSMRim-Net ensemble with MONAI's one-tensor interface (same weights).

    ``forward(patches)`` takes lesion patches (B, 3, p, p, p) — QSM in ppm, FLAIR divided by its brain median,
    the lesion's mask (0/1) — and returns calibrated rim+ logits (B, 1) (σ gives the rim+ probability). The
    standardised radiomic features (B, n_radiomics) arrive as the keyword ``radiomics`` (the bundle passes them
    with ``PrepareBatchExtraInput``); without them every feature is at its training mean (z-score 0), which is
    what MONAI's ``verify_net_in_out`` runs. A case's batch of lesions, (1, N, 3, p, p, p) with radiomics
    (1, N, n_radiomics), gives (1, N, 1).
    """

    def forward(self, patches: torch.Tensor, radiomics: torch.Tensor | None = None) -> torch.Tensor:
        lead = patches.shape[:-4]
        patches = patches.reshape(-1, *patches.shape[-4:])
        if radiomics is None and self.members[0].mlp is not None:
            radiomics = patches.new_zeros(patches.shape[0], self.members[0].n_radiomics)
        elif radiomics is not None:
            radiomics = radiomics.reshape(patches.shape[0], -1)
        return super().forward(patches, radiomics).reshape(*lead, 1)


@torch.no_grad()
def out_of_fold_probabilities(members: Sequence[nn.Module], patches: np.ndarray, features: np.ndarray,
                              folds: np.ndarray, *, batch: int = 256) -> np.ndarray:
    """Rim+ probability of every lesion from the member that held its fold out (member k ↔ fold k)."""
    probabilities = np.full(len(folds), np.nan)
    for k, member in enumerate(members):
        index = np.flatnonzero(folds == k)
        for start in range(0, len(index), batch):
            rows = index[start:start + batch]
            logits = member.eval()(torch.as_tensor(patches[rows], dtype=torch.float32),
                                   torch.as_tensor(features[rows], dtype=torch.float32))
            probabilities[rows] = torch.sigmoid(logits).numpy()
    return probabilities


@torch.no_grad()
def ensemble_mean_logits(ensemble: QsmRimNetEnsemble, patches: np.ndarray, features: np.ndarray, *,
                         batch: int = 256) -> np.ndarray:
    """The ensemble's uncalibrated mean logits of cached lesions."""
    out = [ensemble.eval().mean_logit(torch.as_tensor(patches[i:i + batch], dtype=torch.float32),
                                      torch.as_tensor(features[i:i + batch], dtype=torch.float32)).numpy()
           for i in range(0, len(patches), batch)]
    return np.concatenate(out).astype(np.float64)


def main(argv: Sequence[str] | None = None) -> None:
    from lightning_modules.rim.calibration import expected_calibration_error, fit_platt
    from lightning_modules.rim.data import load_cache, stratified_folds
    from lightning_modules.rim.radiomics import FeatureStandardiser

    parser = argparse.ArgumentParser(description="Assemble trained members into the shipped QSMRim-Net ensemble.")
    parser.add_argument("--members", nargs="+", required=True, help="member k's weights (trained with --val_fold k)")
    parser.add_argument("--cache_dir", required=True, help="the lesion cache (subject_*.npz)")
    parser.add_argument("--n_subjects", type=int, default=56)
    parser.add_argument("--n_folds", type=int, default=5, help="the folds used in training (one member per fold)")
    parser.add_argument("--seed", type=int, default=0, help="the split seed used in training")
    parser.add_argument("--val_subjects", nargs="+", default=None,
                        help="subject keys the members were validated on (e.g. patient12_s0): calibrate the "
                             "ensemble and choose its threshold on their lesions instead of out of fold")
    parser.add_argument("--val_role", choices=("validation",), default=None,
                        help="the same with the real-shape subjects of this role (real_shapes.PATIENT_SPLIT)")
    parser.add_argument("--stats", default=None, help="shared standardisation (default: next to --output)")
    parser.add_argument("--member_options", type=json.loads, default={},
                        help='QsmRimNet options of the members as JSON, e.g. \'{"use_patch": false, "smote_k": 0}\'')
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    if args.val_role:
        from lightning_modules.rim.real_shapes import subject_keys

        args.val_subjects = subject_keys(args.val_role)
    if args.val_subjects is None and len(args.members) != args.n_folds:
        parser.error(f"give one member per fold: {len(args.members)} members for {args.n_folds} folds")
    output = Path(args.output)
    stats = Path(args.stats) if args.stats else output.with_name("radiomics_standardisation.json")
    standardiser = FeatureStandardiser.load(stats)
    keys = args.val_subjects if args.val_subjects is not None else [f"{s:06d}" for s in range(args.n_subjects)]
    data = load_cache([str(Path(args.cache_dir) / f"subject_{k}.npz") for k in keys])
    column = {n: i for i, n in enumerate(data["feature_names"].tolist())}
    features = standardiser(data["features"][:, [column[n] for n in standardiser.names]])
    labels = data["rim_positive"]
    ensemble = QsmRimNetEnsemble.from_member_files(args.members, n_radiomics=len(standardiser.names),
                                                   **args.member_options)
    if args.val_subjects is not None:
        logits = ensemble_mean_logits(ensemble, data["patches"], features)
        scale, bias = fit_platt(logits, labels)
        ensemble.logit_scale.fill_(scale)
        ensemble.logit_bias.fill_(bias)
        probabilities = 1 / (1 + np.exp(-(scale * logits + bias)))
        what = (f"validation ({len(keys)} subjects, {len(labels)} lesions, {int(labels.sum())} rim+): calibration "
                f"{scale:.3f} x logit + {bias:.3f}, ECE {expected_calibration_error(labels, probabilities):.4f} "
                f"(uncalibrated {expected_calibration_error(labels, 1 / (1 + np.exp(-logits))):.4f});")
    else:
        folds = stratified_folds(labels, n_folds=args.n_folds, seed=args.seed)
        probabilities = out_of_fold_probabilities(ensemble.members, data["patches"], features, folds)
        what = "out-of-fold"
    threshold, f1 = best_f1_threshold(labels, probabilities)
    ensemble.threshold.fill_(threshold)
    tmp = output.with_suffix(".tmp")
    torch.save(ensemble.state_dict(), tmp)
    os.replace(tmp, output)
    print(f"{len(args.members)} members; {what} ROC AUC {roc_auc(labels, probabilities):.4f}, PR AUC "
          f"{pr_auc(labels, probabilities):.4f}, threshold {threshold:.3f} (F1 {f1:.3f}); wrote {output}")


if __name__ == "__main__":
    main()
