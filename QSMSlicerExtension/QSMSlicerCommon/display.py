"""How each bundle output is shown in Slicer: colour table and display range, as plain data.

Ranges are in the output's unit (χ in ppm, D and D* in mm²/s, f as a fraction, SPIO in µg Fe/mm³);
``None`` keeps Slicer's automatic window/level. Colour node IDs are Slicer's built-in colour tables.
"""

from __future__ import annotations

from dataclasses import dataclass

GREY = "vtkMRMLColorTableNodeGrey"
VIRIDIS = "vtkMRMLColorTableNodeFileViridis.txt"
INFERNO = "vtkMRMLColorTableNodeFileInferno.txt"
PLASMA = "vtkMRMLColorTableNodeFilePlasma.txt"
LABELS = "vtkMRMLColorTableNodeLabels"


@dataclass(frozen=True)
class DisplayPreset:
    """Display of one output volume.

    Attributes:
        color_node_id: ID of a Slicer colour table node.
        display_range: (min, max) shown from darkest to brightest; ``None`` for automatic window/level.
        labelmap: load as a labelmap volume.
    """

    color_node_id: str
    display_range: tuple[float, float] | None = None
    labelmap: bool = False


_D = DisplayPreset(VIRIDIS, (0.0, 3.0e-3))
_F = DisplayPreset(PLASMA, (0.0, 0.3))
_DSTAR = DisplayPreset(INFERNO, (0.0, 0.1))

#: bundle → output name → preset; outputs that are not volumes (the lesion CSV) have none.
PRESETS: dict[str, dict[str, DisplayPreset]] = {
    "qsm_dipole_inversion": {"chi": DisplayPreset(GREY, (-0.15, 0.15))},
    "ivim_mapping": {
        "D": _D, "f": _F, "Dstar": _DSTAR, "f1": _F, "Dstar1": _DSTAR, "f2": _F, "Dstar2": _DSTAR,
        "S0": DisplayPreset(GREY),
    },
    "spio_quantification": {"concentration": DisplayPreset(INFERNO, (0.0, 28.0))},
    "rim_lesion_detection": {"rim_labels": DisplayPreset(LABELS, labelmap=True)},
}


def preset_for(bundle: str, output: str) -> DisplayPreset | None:
    """The preset of one output, ``None`` for non-volume outputs such as the lesion table."""
    return PRESETS.get(bundle, {}).get(output)
