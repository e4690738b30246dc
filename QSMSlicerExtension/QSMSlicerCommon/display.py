"""How each bundle output is shown in Slicer: colour table, display range and unit, as plain data.

The presets are each output's ``display`` entry in its bundle's description (:mod:`QSMSlicerCommon.capability`):
ranges in the output's unit, ``None`` for Slicer's automatic window/level, colour node IDs of Slicer's colour
tables. What is Slicer's own knowledge stays here: which built-in table stands in for a missing file table.
"""

from __future__ import annotations

from dataclasses import dataclass

from QSMSlicerCommon import capability

GREY = "vtkMRMLColorTableNodeGrey"
#: Blue (negative) – white (zero) – red (positive): Slicer's diverging table, for signed maps such as χ.
DIVERGING = "vtkMRMLColorTableNodeFileDivergingBlueRed.txt"
VIRIDIS = "vtkMRMLColorTableNodeFileViridis.txt"
INFERNO = "vtkMRMLColorTableNodeFileInferno.txt"
PLASMA = "vtkMRMLColorTableNodeFilePlasma.txt"
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


def _preset(display: dict) -> DisplayPreset:
    """A preset from an output's ``display`` entry in its description."""
    display_range = display["range"]
    return DisplayPreset(display["color_node_id"], tuple(display_range) if display_range else None,
                         labelmap=display["labelmap"], unit=display["node_unit"])


#: bundle → output name → preset; outputs that are not volumes (the lesion CSV) have none.
PRESETS: dict[str, dict[str, DisplayPreset]] = {
    bundle: {output: _preset(display) for output, display in capability.displays(bundle).items()}
    for bundle in capability.bundles()
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
