"""The shipped cross-validation ensemble: mean of member logits, out-of-fold scoring, shared standardisation."""

from __future__ import annotations

import numpy as np
import numpy.testing as npt
import pytest
import torch
from torch import nn

from lightning_modules.rim.data import RimLesionDataModule, stratified_folds
from lightning_modules.rim.ensemble import QsmRimNetEnsemble, out_of_fold_probabilities
from lightning_modules.rim.radiomics import FeatureStandardiser

PATCH = (3, 32, 32, 32)


def test_ensemble_logit_is_the_mean_of_its_members() -> None:
    torch.manual_seed(0)
    ensemble = QsmRimNetEnsemble(3, n_radiomics=6).eval()
    patches, features = torch.randn(4, *PATCH) * 0.05, torch.randn(4, 6)
    with torch.no_grad():
        members = torch.stack([m(patches, features) for m in ensemble.members])
        npt.assert_allclose(ensemble(patches, features).numpy(), members.mean(0).numpy(), rtol=1e-5, atol=1e-6)
    assert members.std(0).min() > 0  # the members differ, so the mean is not trivially one of them
    assert "threshold" in ensemble.state_dict()
    with pytest.raises(ValueError, match="at least one member"):
        QsmRimNetEnsemble(0)


def test_members_load_from_their_training_files(tmp_path) -> None:
    torch.manual_seed(1)
    paths = []
    for k in range(2):
        member = QsmRimNetEnsemble(1, n_radiomics=4).members[0]
        paths.append(tmp_path / f"m{k}.pt")
        torch.save(member.state_dict(), paths[-1])
    ensemble = QsmRimNetEnsemble.from_member_files(paths, n_radiomics=4)
    assert not ensemble.training
    for member, path in zip(ensemble.members, paths):
        for name, value in torch.load(path, weights_only=True).items():
            assert torch.equal(member.state_dict()[name], value), name


class _Constant(nn.Module):
    def __init__(self, logit: float) -> None:
        super().__init__()
        self.logit = logit

    def forward(self, patches: torch.Tensor, radiomics: torch.Tensor) -> torch.Tensor:
        return torch.full((patches.shape[0],), self.logit)


def test_out_of_fold_scores_come_from_the_member_that_held_the_fold_out() -> None:
    labels = np.array([0] * 40 + [1] * 10)
    folds = stratified_folds(labels, n_folds=5, seed=0)
    members = [_Constant(float(k)) for k in range(5)]
    oof = out_of_fold_probabilities(members, np.zeros((50, 1)), np.zeros((50, 2)), folds, batch=7)
    npt.assert_allclose(oof, 1 / (1 + np.exp(-folds.astype(float))), rtol=1e-6)


def _fake_subject(path, rng, names) -> None:
    n = 20
    np.savez(path, patches=rng.normal(size=(n, 3, 4, 4, 4)).astype(np.float16),
             features=rng.normal(size=(n, len(names))), feature_names=np.array(names),
             rule_ppm=rng.normal(size=n), volume_mm3=rng.uniform(10, 100, n),
             rim_positive=(np.arange(n) % 5 == 0).astype(np.int64))


def test_datamodule_reuses_given_standardisation_in_its_column_order(tmp_path) -> None:
    rng = np.random.default_rng(0)
    names = ["a", "b", "c"]
    for seed in range(2):
        _fake_subject(tmp_path / f"subject_{seed:06d}.npz", rng, names)
    shared = FeatureStandardiser(["c", "a"], np.array([1.0, -1.0]), np.array([2.0, 0.5]))
    shared.save(tmp_path / "shared.json")
    data = RimLesionDataModule(cache_dir=str(tmp_path), params="unused.yaml", stats_path=str(tmp_path / "out.json"),
                               n_subjects=2, val_fold=1, stats_from=str(tmp_path / "shared.json"))
    data.setup()
    assert data.feature_names == ["c", "a"]
    raw = np.concatenate([np.load(tmp_path / f"subject_{s:06d}.npz")["features"] for s in range(2)])
    val = stratified_folds(np.tile((np.arange(20) % 5 == 0).astype(np.int64), 2), n_folds=5, seed=0) == 1
    expected = np.stack([(raw[val, 2] - 1.0) / 2.0, (raw[val, 0] + 1.0) / 0.5], 1)
    npt.assert_allclose(data.val_set.tensors[1].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert FeatureStandardiser.load(tmp_path / "out.json").names == ["c", "a"]
    missing = FeatureStandardiser(["d"], np.zeros(1), np.ones(1))
    missing.save(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="lacks"):
        RimLesionDataModule(cache_dir=str(tmp_path), params="unused.yaml", stats_path=str(tmp_path / "o2.json"),
                            n_subjects=2, stats_from=str(tmp_path / "missing.json")).setup()


def test_weights_of_another_architecture_give_a_one_line_error(tmp_path) -> None:
    from lightning_modules.bundle_app import load_network
    from lightning_modules.io import InputError
    from lightning_modules.rim.networks import QsmRimNet

    path = tmp_path / "single.pt"
    torch.save(QsmRimNet(n_radiomics=4).state_dict(), path)
    with pytest.raises(InputError) as error:
        load_network(QsmRimNetEnsemble(2, n_radiomics=4), path)
    message = str(error.value)
    assert "\n" not in message and "single.pt" in message and "QsmRimNetEnsemble" in message
