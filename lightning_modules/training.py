"""Training plumbing shared by the capabilities' Lightning runs: write the best validated network to the bundle's
``models/`` folder, gather validation results over DDP ranks.

Every bundle's ``train.json`` keeps its best validated weights with Lightning's ``ModelCheckpoint`` (its ``saver``:
``monitor``, ``mode``, ``save_top_k=1``, ``save_weights_only``); :func:`save_best_network`, the last step of the
``run`` list, writes that checkpoint's network as a plain ``state_dict`` (what ``load_weights`` and the inference
configs read). A metric that is undefined in some epochs (QSMGAN's adversarial-phase NRMSE before that phase, rim
lesions' AUCs on a validation set of one class) is logged as NaN there: ``ModelCheckpoint`` stops a run whose
validation lacks the monitored metric, and it never prefers a NaN epoch to a validated one.
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
    """Write the ``network`` of ``checkpoint``'s best model to ``path`` as a plain ``state_dict``, atomically; returns
    the path.

    ``module.network`` as it is at the end of the run is written instead when no epoch had a finite value of the
    monitored metric (no validation ran, or the metric was NaN in every validated epoch). Only global rank 0 writes:
    under DDP every rank runs the bundle's ``run`` list.
    """
    if not module.trainer.is_global_zero:
        return Path(path)
    score = checkpoint.best_model_score
    if not checkpoint.best_model_path or score is None or not torch.isfinite(torch.as_tensor(score)):
        return save_state_dict(module.network.state_dict(), path)
    state = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
    saved = save_state_dict({k.removeprefix("network."): v for k, v in state.items() if k.startswith("network.")}, path)
    print(f"best {checkpoint.monitor} {float(score):.4f} ({checkpoint.best_model_path}), wrote {saved}", flush=True)
    return saved
