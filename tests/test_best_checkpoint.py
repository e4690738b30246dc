"""Every bundle's training config ships the network of its best validated epoch, not its last one.

Each test runs the bundle's own ``train.json`` / ``train_qsmgan.json`` in this process for a few tiny epochs, with
the validation metric replaced by a scripted sequence whose best epoch is neither the first nor the last, and records
the network after every validation. Lightning's ``ModelCheckpoint`` (the config's ``saver``) must keep that epoch,
and ``save_best_network`` (the last step of the ``run`` list) must write its network to ``model_path`` as a plain
``state_dict``: the test fails if the last epoch's (or any other epoch's) weights were written.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from lightning_modules.bundle_app import bundle_root


class _Snapshots(pl.Callback):
    """The network's ``state_dict`` and the callback metrics after each validation (not the sanity check)."""

    def __init__(self) -> None:
        self.weights: dict[int, dict[str, torch.Tensor]] = {}
        self.metrics: dict[int, dict[str, float]] = {}

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self.weights[trainer.current_epoch] = {k: v.detach().clone() for k, v in pl_module.network.state_dict().items()}
        self.metrics[trainer.current_epoch] = {k: float(v) for k, v in trainer.callback_metrics.items()}


def _train(bundle: str, config: str, overrides: dict, script=None) -> tuple[_Snapshots, pl.LightningModule]:
    """Run ``config``'s ``run`` list with ``overrides``; ``script(module)`` may replace metrics before the run."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(Path(bundle_root(bundle)) / "configs" / config))
    for key, value in {"trainer#accelerator": "cpu", "trainer#enable_model_summary": False, **overrides}.items():
        parser[key] = value
    module = parser.get_parsed_content("lightning_module")
    if script is not None:
        script(module)
    snapshots = _Snapshots()
    parser.get_parsed_content("trainer").callbacks.append(snapshots)
    parser.get_parsed_content("run")
    return snapshots, module


def _scripted_log(metric: str, values: list[float]):
    """Replace the logged value of ``metric`` by ``values[current epoch]`` (a NaN stays NaN: metric undefined)."""

    def script(module: pl.LightningModule) -> None:
        log = module.log

        def scripted(name, value, *args, **kwargs):  # the names of LightningModule.log's arguments (log_dict's call)
            if name == metric and not torch.isnan(torch.as_tensor(value)).any():
                value = values[module.current_epoch]
            log(name, value, *args, **kwargs)

        module.log = scripted

    return script


def _assert_written(model: Path, expected: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> None:
    written = torch.load(model, map_location="cpu", weights_only=True)
    assert written.keys() == expected.keys()
    assert all(torch.equal(written[k], v) for k, v in expected.items())
    assert not all(torch.equal(written[k], v) for k, v in other.items())  # the epochs' weights differ


def test_spio_writes_the_best_epoch_not_the_last(tmp_path):
    model = tmp_path / "model.pt"
    overrides = {"work_dir": str(tmp_path / "work"), "model_path": str(model), "pool_size": 0,
                 "samples_per_epoch": 4, "batch_size": 2, "n_val": 2, "trainer#max_epochs": 3}
    snapshots, _ = _train("spio_quantification", "train.json", overrides, _scripted_log("val_nmae", [0.5, 0.2, 0.3]))
    assert [snapshots.metrics[e]["val_nmae"] for e in range(3)] == pytest.approx([0.5, 0.2, 0.3])
    _assert_written(model, snapshots.weights[1], snapshots.weights[2])


@pytest.fixture
def qsmgan_subjects(tmp_path) -> Path:
    from tests.qsm.test_qsm_invivo_data import write_subject

    data = tmp_path / "subjects"
    data.mkdir()
    write_subject(data, "a", seed=0)
    write_subject(data, "b", seed=1)
    return data


def _qsmgan_overrides(tmp_path: Path, data: Path, **more) -> dict:
    return {"log_dir": str(tmp_path / "logs"), "model_path": str(tmp_path / "qsmgan.pt"), "data_dir": str(data),
            "train_subjects": ["a"], "val_subjects": ["b"], "saver#monitor": "val_nrmse_adversarial",
            "patch_size": 32, "val_samples": 2, "batch_size": 2, "n_critic": 1, "trainer#limit_train_batches": 1,
            "trainer#max_time": None, **more}


def test_qsmgan_writes_the_best_adversarial_phase_epoch(tmp_path, qsmgan_subjects):
    # epoch 0 is pre-training: its adversarial NRMSE is NaN (were it logged, the scripted 0.01 would win), which
    # must neither stop ModelCheckpoint nor be chosen
    overrides = _qsmgan_overrides(tmp_path, qsmgan_subjects, adversarial_start_epoch=1, **{"trainer#max_epochs": 4})
    script = _scripted_log("val_nrmse_adversarial", [0.01, 0.5, 0.2, 0.3])
    snapshots, _ = _train("qsm_dipole_inversion", "train_qsmgan.json", overrides, script)
    adversarial = [snapshots.metrics[e]["val_nrmse_adversarial"] for e in range(4)]
    assert math.isnan(adversarial[0]) and adversarial[1:] == pytest.approx([0.5, 0.2, 0.3])
    _assert_written(tmp_path / "qsmgan.pt", snapshots.weights[2], snapshots.weights[3])


def test_qsmgan_without_an_adversarial_epoch_writes_the_final_weights(tmp_path, qsmgan_subjects):
    overrides = _qsmgan_overrides(tmp_path, qsmgan_subjects, adversarial_start_epoch=100, **{"trainer#max_epochs": 2})
    snapshots, module = _train("qsm_dipole_inversion", "train_qsmgan.json", overrides)
    assert all(math.isnan(snapshots.metrics[e]["val_nrmse_adversarial"]) for e in range(2))
    _assert_written(tmp_path / "qsmgan.pt", module.network.state_dict(), snapshots.weights[0])


def test_rim_writes_the_best_epoch_with_its_threshold_and_breaks_pr_auc_ties_by_roc_auc(tmp_path, monkeypatch):
    import lightning_modules.rim.module as rim_module
    from lightning_modules.rim.lesions import PATCH_VOXELS

    # epochs 1 and 2 tie at PR AUC 1.0; epoch 2 has the higher ROC AUC; epoch 3 (the last) is worse
    pr, roc = [0.8, 1.0, 1.0, 0.9], [0.7, 0.8, 0.95, 0.99]
    modules: list[pl.LightningModule] = []

    def script(module: pl.LightningModule) -> None:
        modules.append(module)
        monkeypatch.setattr(rim_module, "pr_auc", lambda labels, scores: pr[module.current_epoch])
        monkeypatch.setattr(rim_module, "roc_auc", lambda labels, scores: roc[module.current_epoch])

    # a lesion cache of random patches and features (the scripted AUCs replace what the network makes of them)
    rng = np.random.default_rng(0)
    cache, n = tmp_path / "lesions", 12
    cache.mkdir()
    for subject in range(2):
        np.savez(cache / f"subject_{subject:06d}.npz",
                 patches=rng.normal(size=(n, 3, PATCH_VOXELS, PATCH_VOXELS, PATCH_VOXELS)).astype(np.float16),
                 features=rng.normal(size=(n, 4)), feature_names=np.array(["a", "b", "c", "d"]),
                 rule_ppm=rng.normal(size=n), volume_mm3=rng.uniform(10, 100, n),
                 rim_positive=(np.arange(n) % 3 == 0).astype(np.int64))
    model = tmp_path / "model.pt"
    overrides = {"work_dir": str(tmp_path / "work"), "cache_dir": str(cache), "model_path": str(model),
                 "stats_path": str(tmp_path / "radiomics_standardisation.json"), "n_subjects": 2, "n_folds": 2,
                 "n_radiomics": 4, "batch_size": 4, "max_epochs": 4}
    snapshots, _ = _train("rim_lesion_detection", "train.json", overrides, script)
    assert [snapshots.metrics[e]["val_pr_auc"] for e in range(4)] == pytest.approx(pr)
    _assert_written(model, snapshots.weights[2], snapshots.weights[3])
    # the shipped threshold is the F1-optimal one of the chosen epoch's validation
    threshold = torch.load(model, map_location="cpu", weights_only=True)["threshold"]
    assert float(threshold) == pytest.approx(snapshots.metrics[2]["val_threshold"])


def test_rim_selection_score_is_pr_auc_then_roc_auc():
    from lightning_modules.rim.module import selection_score

    assert selection_score(1.0, 0.8) < selection_score(1.0, 0.81) < selection_score(1.0, 0.99)
    assert selection_score(0.9, 1.0) < selection_score(0.9 + 1e-6, 0.0)
    assert selection_score(0.5, 0.5).dtype == torch.float64
