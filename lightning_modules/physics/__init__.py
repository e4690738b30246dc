"""The shared physics layer: constants and unit conversions every capability uses (one place, imported, never
retyped); the dipole kernel and forward field model are in :mod:`lightning_modules.physics.dipole`.

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

