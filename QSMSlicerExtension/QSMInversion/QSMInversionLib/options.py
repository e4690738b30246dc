"""The QSMInversion panel's choices and how they become ``qsm_dipole_inversion`` options."""

from __future__ import annotations

from pathlib import Path

from QSMSlicerCommon import capability
from QSMSlicerCommon.options import QsmOptions

#: ``--field_unit`` values, from the bundle's description.
FIELD_UNITS = capability.choices(QsmOptions.BUNDLE, "field_unit")
#: Panel choice that leaves ``--method`` to the bundle's measured default.
DEFAULT_METHOD_CHOICE = "default"
#: ``--method`` values, from the bundle's description.
METHODS = capability.choices(QsmOptions.BUNDLE, "method")
#: What the method combo box offers.
METHOD_CHOICES = (DEFAULT_METHOD_CHOICE, *METHODS)


def qsm_options(
    field: Path, mask: Path | None, *, field_unit: str, b0_tesla: float, te_ms: float, method: str
) -> QsmOptions:
    """Options for staged inputs: B0 and TE only for the field units that require them (the bundle's description:
    ``hz`` B0, ``rad`` B0 and TE), ``default`` → bundle default.

    Raises:
        ValueError: unknown unit or method.
    """
    if field_unit not in FIELD_UNITS:
        raise ValueError(f"unknown field unit {field_unit!r}; choose one of {', '.join(FIELD_UNITS)}")
    if method not in METHOD_CHOICES:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHOD_CHOICES)}")
    needed = capability.requires(QsmOptions.BUNDLE, "field_unit", field_unit)
    return QsmOptions(
        field=field, mask=mask, field_unit=field_unit,
        b0_tesla=float(b0_tesla) if "b0_tesla" in needed else None,
        te_ms=float(te_ms) if "te_ms" in needed else None,
        method=None if method == DEFAULT_METHOD_CHOICE else method,
    )
