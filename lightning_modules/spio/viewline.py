"""View Line forward simulator: 3-D SPIO concentration and spin density → two-channel View Line image.

Implements the acquisition of DESIGN.md ("View Line (SPIO)") after della Maggiora et al., "DeepSPIO: Super
Paramagnetic Iron Oxide Particle Quantification Using Deep Learning in Magnetic Resonance Imaging", IEEE TPAMI
2020: concentration → susceptibility → off-resonance ΔB by the dipole kernel (3-D, zero padded, taken at the
imaged plane) → excitation of 25 lines under the off-resonance-shifted slice condition → readout shift along z →
signal loss by R2* → even / odd line channels → complex Gaussian noise at a given SNR.

Array conventions: the image is (x, z) with x the phase-encode axis (array axis 0) and z the readout axis and
B0 direction (array axis 1); the 3-D volume is (x, y, z) with the imaged plane at the centre slice of y.
Concentrations are in µg Fe/mm³, fields in T, lengths in mm. Acquisition constants live in
:mod:`lightning_modules.spio.acquisition`.
"""

from __future__ import annotations

import math

import torch

from lightning_modules.physics.dipole import forward_field_slice
from lightning_modules.spio import acquisition as acq

#: Pixel size of the image along x and z, mm.
PIXEL_MM = (acq.VIEWLINE_FOV_MM[0] / acq.VIEWLINE_MATRIX[0], acq.VIEWLINE_FOV_MM[1] / acq.VIEWLINE_MATRIX[1])
#: Voxel size of the simulated 3-D volume (x, y, z), mm.
VOXEL_3D_MM = (PIXEL_MM[0], acq.VIEWLINE_DY_MM, PIXEL_MM[1])


def pixel_centres_mm(n: int, pixel_mm: float) -> torch.Tensor:
    """Centres of ``n`` pixels of size ``pixel_mm`` on an axis centred at 0 mm, shape (n,)."""
    return (torch.arange(n, dtype=torch.float32) + 0.5) * pixel_mm - 0.5 * n * pixel_mm


def line_centres_mm() -> torch.Tensor:
    """Centres z_k = (k − 12) · 2 mm of the 25 view lines, shape (25,)."""
    k = torch.arange(acq.VIEWLINE_N_LINES, dtype=torch.float32)
    return (k - (acq.VIEWLINE_N_LINES - 1) / 2) * acq.VIEWLINE_LINE_SPACING_MM


def offresonance_tesla(
    concentration_3d: torch.Tensor, *, extra_chi_si_3d: torch.Tensor | None = None,
    voxel_size_mm: tuple[float, float, float] = VOXEL_3D_MM,
) -> torch.Tensor:
    """Off-resonance ΔB (T) in the imaged plane (the centre y slice) of a 3-D SPIO distribution.

    ``ΔB = B0 · ifftn(D · fftn(χ))`` with ``χ = χ_SPIO · c (+ χ_extra)``, B0 along z (array axis 2), the
    project's dipole kernel with true voxel sizes and 1.5× zero padding (della Maggiora et al. 2020, §3.1).

    Args:
        concentration_3d: SPIO concentration (x, y, z), µg Fe/mm³.
        extra_chi_si_3d: further susceptibility relative to tissue (x, y, z), SI (e.g. an air bubble).
        voxel_size_mm: voxel sizes along (x, y, z), mm.

    Returns:
        ΔB in T, shape (x, z).
    """
    chi_si = concentration_3d * acq.SPIO_CHI_SI_PER_UG_FE_PER_MM3
    if extra_chi_si_3d is not None:
        chi_si = chi_si + extra_chi_si_3d
    field_ppm = forward_field_slice(chi_si * 1e6, voxel_size_mm, (0.0, 0.0, 1.0), axis=1,
                                    index=chi_si.shape[1] // 2, pad_factor=1.5)
    return acq.VIEWLINE_B0_TESLA * 1e-6 * field_ppm


def acquire(
    spin_density: torch.Tensor, concentration: torch.Tensor, offresonance_t: torch.Tensor
) -> torch.Tensor:
    """Noise-free View Line image of a plane: excitation, readout shift, R2* decay, even/odd channels.

    A spin at z is excited by line k when ``|z + ΔB/Gz − z_k| ≤ 0.5 mm`` and read out at ``z + ΔB/Gr``; its
    magnitude ``ρ · exp(−TE · R2*)`` with ``R2* = 20 s⁻¹ + 1800 s⁻¹ · c`` is accumulated on a z grid 4× finer
    than the image (della Maggiora et al. 2020, §3.1). Even k go to channel 0, odd k to channel 1.

    Args:
        spin_density: ρ (x, z), arbitrary units.
        concentration: SPIO concentration in the plane (x, z), µg Fe/mm³.
        offresonance_t: ΔB in the plane (x, z), T.

    Returns:
        Magnitude image (2, x, z) in the units of ρ (an excited pixel of SPIO-free tissue ≈ ρ · e^(−TE·20 s⁻¹)).
    """
    nx, nz = spin_density.shape
    over = acq.VIEWLINE_Z_OVERSAMPLING
    dz = PIXEL_MM[1]
    z_fine = pixel_centres_mm(nz * over, dz / over)
    field_fine = torch.nn.functional.interpolate(
        offresonance_t[None].float(), size=nz * over, mode="linear", align_corners=False)[0]
    rho = spin_density.float().repeat_interleave(over, dim=1)
    conc = concentration.float().repeat_interleave(over, dim=1)
    shift_excite_mm = field_fine / acq.VIEWLINE_GZ_T_PER_M * 1e3
    shift_read_mm = field_fine / acq.VIEWLINE_GR_T_PER_M * 1e3
    line_pos = (z_fine + shift_excite_mm) / acq.VIEWLINE_LINE_SPACING_MM + (acq.VIEWLINE_N_LINES - 1) / 2
    k = torch.round(line_pos)
    excited = (torch.abs(line_pos - k) * acq.VIEWLINE_LINE_SPACING_MM <= acq.VIEWLINE_LINE_WIDTH_MM / 2) & (
        k >= 0) & (k < acq.VIEWLINE_N_LINES)
    r2star = acq.VIEWLINE_R2STAR_TISSUE_PER_S + acq.VIEWLINE_R2STAR_PER_UG_FE_PER_MM3 * conc
    magnitude = rho * torch.exp(-acq.VIEWLINE_TE_S * r2star) / over
    read_index = torch.floor((z_fine + shift_read_mm) / dz + nz / 2).long()
    keep = excited & (read_index >= 0) & (read_index < nz) & (magnitude > 0)
    channel = torch.remainder(k.long(), 2)
    x_index = torch.arange(nx)[:, None].expand_as(read_index)
    flat = (channel * nx + x_index) * nz + read_index
    image = torch.bincount(flat[keep], weights=magnitude[keep], minlength=2 * nx * nz)
    return image.reshape(2, nx, nz)


def tissue_signal(spin_density: torch.Tensor, *, tissue_fraction: float = 0.1) -> float:
    """Signal S of excited, SPIO-free tissue: ρ · e^(−TE · 20 s⁻¹) averaged over tissue (ρ > 10 % of max).

    Defined over tissue, not over the dark gaps between lines (FIELD_NOTES.md, SPIO).
    """
    rho = spin_density.float()
    tissue = rho > tissue_fraction * rho.max()
    if not bool(tissue.any()):
        return 0.0
    return float(rho[tissue].mean()) * math.exp(-acq.VIEWLINE_TE_S * acq.VIEWLINE_R2STAR_TISSUE_PER_S)


#: Noise models of :func:`add_noise` (session 33): ``complex`` (single-channel magnitude, Rician: training's),
#: ``magnitude`` (|M + σn|: real Gaussian noise on the magnitude, a common simulator shortcut; a half-normal
#: background) and ``sos4`` (four coils of uniform sensitivity, each with complex noise σ, root-sum-of-squares: the
#: same noise σ on tissue at high SNR, a χ₈ background ≈ 2.7σ).
NOISE_MODELS = ("complex", "magnitude", "sos4")
#: Noise models for evaluation only (session 34): root-sum-of-squares of 2, 8 and 32 coils (χ₄, χ₁₆, χ₆₄ backgrounds)
#: and ``signed`` (real Gaussian noise on the magnitude with its sign kept, ``magnitude``'s numbers without |·|: not a
#: magnitude image, but what a simple simulator writes), never drawn by training's ``noise_models`` (which draws from
#: :data:`NOISE_MODELS`).
EVALUATION_NOISE_MODELS = ("sos2", "sos8", "sos32", "signed")


def sos_coils(model: str) -> int | None:
    """The coils of a root-sum-of-squares noise model (``"sos4"`` → 4), None for the single-channel ones."""
    return int(model[3:]) if model.startswith("sos") else None


#: The most coils combined by root-sum-of-squares that training's noise models hold (``sos4``: 4): the noise-robust
#: companion's input is matched to it (session 35, :func:`~lightning_modules.spio.snr.match_coil_noise_floor`).
TRAINING_COILS = max(sos_coils(model) or 1 for model in NOISE_MODELS)


def add_noise(
    image: torch.Tensor, *, snr_db: float, signal: float, generator: torch.Generator | None = None,
    model: str = "complex",
) -> torch.Tensor:
    """Magnitude of the image plus noise with ``SNR[dB] = 20 log10(S / σ)``.

    Args:
        image: noise-free magnitude image (2, x, z).
        snr_db: SNR in dB; ``math.inf`` returns the image unchanged.
        signal: S, the signal of excited SPIO-free tissue (:func:`tissue_signal`).
        generator: torch random generator (seeded by the caller).
        model: one of :data:`NOISE_MODELS` or :data:`EVALUATION_NOISE_MODELS`; ``complex`` (the default) and
            ``magnitude`` draw the same numbers.

    Returns:
        Noisy magnitude image, same shape.
    """
    if model not in NOISE_MODELS + EVALUATION_NOISE_MODELS:
        raise ValueError(f"unknown noise model {model!r}; expected one of "
                         f"{', '.join(NOISE_MODELS + EVALUATION_NOISE_MODELS)}")
    if math.isinf(snr_db):
        return image
    sigma = signal / 10 ** (snr_db / 20)
    coils = sos_coils(model)
    if coils is not None:
        coil = image / math.sqrt(coils)  # uniform sensitivities: the noise-free SoS is the image
        noise = sigma * torch.randn((2, coils, *image.shape), generator=generator)
        return torch.sqrt(((coil + noise[0]) ** 2 + noise[1] ** 2).sum(dim=0))
    real = image + sigma * torch.randn(image.shape, generator=generator)
    imag = sigma * torch.randn(image.shape, generator=generator)
    if model == "magnitude":
        return torch.abs(real)
    if model == "signed":
        return real
    return torch.sqrt(real**2 + imag**2)


def simulate_viewline(
    spin_density: torch.Tensor, concentration_3d: torch.Tensor, *, snr_db: float = math.inf,
    extra_chi_si_3d: torch.Tensor | None = None, generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full View Line simulation of the centre y plane of a 3-D SPIO distribution.

    Args:
        spin_density: ρ of the imaged plane (x, z); set it to 0 where there is no signal (air).
        concentration_3d: SPIO concentration (x, y, z), µg Fe/mm³, on the grid :data:`VOXEL_3D_MM`.
        snr_db: SNR in dB on excited SPIO-free tissue; ``math.inf`` for no noise.
        extra_chi_si_3d: further susceptibility relative to tissue (x, y, z), SI.
        generator: torch random generator for the noise.

    Returns:
        ``(image, concentration)``: the View Line image (2, x, z) and the true concentration of the plane (x, z).
    """
    image, plane, _ = simulate_viewline_with_field(spin_density, concentration_3d, snr_db=snr_db,
                                                   extra_chi_si_3d=extra_chi_si_3d, generator=generator)
    return image, plane


def simulate_viewline_with_field(
    spin_density: torch.Tensor, concentration_3d: torch.Tensor, *, snr_db: float = math.inf,
    extra_chi_si_3d: torch.Tensor | None = None, generator: torch.Generator | None = None,
    noise_model: str = "complex",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`simulate_viewline` plus the off-resonance ΔB of the plane (x, z) in T that made the image;
    ``noise_model`` is :func:`add_noise`'s ``model``."""
    plane = concentration_3d[:, concentration_3d.shape[1] // 2, :]
    delta_b = offresonance_tesla(concentration_3d, extra_chi_si_3d=extra_chi_si_3d)
    image = acquire(spin_density, plane, delta_b)
    image = add_noise(image, snr_db=snr_db, signal=tissue_signal(spin_density), generator=generator,
                      model=noise_model)
    return image, plane, delta_b
