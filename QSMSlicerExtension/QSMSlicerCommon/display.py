"""How each bundle output is shown in Slicer: colour table, display range and unit, as plain data.

Ranges are in the output's unit (χ in ppm, D and D* in mm²/s, f as a fraction, SPIO in µg Fe/mm³);
``None`` keeps Slicer's automatic window/level. Colour node IDs are Slicer's built-in colour tables.
"""

from __future__ import annotations

from dataclasses import dataclass

GREY = "vtkMRMLColorTableNodeGrey"
#: Blue (negative) – white (zero) – red (positive): Slicer's diverging table, for signed maps such as χ.
DIVERGING = "vtkMRMLColorTableNodeFileDivergingBlueRed.txt"
VIRIDIS = "vtkMRMLColorTableNodeFileViridis.txt"
INFERNO = "vtkMRMLColorTableNodeFileInferno.txt"
PLASMA = "vtkMRMLColorTableNodeFilePlasma.txt"
LABELS = "vtkMRMLColorTableNodeLabels"
#: Tables built into Slicer's colour logic (no colour file needed), used where a file table is missing.
FMRI = "vtkMRMLColorTableNodefMRI"
IRON = "vtkMRMLColorTableNodeIron"
#: A file table's built-in stand-in: blue–red diverging for χ, a sequential heat table for the maps.
BUILT_IN_FALLBACK = {DIVERGING: FMRI, VIRIDIS: IRON, INFERNO: IRON, PLASMA: IRON}


def color_table_name(color_node_id: str) -> str:
    """The node name of a file colour table from its ID (Slicer names it after the file).

    >>> color_table_name(VIRIDIS)
    'Viridis'
    """
    return color_node_id.removeprefix("vtkMRMLColorTableNodeFile").removesuffix(".txt")


@dataclass(frozen=True)
class DisplayPreset:
    """Display of one output volume.

    Attributes:
        color_node_id: ID of a Slicer colour table node.
        display_range: (min, max) shown from the first to the last colour; ``None`` for automatic window/level.
        labelmap: load as a labelmap volume.
        unit: unit of the voxel values as it appears at the end of the node name (``mm2_per_s``); ``None``
            for unitless outputs (labels, S0 in scanner units).
    """

    color_node_id: str
    display_range: tuple[float, float] | None = None
    labelmap: bool = False
    unit: str | None = None


_D = DisplayPreset(VIRIDIS, (0.0, 3.0e-3), unit="mm2_per_s")
_F = DisplayPreset(PLASMA, (0.0, 0.3), unit="fraction")
_DSTAR = DisplayPreset(INFERNO, (0.0, 0.1), unit="mm2_per_s")

#: bundle → output name → preset; outputs that are not volumes (the lesion CSV) have none.
PRESETS: dict[str, dict[str, DisplayPreset]] = {
    "qsm_dipole_inversion": {"chi": DisplayPreset(DIVERGING, (-0.15, 0.15), unit="ppm")},
    "ivim_mapping": {
        "D": _D, "f": _F, "Dstar": _DSTAR, "f1": _F, "Dstar1": _DSTAR, "f2": _F, "Dstar2": _DSTAR,
        "S0": DisplayPreset(GREY),
    },
    "spio_quantification": {"concentration": DisplayPreset(INFERNO, (0.0, 28.0), unit="ugFe_per_mm3")},
    "rim_lesion_detection": {"rim_labels": DisplayPreset(LABELS, labelmap=True)},
}


def preset_for(bundle: str, output: str) -> DisplayPreset | None:
    """The preset of one output, ``None`` for non-volume outputs such as the lesion table."""
    return PRESETS.get(bundle, {}).get(output)


def run_name_prefix(name_prefix: str, run: int) -> str:
    """The name prefix of a module's ``run``-th result set on the same input: the first keeps the input's name,
    later ones add ``_run<N>`` (before the output name, so every node name still ends with its unit).

    >>> run_name_prefix("dwi", 1), run_name_prefix("dwi", 2)
    ('dwi', 'dwi_run2')
    """
    return name_prefix if run <= 1 else f"{name_prefix}_run{run}"


def output_node_name(name_prefix: str, output: str, preset: DisplayPreset | None) -> str:
    """Node name of a loaded output: ``{prefix}_{output}``, then the unit when it has one.

    >>> output_node_name("dwi", "D", PRESETS["ivim_mapping"]["D"])
    'dwi_D_mm2_per_s'
    >>> output_node_name("qsm", "lesions", None)
    'qsm_lesions'
    """
    name = f"{name_prefix}_{output}"
    return f"{name}_{preset.unit}" if preset is not None and preset.unit else name
