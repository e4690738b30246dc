"""Physical constants and unit conversions shared by every capability (one place, imported, never retyped).

References:
    Dipole kernel and phase/field relations: Salomir et al., Concepts Magn Reson B 2003; Marques & Bowtell,
    Concepts Magn Reson B 2005. Conventions of this project: ``../shared/DESIGN.md``.
"""

from __future__ import annotations

import math

#: Reduced gyromagnetic ratio of 1H, γ/2π, in Hz/T.
GAMMA_BAR_HZ_PER_T = 42.577e6

#: Units accepted for a local field map.
FIELD_UNITS = ("ppm", "hz", "rad")


def ppm_per_hz(b0_tesla: float) -> float:
    """Factor converting a field offset in Hz into ppm of B0: ``field_ppm = field_hz * ppm_per_hz(B0)``."""
    return 1e6 / (GAMMA_BAR_HZ_PER_T * b0_tesla)


def ppm_per_rad(b0_tesla: float, te_ms: float) -> float:
    """Factor converting phase in rad (accrued by echo time TE) into ppm: φ = 2π γ̄ B0 TE field_ppm 1e-6."""
    return 1e6 / (2.0 * math.pi * GAMMA_BAR_HZ_PER_T * b0_tesla * te_ms * 1e-3)


def field_scale_to_ppm(unit: str, *, b0_tesla: float | None = None, te_ms: float | None = None) -> float:
    """Multiplicative factor that brings a field map in ``unit`` (``ppm``, ``hz`` or ``rad``) to ppm.

    Args:
        unit: ``"ppm"``, ``"hz"`` (needs ``b0_tesla``) or ``"rad"`` (needs ``b0_tesla`` and ``te_ms``).
        b0_tesla: main field strength in T.
        te_ms: echo time in ms (phase in rad only).

    Raises:
        ValueError: unknown unit, or a missing/non-positive B0 or TE for the unit.

    >>> round(field_scale_to_ppm("hz", b0_tesla=3.0) * 127.731, 6)
    1.0
    """
    unit = str(unit).lower()
    if unit not in FIELD_UNITS:
        raise ValueError(f"unknown field unit {unit!r}; use one of {', '.join(FIELD_UNITS)}")
    if unit == "ppm":
        return 1.0
    if b0_tesla is None or not float(b0_tesla) > 0:
        raise ValueError(f"a field in {unit} needs --b0_tesla (the main field strength in T, > 0)")
    if unit == "hz":
        return ppm_per_hz(float(b0_tesla))
    if te_ms is None or not float(te_ms) > 0:
        raise ValueError("a field in rad needs --te_ms (the echo time in ms, > 0)")
    return ppm_per_rad(float(b0_tesla), float(te_ms))


# ---------------------------------------------------------------------------------------------------------------
# View Line (SPIO) acquisition
# ---------------------------------------------------------------------------------------------------------------
# The acquisition the shipped SPIO network assumes (DESIGN.md, "View Line (SPIO)"; della Maggiora et al.,
# "DeepSPIO: Super Paramagnetic Iron Oxide Particle Quantification Using Deep Learning in Magnetic Resonance
# Imaging", IEEE TPAMI 2020). Image plane x–z, x = phase-encode axis (array axis 0), z = readout axis and B0
# direction (array axis 1).

#: Main field strength of the View Line acquisition, T.
VIEWLINE_B0_TESLA = 7.0
#: SPIO volume susceptibility (SI, dimensionless) per µg Fe/mm³ (saturated iron oxide at 7 T).
SPIO_CHI_SI_PER_UG_FE_PER_MM3 = 2.0e-5
#: Air minus tissue volume susceptibility (SI): air 0.36 ppm, water −9.05 ppm (the air-bubble confounder).
AIR_MINUS_TISSUE_CHI_SI = 9.41e-6
#: Field of view (x, z), mm, and image matrix (x, z).
VIEWLINE_FOV_MM = (50.0, 50.0)
VIEWLINE_MATRIX = (128, 128)
#: Number of excited view lines, their width and spacing (mm); line k is centred at (k − 12) · spacing.
VIEWLINE_N_LINES = 25
VIEWLINE_LINE_WIDTH_MM = 1.0
VIEWLINE_LINE_SPACING_MM = 2.0
#: Slice-selection (excitation) and readout gradients, T/m.
VIEWLINE_GZ_T_PER_M = 40e-3
VIEWLINE_GR_T_PER_M = 160e-3
#: Echo time, s.
VIEWLINE_TE_S = 8.7e-3
#: Transverse relaxation rate R2* = R2*_tissue + relaxivity · concentration (s⁻¹, s⁻¹ per µg Fe/mm³).
VIEWLINE_R2STAR_TISSUE_PER_S = 20.0
VIEWLINE_R2STAR_PER_UG_FE_PER_MM3 = 1800.0
#: Oversampling of the readout axis z in the simulation (≥ 4 × finer than the image).
VIEWLINE_Z_OVERSAMPLING = 4
#: Out-of-plane (y) extent of the simulated 3-D volume: number of slices and slice thickness (mm).
VIEWLINE_NY = 24
VIEWLINE_DY_MM = 1.25
#: Concentration range of the training distribution (DeepSPIO §3.2), µg Fe/mm³.
SPIO_CONCENTRATION_RANGE_UG_FE_PER_MM3 = (0.22, 27.9)
