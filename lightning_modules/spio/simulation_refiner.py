"""Simulate-and-compare refinement of a SPIO map (issue 24, session 30; an option, not the shipped network).

DeepSPIO (della Maggiora et al., IEEE TPAMI 2020) reads the View Line image once. This module simulates the
network's own answer with the project's View Line simulator and lets a small U-Net compare the simulation with the
measurement (is the simulated line bending around each object larger or smaller than the measured one?):

1. :func:`lift_map` turns the map m₁ (x, z) into 3-D iron, by default with a ball-like profile along y (each pixel
   extends ± √(e(2R − e)), e = its distance to the component's edge, R = the component's largest e: a sphere for a
   disk, a cylinder across a rod; session 31 adds the ``plane`` and ``rod`` lifts, :data:`LIFTS`);
2. :func:`simulate_hypothesis` simulates it on uniform tissue (ρ = 1, no noise): the two-channel image Ŝ and the
   excitation shift of its field (what displaces each line);
3. :class:`SimulationRefiner` reads the measured image's line features, Ŝ, the simulated field and m₁ and outputs
   a log-scale factor ``a`` and an additive term ``b``, both exactly zero at initialisation:
   m₂ = relu(m₁ · e^a + b), so training starts at m₁ and only learns what the comparison shows.

The 3-D model is deliberately simple: its bias (tori, oblique rods, objects off the plane) is what the U-Net
learns to correct from the comparison, instead of being fitted in (sessions 16–17 found physics fits biased by
the shape model).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform
from scipy import ndimage
from torch import nn

from lightning_modules.spio import acquisition as acq
from lightning_modules.spio.auxiliary import FIELD_SCALE_MM
from lightning_modules.spio.inferers import FlipAverageInferer, ShiftAverageInferer
from lightning_modules.spio.line_features import N_FEATURES, LineFeatures
from lightning_modules.spio.line_unet import he_init, unet_levels, unet_pass
from lightning_modules.spio.snr import rician_like
from lightning_modules.spio.transforms import (
    CONCENTRATION_FLOOR_UG_PER_MM3,
    floor_concentration,
    object_components,
)
from lightning_modules.spio.viewline import PIXEL_MM, acquire, offresonance_tesla

#: Channels of one simulated hypothesis: Ŝ (even, odd) and the asinh of its field.
CHANNELS_PER_LIFT = 3
#: The 3-D shapes a map can be lifted to along y (session 31): ``ball`` (:func:`ball_half_thickness_mm`), ``plane``
#: (only the imaged slice, y = 0) and ``rod`` (every iron pixel over the whole simulated y range, ± 15 mm).
LIFTS = ("ball", "plane", "rod")
#: Channels of the explicit comparison per lift (session 32, ``residual=True``): for the 4 mm and 2 mm line patterns,
#: √(A_meas·A_sim)·(cos Δφ, sin Δφ) and log((A_meas + ε)/(A_sim + ε)) (:func:`phase_residual`).
RESIDUAL_CHANNELS_PER_LIFT = 6
#: ε of the amplitude ratio, in units of the 99th-percentile-normalised image.
RESIDUAL_AMPLITUDE_EPS = 0.01
#: Scale of the map channel and of the additive output, µg Fe/mm³.
MAP_SCALE_UG_PER_MM3 = 1.0
#: Bound on the log-scale factor (a factor of e^±2 at most).
MAX_LOG_SCALE = 2.0


def ball_half_thickness_mm(concentration: np.ndarray) -> np.ndarray:
    """Half the ball-like extent along y of every iron pixel (x, z), mm: √(e(2R − e)) with e its distance to the
    component's edge (a pixel on the edge counts half a pixel) and R the component's largest e; 0 outside iron."""
    support = np.asarray(concentration) > 0
    if not support.any():
        return np.zeros(support.shape)
    labels, n = ndimage.label(support)
    edge = ndimage.distance_transform_edt(support, sampling=PIXEL_MM) - 0.5 * min(PIXEL_MM)
    radius = np.zeros(n + 1)
    radius[1:] = ndimage.maximum(edge, labels, index=np.arange(1, n + 1))
    big_r = radius[labels]
    return np.where(support, np.sqrt(np.clip(edge * (2 * big_r - edge), 0.0, None)), 0.0)


def half_thickness_mm(concentration: np.ndarray, lift: str = "ball") -> np.ndarray:
    """Half the extent along y of every pixel (x, z) of a map lifted as ``lift`` (one of :data:`LIFTS`), mm."""
    c = np.asarray(concentration)
    if lift == "ball":
        return ball_half_thickness_mm(c)
    if lift == "plane":
        return np.zeros(c.shape)
    if lift == "rod":
        return np.where(c > 0, np.inf, 0.0)
    raise ValueError(f"unknown lift {lift!r}; expected one of {', '.join(LIFTS)}")


def lift_map(concentration: np.ndarray, lift: str = "ball") -> torch.Tensor:
    """3-D iron (x, y, z) on the simulator's grid (:data:`acq.VIEWLINE_NY` slices of :data:`acq.VIEWLINE_DY_MM`,
    the imaged plane at the centre slice) whose plane is ``concentration`` (x, z) and whose extent along y is
    :func:`half_thickness_mm` (by default :func:`ball_half_thickness_mm`) on either side of the plane."""
    c = np.asarray(concentration, np.float32)
    half = half_thickness_mm(c, lift)
    y = (np.arange(acq.VIEWLINE_NY) - acq.VIEWLINE_NY // 2) * acq.VIEWLINE_DY_MM
    inside = np.abs(y)[None, :, None] <= half[:, None, :] + 1e-6
    return torch.from_numpy(c[:, None, :] * inside)


def simulate_hypothesis(concentration: np.ndarray, lifts: tuple[str, ...] = ("ball",)) -> torch.Tensor:
    """Ŝ and the field of a map's 3-D lifts on uniform tissue, noise-free: (3 × len(lifts), x, z) float32 — per
    lift the even / odd line images with excited tissue ≈ 1, and asinh(ΔB / Gz / :data:`FIELD_SCALE_MM`)."""
    if len(lifts) != 1:
        return torch.cat([simulate_hypothesis(concentration, (lift,)) for lift in lifts])
    c = np.asarray(concentration, np.float32)
    delta_b = offresonance_tesla(lift_map(c, lifts[0]))
    image = acquire(torch.ones(c.shape), torch.from_numpy(c), delta_b)
    image = image * np.exp(acq.VIEWLINE_TE_S * acq.VIEWLINE_R2STAR_TISSUE_PER_S)
    shift_mm = delta_b / acq.VIEWLINE_GZ_T_PER_M * 1e3
    return torch.cat([image, torch.asinh(shift_mm / FIELD_SCALE_MM)[None]]).float()


def phase_residual(measured: torch.Tensor, simulated: torch.Tensor) -> torch.Tensor:
    """The comparison of two :class:`LineFeatures` outputs (B, 11, X, Z), computed explicitly: for the 4 mm and 2 mm
    line patterns √(A_m·A_s)·(cos(φ_m − φ_s), sin(φ_m − φ_s)) — the local line displacement the hypothesis misses,
    a sampled field residual, weighted where both images show lines — and log((A_m + ε)/(A_s + ε)) (the signal
    loss the hypothesis misses); (B, 6, X, Z). Products of channels, which a convolution cannot form itself."""
    out = []
    for cos, sin, amp in ((2, 3, 4), (5, 6, 7)):  # LineFeatures: (cos, sin, amplitude) of the 4 mm, then 2 mm pattern
        weight = torch.sqrt(measured[:, amp] * simulated[:, amp])
        cos_d = measured[:, cos] * simulated[:, cos] + measured[:, sin] * simulated[:, sin]
        sin_d = measured[:, sin] * simulated[:, cos] - measured[:, cos] * simulated[:, sin]
        ratio = torch.log((measured[:, amp] + RESIDUAL_AMPLITUDE_EPS) / (simulated[:, amp] + RESIDUAL_AMPLITUDE_EPS))
        out += [weight * cos_d, weight * sin_d, ratio]
    return torch.stack(out, dim=1)


def object_labels(prior: torch.Tensor, floor_ug_per_mm3: float = CONCENTRATION_FLOOR_UG_PER_MM3) -> torch.Tensor:
    """Object labels (B, X, Z) int64 of maps (B, 1, X, Z): the bundle's objects
    (:func:`~lightning_modules.spio.transforms.object_components` of the pixels ≥ the floor), numbered 1 … n across
    the whole batch; 0 outside objects."""
    planes = prior[:, 0].detach().float().cpu().numpy()
    labels, offset = np.zeros(planes.shape, np.int64), 0
    for k, plane in enumerate(planes):
        lab, n = object_components(plane, floor_ug_per_mm3)
        labels[k] = np.where(lab > 0, lab + offset, 0)
        offset += n
    return torch.from_numpy(labels).to(prior.device)


def object_mean(features: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """Each pixel's object mean of ``features`` (B, C, X, Z) — the mean over the object of ``prior`` (B, 1, X, Z)
    the pixel belongs to (:func:`object_labels`), 0 outside objects; differentiable in ``features``."""
    b, c, nx, nz = features.shape
    labels = object_labels(prior).reshape(-1)
    flat = features.permute(0, 2, 3, 1).reshape(-1, c).float()  # sums in float32 under bf16 autocast
    n = int(labels.max()) + 1
    sums = torch.zeros(n, c, device=flat.device).index_add_(0, labels, flat)
    counts = torch.bincount(labels, minlength=n).clamp_min(1).float()[:, None]
    means = (sums / counts) * (torch.arange(n, device=flat.device) > 0)[:, None]  # 0 outside objects
    return means[labels].to(features.dtype).reshape(b, nx, nz, c).permute(0, 3, 1, 2)


class SimulationRefiner(nn.Module):
    """U-Net: (measured image, hypothesis Ŝ + field, map m₁) → refined map m₂ = relu(m₁ · e^a + b).

    Inputs of :meth:`forward`: ``image`` (B, 2, X, Z) in any intensity scale, ``hypothesis`` (B, 3 × len(lifts),
    X, Z) from :func:`simulate_hypothesis` with the refiner's ``lifts``, ``prior`` (B, 1, X, Z) the map m₁ in
    µg Fe/mm³. Output (B, 1, X, Z), µg Fe/mm³.

    >>> SimulationRefiner()(torch.rand(1, 2, 128, 128), torch.rand(1, 3, 128, 128), torch.rand(1, 1, 128, 128)).shape
    torch.Size([1, 1, 128, 128])
    """

    def __init__(self, *, widths: tuple[int, ...] = (16, 32, 64, 96), lifts: tuple[str, ...] = ("ball",),
                 residual: bool = False, object_pool: bool = False) -> None:
        super().__init__()
        self.lifts, self.residual, self.object_pool = tuple(lifts), residual, object_pool
        self.features = LineFeatures()
        if self.lifts != ("ball",):  # session 38: weights name their lifts (one or two lifts' channels are ambiguous)
            self.register_buffer("lift_codes", torch.tensor([LIFTS.index(lift) for lift in self.lifts]))
        in_channels = N_FEATURES + CHANNELS_PER_LIFT * len(self.lifts) + 1  # + the map m₁
        if residual:  # session 32: the comparison computed explicitly (:func:`phase_residual`) for every lift
            in_channels += RESIDUAL_CHANNELS_PER_LIFT * len(self.lifts)
            # marks weights that read these channels (load_refiner), since the channel count alone is ambiguous
            self.register_buffer("residual_channels", torch.tensor(RESIDUAL_CHANNELS_PER_LIFT))
        self.down, self.up, self.merge, out_channels = unet_levels(in_channels, widths)
        if object_pool:  # session 42: the head also reads each object's mean features (:func:`object_mean`)
            self.register_buffer("object_pool_channels", torch.tensor(out_channels))
        self.head = nn.Conv2d(out_channels * (2 if object_pool else 1), 2, 1)
        he_init(self)
        nn.init.zeros_(self.head.weight)  # start exactly at m₁; the head still gets a gradient
        nn.init.zeros_(self.head.bias)

    def forward(self, image: torch.Tensor, hypothesis: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        measured = self.features(image)
        inputs = [measured, hypothesis, torch.asinh(prior / MAP_SCALE_UG_PER_MM3)]
        if self.residual:
            for k in range(len(self.lifts)):
                simulated = self.features(hypothesis[:, CHANNELS_PER_LIFT * k:CHANNELS_PER_LIFT * k + 2])
                inputs.append(phase_residual(measured, simulated))
        x = torch.cat(inputs, dim=1)
        features = unet_pass(x, self.down, self.up, self.merge)
        if self.object_pool:
            features = torch.cat([features, object_mean(features, prior)], dim=1)
        out = self.head(features)
        log_scale = MAX_LOG_SCALE * torch.tanh(out[:, :1] / MAX_LOG_SCALE)
        return torch.relu(prior * torch.exp(log_scale) + MAP_SCALE_UG_PER_MM3 * out[:, 1:])


def refine_map(refiner: SimulationRefiner, image: torch.Tensor, prior: torch.Tensor, *, flip_average: bool = True,
               shifts_px: tuple[int, ...] = (0,)) -> torch.Tensor:
    """m₂ (B, 1, X, Z) of images (B, 2, X, Z) and their maps m₁ (B, 1, X, Z), µg Fe/mm³ (no floor; no gradient).
    The hypothesis is simulated on the CPU (the simulator's bincount), the U-Net runs where ``refiner`` is.

    ``flip_average``: the mean of the refiner on the inputs and, mirrored back, on the inputs mirrored along x (a
    symmetry of the acquisition and of the simulation), so that, like DeepSPIO's flip-averaged map, the result does
    not depend on the direction x is stored in (session 30, addendum 4).

    ``shifts_px`` other than ``(0,)`` (session 32): also average over the inputs shifted along x by these pixels
    (:class:`~lightning_modules.spio.inferers.ShiftAverageInferer`, inside the flip average), as DeepSPIO's map is."""
    hypothesis = torch.stack([simulate_hypothesis(p[0].detach().cpu().numpy(), refiner.lifts) for p in prior])
    hypothesis = hypothesis.to(image.device)
    image, prior = image.float(), prior.float()
    if tuple(shifts_px) != (0,):
        inferer = ShiftAverageInferer(shifts=tuple(shifts_px))
        if flip_average:
            inferer = FlipAverageInferer(inferer)
        n_image, n_hypothesis = image.shape[1], hypothesis.shape[1]

        def stacked(x: torch.Tensor) -> torch.Tensor:  # the three inputs travel as one tensor through the inferers
            return refiner(x[:, :n_image], x[:, n_image:n_image + n_hypothesis], x[:, n_image + n_hypothesis:])

        with torch.no_grad():
            return inferer(torch.cat([image, hypothesis, prior], dim=1), stacked)
    with torch.no_grad():
        refined = refiner(image, hypothesis, prior)
        if flip_average:
            mirrored = refiner(image.flip(-2), hypothesis.flip(-2), prior.flip(-2)).flip(-2)
            refined = 0.5 * (refined + mirrored)
    return refined


def refine_floored(refiner: SimulationRefiner, image: torch.Tensor, prior: torch.Tensor, *,
                   floor_ug_per_mm3: float = CONCENTRATION_FLOOR_UG_PER_MM3,
                   shifts_px: tuple[int, ...] = (0,)) -> torch.Tensor:
    """:func:`refine_map` (flip average; ``shifts_px`` as there) followed by the bundle's floor: the map one refiner
    stage hands on, as the bundle's post-processing writes it (``SimulationRefined`` then ``ConcentrationFloord``);
    (B, 1, X, Z), µg Fe/mm³."""
    return floor_concentration(refine_map(refiner, image, prior, shifts_px=shifts_px), floor_ug_per_mm3)


def load_refiner(path: str | None, device: torch.device | str = "cpu", lifts: tuple[str, ...] | None = None,
                 ) -> SimulationRefiner | None:
    """The refiner whose ``state_dict`` is at ``path`` (the bundle's ``models/refiner.pt``) in eval mode on
    ``device``; None (no refinement) without a path. ``lifts``: the lifts the weights read (the bundle names them);
    None takes them from the weights: their ``lift_codes`` (weights trained since session 38 for lifts other than
    ``ball`` alone), else the channel count (three hypothesis channels per lift: 1 → 0.9.0's ball, 3 → :data:`LIFTS`;
    2 is ambiguous and must be named). Lifts that differ from those the weights record are a ``ValueError``.
    The U-Net's widths, and whether it reads the explicit comparison (``residual``, session 32), are read from the
    weights too."""
    if not path:
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    residual, object_pool = "residual_channels" in state, "object_pool_channels" in state
    per_lift = CHANNELS_PER_LIFT + (RESIDUAL_CHANNELS_PER_LIFT if residual else 0)
    stored = (state["down.0.0.weight"].shape[1] - N_FEATURES - 1) // per_lift  # the U-Net's first conv
    recorded = tuple(LIFTS[int(code)] for code in state["lift_codes"]) if "lift_codes" in state else None
    if lifts is None:
        if recorded is None and stored == 2:
            raise ValueError(f"{path} holds a refiner for 2 lifts but does not say which: name them")
        lifts = recorded or (("ball",) if stored == 1 else LIFTS[:stored])
    if len(lifts) != stored or (recorded is not None and tuple(lifts) != recorded):
        held = ", ".join(recorded) if recorded else f"{stored} lift(s)"
        raise ValueError(f"{path} holds a refiner for {held}, not for {', '.join(lifts)}")
    if recorded is None and tuple(lifts) != ("ball",):  # weights trained before session 38: name them now
        state = {**state, "lift_codes": torch.tensor([LIFTS.index(lift) for lift in lifts])}
    widths = tuple(v.shape[0] for k, v in state.items() if k.startswith("down.") and k.endswith(".0.weight"))
    refiner = SimulationRefiner(widths=widths, lifts=tuple(lifts), residual=residual, object_pool=object_pool)
    refiner.load_state_dict(state)
    return refiner.eval().to(device)


class SimulationRefined(MapTransform):
    """MONAI post-processing: ``pred`` (1, X, Z), the floored DeepSPIO map, refined by :class:`SimulationRefiner`
    from the case's ``image`` (2, X, Z); ``refiner`` None leaves ``pred`` as it is (``--refine false``).

    ``other_refiner`` (session 34): the refiner for images whose noise fails ``expected`` (default
    :func:`~lightning_modules.spio.snr.rician_like`), trained on the maps of the network
    :class:`~lightning_modules.spio.inferers.NoiseModelInferer` runs on them; None refines every image with
    ``refiner``."""

    def __init__(self, keys: KeysCollection = "pred", *, refiner: nn.Module | None, image_key: str = "image",
                 other_refiner: nn.Module | None = None,
                 expected: Callable[[np.ndarray], bool] = rician_like) -> None:
        super().__init__(keys)
        self.refiner, self.image_key = refiner, image_key
        self.other_refiner, self.expected = other_refiner, expected

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        if self.refiner is None:
            return d
        image = torch.as_tensor(d[self.image_key], dtype=torch.float32)
        refiner = self.refiner
        if self.other_refiner is not None and not self.expected(image.cpu().numpy()):
            refiner = self.other_refiner
        device = next(refiner.parameters()).device
        image = image.to(device)[None]
        for key in self.key_iterator(d):
            prior = torch.as_tensor(d[key], dtype=torch.float32).to(device)[None]
            d[key] = refine_map(refiner, image, prior)[0].to(torch.as_tensor(d[key]).device)
        return d
