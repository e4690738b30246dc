"""The IVIM estimators as MONAI inferers: what the bundle's ``inferer`` runs on one study.

Each takes the study's normalised signals ``(1, n_voxels, n_b)`` (the collated ``image`` of
:class:`~lightning_modules.ivim.transforms.IvimSignalsd`) and, as keyword tensors from ``PrepareBatchExtraInput``,
its ``b_values`` (s/mm²), ``reference`` (S(b_min)) and ``voxels`` (their places on the grid), and returns the
parameters ``(1, n_voxels, n_params)`` (float64, in the order of
:data:`~lightning_modules.ivim.signal.PARAMETER_NAMES`, S0 relative to S(b_min)):

- :class:`PretrainedInferer` (``--mode pretrained``) runs the ``network`` it is given: the bundle's ``network_def``
  with ``models/model.pt``;
- :class:`PosteriorMeanInferer` (``--mode fit``, default) and :class:`IvimNetFitInferer`
  (``--mode fit --posterior_mean false``) fit to the study: they train a network on it (or on signals simulated from
  its prior) and estimate with that network; the configured ``network`` is not used;
- :class:`LeastSquaresInferer` (``--method lsq``) fits each voxel by least squares.

The study-fitting inferers train with gradients on, although MONAI's evaluator calls its inferer under
``torch.no_grad``.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.inferers import Inferer
from torch import nn

from lightning_modules.bundle_app import report_progress
from lightning_modules.io import InputError
from lightning_modules.ivim.data import IvimDataModule
from lightning_modules.ivim.lsq import IvimLsq, bounds_array
from lightning_modules.ivim.module import DEFAULT_PATIENCE_EPOCHS, DEFAULT_REFINE_STRENGTH, ProgressLines, fit_ivim_net
from lightning_modules.ivim.networks import IvimNet, predict_ivim_net
from lightning_modules.ivim.posterior import DEFAULT_N_SIMULATED, posterior_mean_fit
from lightning_modules.ivim.pretrained import pretrained_network, runs_on
from lightning_modules.ivim.signal import average_repeats, normalise_signal

#: Fewest voxels with signal that IVIM-NET's fit to the study (``--posterior_mean false``) can train on: one is
#: held out for validation, the rest are the training set.
MIN_NET_FIT_VOXELS = 2
#: Voxels per forward pass of a network.
NETWORK_BATCH_VOXELS = 65536


def _numpy(value: torch.Tensor | np.ndarray | None) -> np.ndarray | None:
    if value is None:
        return None
    value = value[0] if isinstance(value, torch.Tensor) else value  # the collated batch of one study
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


class IvimInferer(Inferer):
    """Base class: unbatches the study, calls :meth:`estimate` with gradients on, and batches its result.

    Args:
        model: ``"biexp"`` or ``"triexp"``.
        bounds: bounds preset of :data:`lightning_modules.ivim.lsq.BOUNDS` (``"body"`` or ``"brain"``).
    """

    def __init__(self, *, model: str, bounds: str) -> None:
        super().__init__()
        self.model = model
        self.bounds = bounds

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: object, b_values: torch.Tensor,
                 reference: torch.Tensor | None = None, voxels: torch.Tensor | None = None,
                 source: str | list[str] = "the study", **kwargs: object) -> torch.Tensor:
        """Parameters ``(1, n, n_params)`` of the study ``inputs`` ``(1, n, n_b)`` (``source``: its file, for
        messages)."""
        source = source[0] if isinstance(source, (list, tuple)) else source
        with torch.enable_grad():  # the study fits train networks; MONAI's evaluator runs inferers without gradients
            params = self.estimate(_numpy(inputs), _numpy(b_values), network=network, reference=_numpy(reference),
                                   voxels=_numpy(voxels), source=str(source))
        return torch.as_tensor(params, dtype=torch.float64, device=inputs.device)[None]

    def estimate(self, signals: np.ndarray, b_values_s_per_mm2: np.ndarray, *, network: nn.Module | None = None,
                 reference: np.ndarray | None = None, voxels: np.ndarray | None = None,
                 source: str = "the study") -> np.ndarray:
        """Parameters ``(n, n_params)`` of normalised ``signals`` ``(n, n_b)`` (S0 relative to S(b_min)).

        Args:
            network: the bundle's network (used by :class:`PretrainedInferer` only).
            reference: ``(n,)`` S(b_min) in the DWI's units.
            voxels: ``(X, Y, Z)`` boolean grid whose True voxels, in C order, are the rows.
            source: the study's DWI file, for messages.

        Raises:
            InputError: a study the estimator cannot fit (one sentence naming ``source``).
        """
        raise NotImplementedError

    def _clipped(self, params: np.ndarray) -> np.ndarray:
        limits = bounds_array(self.model, self.bounds)
        return np.clip(params, limits[:, 0], limits[:, 1])


class LeastSquaresInferer(IvimInferer):
    """Bounded least squares per voxel (:class:`~lightning_modules.ivim.lsq.IvimLsq`); no network.

    Args:
        device: torch device of the fit.
    """

    def __init__(self, *, model: str, bounds: str, device: str | torch.device = "cpu") -> None:
        super().__init__(model=model, bounds=bounds)
        self.device = device

    def estimate(self, signals, b_values_s_per_mm2, *, network=None, reference=None, voxels=None,
                 source="the study"):
        report_progress(0.1, f"least squares on {signals.shape[0]} voxels")
        return IvimLsq(b_values_s_per_mm2, model=self.model, bounds=self.bounds,
                       device=self.device).fit_normalised(signals)


class PretrainedInferer(IvimInferer):
    """The given trained network on the study's signals, repeats averaged and sorted onto its b-values.

    A study whose b-values or model are not the network's runs the shipped network of its scheme instead
    (:func:`~lightning_modules.ivim.pretrained.pretrained_network`), or is refused.

    Args:
        bundle_root: the bundle folder holding ``models/`` (None: only the given network).
        batch_size: voxels per forward pass.
        device: torch device of a shipped network of another scheme.
    """

    def __init__(self, *, model: str, bounds: str, bundle_root: str | None = None,
                 batch_size: int = NETWORK_BATCH_VOXELS, device: str | torch.device = "cpu") -> None:
        super().__init__(model=model, bounds=bounds)
        self.bundle_root = bundle_root
        self.device = device
        self.batch_size = int(batch_size)

    def estimate(self, signals, b_values_s_per_mm2, *, network=None, reference=None, voxels=None,
                 source="the study"):
        b_unique, averaged = average_repeats(signals, b_values_s_per_mm2)
        averaged = normalise_signal(averaged, b_unique)[0]
        if not runs_on(network, self.model, b_unique):
            if self.bundle_root is None:
                raise InputError(f"the network was trained for other b-values than those of {source!r} "
                                 f"({b_unique.tolist()}); use --mode fit to train on this data set")
            network = pretrained_network(self.model, b_values_s_per_mm2, self.bundle_root).to(self.device)
        return self._clipped(predict_ivim_net(network, averaged, batch_size=self.batch_size))


class PosteriorMeanInferer(IvimInferer):
    """The study's SNR-aware empirical-Bayes posterior mean (:func:`~lightning_modules.ivim.posterior.
    posterior_mean_fit`): least squares, local noise, a prior deconvolved from the study, a network trained on
    signals simulated from it; the configured network is not used.

    Args:
        n_simulated: simulated training signals.
        seed: seeds everything random (the same study, options and seed give the same maps).
    """

    def __init__(self, *, model: str, bounds: str, n_simulated: int = DEFAULT_N_SIMULATED, seed: int = 0) -> None:
        super().__init__(model=model, bounds=bounds)
        self.n_simulated = int(n_simulated)
        self.seed = int(seed)

    def estimate(self, signals, b_values_s_per_mm2, *, network=None, reference=None, voxels=None,
                 source="the study"):
        report_progress(0.05, f"posterior-mean fit of {signals.shape[0]} voxels (least squares, noise, prior)")
        return posterior_mean_fit(
            signals, b_values_s_per_mm2, model=self.model, bounds=self.bounds, mask=voxels, reference=reference,
            n_simulated=self.n_simulated, seed=self.seed, progress_bar=False,
            callbacks=[ProgressLines(start=0.3, end=0.9, message="posterior-mean network training")])[0]


class IvimNetFitInferer(IvimInferer):
    """IVIM-NET trained self-supervised on the study, then run on it (:func:`~lightning_modules.ivim.module.
    fit_ivim_net`); the configured network is not used.

    Args:
        max_epochs, patience_epochs, batches_per_epoch: the training budget.
        refine_strength: weight decay of the optional D* refinement stage (0: off).
        n_ensemble: networks trained and averaged.
        seed: seeds the initial weights and the batches.
        device: torch device of the estimate.

    Raises:
        InputError: (on a study) fewer than :data:`MIN_NET_FIT_VOXELS` voxels with signal.
    """

    def __init__(self, *, model: str, bounds: str, max_epochs: int, batches_per_epoch: int,
                 patience_epochs: int = DEFAULT_PATIENCE_EPOCHS,
                 refine_strength: float = DEFAULT_REFINE_STRENGTH, n_ensemble: int = 1, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        super().__init__(model=model, bounds=bounds)
        self.max_epochs, self.patience_epochs = int(max_epochs), int(patience_epochs)
        self.batches_per_epoch = int(batches_per_epoch)
        self.refine_strength, self.n_ensemble = float(refine_strength), int(n_ensemble)
        self.seed = int(seed)
        self.device = device

    def estimate(self, signals, b_values_s_per_mm2, *, network=None, reference=None, voxels=None,
                 source="the study"):
        if signals.shape[0] < MIN_NET_FIT_VOXELS:
            raise InputError(f"DWI file {source!r} has {signals.shape[0]} voxel(s) with signal in the mask; IVIM-NET's "
                             f"fit to the study needs at least {MIN_NET_FIT_VOXELS}: give a larger mask, or use "
                             "--posterior_mean true or --method lsq")
        torch.manual_seed(self.seed)  # the initial weights: the same study, options and seed give the same maps
        study_network = IvimNet(b_values_s_per_mm2, model=self.model, bounds=self.bounds)
        data = IvimDataModule(signals, b_values_s_per_mm2=b_values_s_per_mm2,
                              batches_per_epoch=self.batches_per_epoch, seed=self.seed)
        study_network = fit_ivim_net(data, study_network, max_epochs=self.max_epochs,
                                     patience_epochs=self.patience_epochs, refine_strength=self.refine_strength,
                                     n_ensemble=self.n_ensemble, seed=self.seed, progress=(0.05, 0.9))
        return self._clipped(predict_ivim_net(study_network.to(self.device), signals))
