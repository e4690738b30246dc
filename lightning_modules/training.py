"""Training plumbing shared by the capabilities' Lightning runs: write the best validated network to the bundle's
``models/`` folder, gather validation results over DDP ranks.

The best validated weights are kept by Lightning's ``ModelCheckpoint`` (``monitor``, ``mode="min"``, ``save_top_k=1``);
:func:`save_best_network` (the last step of a bundle's ``train.json``) writes that checkpoint's network as a plain
``state_dict``. :class:`SaveBestNetwork` does both in one callback for the runs not on ``ModelCheckpoint`` yet: SPIO,
rim lesions (:class:`~lightning_modules.rim.module.SaveBestRimNet`) and QSMGAN, whose adversarial-phase metric is
logged from a later epoch on (``ModelCheckpoint`` stops a run whose validation lacks the monitored metric).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytorch_lightning as pl
import torch


def save_state_dict(state: dict[str, torch.Tensor], path: str | os.PathLike) -> Path:
    """Save a ``state_dict`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({k: v.detach().cpu() for k, v in state.items()}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def gather_ranks(module: pl.LightningModule, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` of every DDP rank stacked along a new first axis, on the CPU (``tensor[None]`` in one process).

    Under DDP each rank validates a part of the validation set; gather before judging the whole of it. The
    tensors must have the same shape on every rank (Lightning's distributed sampler pads the ranks' parts).
    """
    if module.trainer.world_size == 1:
        return tensor[None]
    return module.all_gather(tensor.to(module.device)).cpu()


def save_best_network(checkpoint: pl.callbacks.ModelCheckpoint, module: pl.LightningModule,
                      path: str | os.PathLike) -> Path:
    """Write the ``network`` of ``checkpoint``'s best model (or ``module.network`` as it is, if no validation ran) to
    ``path`` as a plain ``state_dict``, atomically; returns the path.

    Only global rank 0 writes: under DDP every rank runs the bundle's ``run`` list.
    """
    if not module.trainer.is_global_zero:
        return Path(path)
    if not checkpoint.best_model_path:
        return save_state_dict(module.network.state_dict(), path)
    state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
    saved = save_state_dict({k.removeprefix("network."): v for k, v in state.items() if k.startswith("network.")}, path)
    print(f"best {checkpoint.monitor} {float(checkpoint.best_model_score):.4f} ({checkpoint.best_model_path}), "
          f"wrote {saved}", flush=True)
    return saved


class SaveBestNetwork(pl.Callback):
    """Writes ``pl_module.network``'s ``state_dict`` to ``path`` (atomically) whenever ``monitor`` improves.

    The weights on disk are always the best validated ones, also when a long run is stopped early;
    :meth:`save` (the last step of a bundle's ``train.json``) writes them once more, or the final weights if
    no validation ran.
    """

    def __init__(self, path: str | os.PathLike, *, monitor: str) -> None:
        self.path, self.monitor = Path(path), monitor
        self.best = float("inf")
        self.best_state: dict[str, torch.Tensor] | None = None
        self.network: torch.nn.Module | None = None
        self.is_global_zero = True

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.network = pl_module.network
        self.is_global_zero = trainer.is_global_zero

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None or not trainer.is_global_zero or float(value) >= self.best:
            return
        self.best = float(value)
        self.best_state = {k: v.detach().cpu().clone() for k, v in pl_module.network.state_dict().items()}
        save_state_dict(self.best_state, self.path)
        print(f"epoch {trainer.current_epoch}: {self.monitor} {self.best:.4f}, wrote {self.path}", flush=True)

    def save(self) -> Path:
        """Write the best validated weights (or the final ones) to ``path``; returns the path.

        Only global rank 0 writes: under DDP every rank runs the bundle's ``run`` list, and the other ranks, which
        never hold the best weights, would overwrite them with their final ones.
        """
        if not self.is_global_zero:
            return self.path
        state = self.best_state if self.best_state is not None else self.network.state_dict()
        return save_state_dict(state, self.path)
