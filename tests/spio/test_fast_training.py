"""Fast CPU training (issue 24, session 22): the channels-last layout trains the same numbers as the default
layout; under bf16 mixed precision the network runs in bfloat16 while the losses and the validation NMAE stay
float32 (validation equals a float32 evaluation of the same weights); the validation NMAE averages the samples with
iron in the plane. Session 23: train.json's ``--ema_decay`` averages the weights, and the saved network is the
average."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
import torch
from monai.bundle import ConfigParser
from torch.utils.data import DataLoader

from lightning_modules.spio.data import random_sample
from lightning_modules.spio.module import DeepSpioModule, sample_nmae
from lightning_modules.spio.networks import DeepSpio
from lightning_modules.training import save_best_network


def small_deepspio() -> DeepSpio:
    return DeepSpio(encoder_widths=(4, 8, 8), bottleneck_channels=8, n_residual_blocks=1, decoder_widths=(4,))


def batch_of(indices) -> tuple[torch.Tensor, torch.Tensor]:
    samples = [random_sample(9, i) for i in indices]
    return torch.stack([s[0] for s in samples]), torch.stack([s[1] for s in samples])


def test_channels_last_gives_the_same_loss_gradients_and_portable_weights():
    batch = batch_of(range(2))
    modules = {}
    for channels_last in (False, True):
        torch.manual_seed(0)
        module = DeepSpioModule(network=small_deepspio(), channels_last=channels_last)
        module.log = lambda *args, **kwargs: None
        module.training_step(batch, 0).backward()
        modules[channels_last] = module
    plain, fast = modules[False], modules[True]
    first = fast.network.encoder[0][0].weight
    assert first.is_contiguous(memory_format=torch.channels_last) and not first.is_contiguous()
    for (name, p), q in zip(plain.named_parameters(), fast.parameters(), strict=True):
        scale = float(p.grad.abs().max())  # the layouts sum in other orders: rounding, not layout mistakes
        torch.testing.assert_close(q.grad, p.grad, rtol=0.0, atol=1e-4 * scale + 1e-7, msg=name)
    portable = small_deepspio().eval()
    portable.load_state_dict(fast.network.state_dict())  # loads into the default layout
    plain.network.eval()
    with torch.no_grad():
        torch.testing.assert_close(portable(batch[0]), plain.network(batch[0]), rtol=1e-5, atol=1e-5)


class Recorder(pl.Callback):
    """The dtype of the network's bottleneck features in training and in validation batches."""

    def __init__(self) -> None:
        self.dtypes: dict[str, set] = {"train": set(), "val": set()}

    def on_fit_start(self, trainer, module) -> None:
        module.network.bottleneck.register_forward_hook(
            lambda _m, _i, out: self.dtypes["train" if module.training else "val"].add(out.dtype))


def test_bf16_mixed_runs_the_network_in_bfloat16_and_validates_in_float32():
    train, val = batch_of(range(4)), batch_of(range(4, 6))
    torch.manual_seed(0)
    module = DeepSpioModule(network=small_deepspio(), channels_last=True)
    recorder = Recorder()
    trainer = pl.Trainer(precision="bf16-mixed", accelerator="cpu", max_steps=2, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[recorder], num_sanity_val_steps=0)
    trainer.fit(module, DataLoader(list(zip(*train, strict=True)), batch_size=2),
                DataLoader(list(zip(*val, strict=True)), batch_size=2))
    assert recorder.dtypes == {"train": {torch.bfloat16}, "val": {torch.float32}}
    module.eval()
    with torch.no_grad():
        expected = sample_nmae(module.network(val[0]).clamp_min(0.0), val[1]).mean()
    torch.testing.assert_close(trainer.callback_metrics["val_nmae"], expected, rtol=1e-5, atol=1e-6)
    assert all(p.dtype == torch.float32 for p in module.parameters())  # fp32 master weights


def test_validation_nmae_averages_the_samples_with_iron_and_skips_an_empty_plane():
    image, concentration = batch_of(range(3))
    concentration[1] = 0.0  # a sample without iron in the plane (sample 49 of seed 63 is one)
    torch.manual_seed(0)
    module = DeepSpioModule(network=small_deepspio()).eval()
    logged = {}
    module.log = lambda name, value, **kwargs: logged.__setitem__(name, (value, kwargs.get("batch_size")))
    with torch.no_grad():
        module.validation_step((image, concentration), 0)
        predicted = module.network(image).clamp_min(0.0)
    value, weight = logged["val_nmae"]
    expected = sample_nmae(predicted[[0, 2]], concentration[[0, 2]]).mean()
    torch.testing.assert_close(value, expected)
    assert weight == 2 and bool(torch.isfinite(value))
    logged.clear()
    module.validation_step((image[1:2], concentration[1:2]), 0)
    assert "val_nmae" not in logged and "val_loss" in logged  # an all-empty batch has no NMAE to log


TRAIN_CONFIG = Path(__file__).resolve().parents[2] / "monai_bundles" / "spio_quantification" / "configs" / "train.json"


def train_callbacks(**overrides) -> list:
    config = ConfigParser(ConfigParser.load_config_file(str(TRAIN_CONFIG)))
    config.update(overrides)
    return config.get_parsed_content("trainer#callbacks")


class WeightRecorder(pl.Callback):
    """The network's (raw) weights after every optimiser step."""

    def __init__(self) -> None:
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, module, *args) -> None:
        self.steps.append({k: v.detach().clone() for k, v in module.network.state_dict().items()})


def test_ema_decay_saves_the_moving_average_of_the_weights(tmp_path):
    assert [type(c).__name__ for c in train_callbacks()] == ["ModelCheckpoint"]  # the default: no averaging
    saver, ema = train_callbacks(ema_decay=0.5)
    assert isinstance(ema, pl.callbacks.EMAWeightAveraging)
    train, val = batch_of(range(6)), batch_of(range(6, 8))
    torch.manual_seed(0)
    module = DeepSpioModule(network=small_deepspio(), learning_rate=0.05)
    recorder = WeightRecorder()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=1, logger=False, default_root_dir=tmp_path,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         callbacks=[recorder, saver, ema])
    trainer.fit(module, DataLoader(list(zip(*train, strict=True)), batch_size=2),
                DataLoader(list(zip(*val, strict=True)), batch_size=2))
    saved = torch.load(save_best_network(saver, module, tmp_path / "ema.pt"), weights_only=True)
    name = "encoder.0.0.weight"
    average = recorder.steps[0][name]  # the first update copies, then average <- 0.5 average + 0.5 weights
    for step in recorder.steps[1:]:
        average = 0.5 * average + 0.5 * step[name]
    assert len(recorder.steps) == 3
    torch.testing.assert_close(saved[name], average, rtol=1e-6, atol=1e-7)
    assert not torch.allclose(saved[name], recorder.steps[-1][name])  # not the last raw weights
