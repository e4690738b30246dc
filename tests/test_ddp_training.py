"""Every bundle's ``configs/train.json`` scales by configuration: a real two-process DDP run on CPU (gloo).

Each run trains for two tiny epochs with ``--trainer#accelerator cpu --trainer#devices 2 --trainer#strategy ddp``
(Lightning re-launches the ``monai.bundle run`` command once per rank), and must write, from rank 0 only, the network
of the best checkpoint that Lightning's ``ModelCheckpoint`` kept, as weights that load into the bundle's
``network_def`` (the inference one; for rim lesions one member of its ensemble). That the best epoch, not the last
one, is exported is checked in ``tests/test_best_checkpoint.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lightning_modules.bundle_app import bundle_root

DDP = ["--trainer#accelerator", "cpu", "--trainer#devices", "2", "--trainer#max_epochs", "2"]
#: What a rank prints when the other rank, or the rendezvous, went away (lower case).
LOST_PEER = ("address already in use", "remote worker crashing", "connection closed by peer",
             "connection reset by peer")


def _why_it_failed(output: str, lines: int = 150) -> str:
    """A failed run's error lines: every rank's traceback, without the INFO logging around them (which can push a
    rank's own error out of a head-and-tail excerpt: CI, session 43), then the output's last lines."""
    pattern = re.compile(r"Traceback|Error|Exception|error:|^\s*\[rank\d\]|^\s+File ")
    errors = [line for line in output.splitlines() if " - INFO - " not in line and pattern.search(line)]
    return "\n".join(errors[-lines:]) + "\n… the output's end:\n" + output[-1500:]


def _run_train(bundle: str, overrides: list[str], tmp_path: Path, *, config: str = "train.json",
               strategy: str = "ddp") -> str:
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file",
               str(Path(bundle_root(bundle)) / "configs" / config), *overrides, *DDP, "--trainer#strategy", strategy]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
    output = result.stdout + result.stderr
    if result.returncode != 0 and any(sign in output.lower() for sign in LOST_PEER):
        # Lightning picks the rendezvous port before the ranks bind it, so on a busy machine another process can take
        # it in between; and once (CI, session 43; not reproduced in 32 runs here, 28 beside two CPU hogs) a rank
        # lost its peer mid-run with the peer's own error out of view. Both are infrastructure races, not the
        # recipe's (a seeded run that fails for a reason of its own fails again): start the run once more, and say
        # why in a warning
        warnings.warn(f"DDP run restarted once after: {_why_it_failed(output, lines=40)}", stacklevel=2)
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)
        output = result.stdout + result.stderr
    assert result.returncode == 0, _why_it_failed(output)
    assert "Starting with 2 processes" in output
    return result.stdout


def _network_def(bundle: str, config: str, overrides: dict | None = None) -> torch.nn.Module:
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(Path(bundle_root(bundle)) / "configs" / config))
    for key, value in (overrides or {}).items():
        parser[key] = value
    return parser.get_parsed_content("network_def")


def _load_strict(bundle: str, path: Path, *, config: str = "inference.json", overrides: dict | None = None
                 ) -> torch.nn.Module:
    assert path.is_file(), f"{path} was not written"
    network = _network_def(bundle, config, overrides)
    network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))  # strict: every key matches
    return network.eval()


def _best_checkpoint_written(stdout: str, metric: str, model: Path) -> tuple[float, int]:
    """The best value of ``metric`` that ``save_best_network`` reports (rank 0 only) and the epoch of that checkpoint,
    after checking that ``model`` holds the network of that checkpoint."""
    lines = re.findall(rf"best {metric} ([0-9.]+) \((.+epoch=(\d+)-step=\d+\.ckpt)\), wrote", stdout)
    assert len(lines) == 1, stdout[-2000:]
    value, checkpoint, epoch = lines[0]
    best = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    written = torch.load(model, map_location="cpu", weights_only=True)
    assert written.keys() == {k.removeprefix("network.") for k in best if k.startswith("network.")}
    assert all(torch.equal(v, best["network." + k]) for k, v in written.items())
    return float(value), int(epoch)


def test_spio_ddp_writes_the_best_weights_validated_on_the_whole_validation_set(tmp_path):
    from lightning_modules.spio.data import simulate_pool
    from lightning_modules.spio.module import sample_nmae

    model = tmp_path / "model.pt"
    stdout = _run_train("spio_quantification", ["--work_dir", str(tmp_path / "work"), "--model_path", str(model),
                                                "--pool_size", "0", "--samples_per_epoch", "8", "--batch_size", "2",
                                                "--n_val", "4"], tmp_path)
    best, _ = _best_checkpoint_written(stdout, "val_nmae", model)
    network = _load_strict("spio_quantification", model)
    images, truths = simulate_pool(1, 4, log_every=0)  # the validation set (seed 0 + 1), stored as in training
    with torch.no_grad():
        predicted = network(images.float()).clamp_min(0.0)
    # each rank validated two of the four samples; the logged value is their mean over both ranks
    assert float(sample_nmae(predicted, truths.float()).mean()) == pytest.approx(best, abs=6e-5 * best)


def test_qsm_ddp_training_writes_loadable_weights(tmp_path):
    model = tmp_path / "model.pt"
    stdout = _run_train("qsm_dipole_inversion", ["--log_dir", str(tmp_path / "logs"), "--model_path", str(model),
                                                 "--patch_size", "32", "--train_samples", "8", "--val_samples", "4",
                                                 "--batch_size", "2", "--trainer#limit_train_batches", "2",
                                                 "--trainer#max_time", "None"], tmp_path)
    _best_checkpoint_written(stdout, "val_nrmse", model)
    _load_strict("qsm_dipole_inversion", model, overrides={"method": "learned_ndi"})


def test_qsmgan_ddp_training_runs_both_phases(tmp_path):
    # a GAN's generator and critic take turns, so DDP must be told that some parameters go unused in a backward pass;
    # the in-vivo data module reads subjects in the layout of ../shared/data/qsm_invivo (here simulated ones)
    from tests.qsm.test_qsm_invivo_data import write_subject

    data = tmp_path / "subjects"
    data.mkdir()
    write_subject(data, "a", seed=0)
    write_subject(data, "b", seed=1)
    model = tmp_path / "qsmgan.pt"
    stdout = _run_train("qsm_dipole_inversion", ["--log_dir", str(tmp_path / "logs"), "--model_path", str(model),
                                                 "--data_dir", str(data), "--train_subjects", "['a']",
                                                 "--val_subjects", "['b']", "--saver#monitor",
                                                 "val_nrmse_adversarial", "--patch_size", "32", "--val_samples", "4",
                                                 "--batch_size", "2", "--adversarial_start_epoch", "1",
                                                 "--n_critic", "2", "--trainer#limit_train_batches", "2",
                                                 "--trainer#max_time", "None"], tmp_path,
                        config="train_qsmgan.json", strategy="ddp_find_unused_parameters_true")
    _, epoch = _best_checkpoint_written(stdout, "val_nrmse_adversarial", model)
    assert epoch == 1  # the adversarial phase ran and only its epoch could be chosen
    _load_strict("qsm_dipole_inversion", model, config="train_qsmgan.json")


def test_ivim_ddp_training_writes_loadable_weights_once(tmp_path):
    model = tmp_path / "model.pt"
    stdout = _run_train("ivim_mapping", ["--output_file", str(model), "--n_simulated", "4000"], tmp_path)
    assert stdout.count("wrote") == 1
    network = _load_strict("ivim_mapping", model)
    assert all(np.isfinite(p.detach().numpy()).all() for p in network.parameters())


def test_rim_ddp_training_builds_the_cache_once_and_judges_the_whole_validation_fold(tmp_path):
    model, stats = tmp_path / "model.pt", tmp_path / "radiomics_standardisation.json"
    stdout = _run_train("rim_lesion_detection", ["--work_dir", str(tmp_path / "work"), "--model_path", str(model),
                                                 "--stats_path", str(stats), "--n_subjects", "4", "--n_folds", "2",
                                                 "--batch_size", "8", "--cache_workers", "1"], tmp_path)
    _best_checkpoint_written(stdout, "val_selection", model)
    assert sorted(p.name for p in (tmp_path / "work" / "lesions").iterdir()) == [
        f"subject_{i:06d}.npz" for i in range(4)]  # no temporary files left by two ranks building at once
    assert stats.is_file()
    _load_strict("rim_lesion_detection", model, config="train.json")  # one member of the inference ensemble


@pytest.mark.parametrize("rank_zero", [True, False])
def test_save_best_network_writes_only_on_global_rank_zero(tmp_path, rank_zero):
    from types import SimpleNamespace

    from lightning_modules.training import save_best_network

    module = SimpleNamespace(network=torch.nn.Linear(2, 1), trainer=SimpleNamespace(is_global_zero=rank_zero))
    no_validation = SimpleNamespace(best_model_path="", best_model_score=None)
    assert save_best_network(no_validation, module, tmp_path / "c.pt").is_file() == rank_zero
