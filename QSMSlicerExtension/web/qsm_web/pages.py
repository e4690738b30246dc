"""The four pages as data: which module's Logic runs, which files a user uploads into which parameter, and which
parameters are offered (the choices are the modules' own, imported from their ``<Module>Lib/options.py``).

Nothing here runs anything; :mod:`qsm_web.session` does, through the modules' Logic classes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Upload:
    """One file the user uploads.

    Attributes:
        parameter: the module parameter-node attribute it fills.
        label: what the page calls it.
        kind: ``volume`` (3-D), ``labelmap`` (3-D, loaded as a labelmap), ``frames`` (4-D NIfTI → a vector
            volume: an IVIM series, a 2-channel View Line image) or ``bval`` (an FSL b-value file, kept as a path).
        required: the Logic refuses to run without it.
    """

    parameter: str
    label: str
    kind: str = "volume"
    required: bool = True

    @property
    def accept(self) -> str:
        """The browser's file-type filter."""
        return ".bval,.txt" if self.kind == "bval" else ".nii,.nii.gz,.gz"


@dataclass(frozen=True)
class Parameter:
    """One parameter of the module's parameter node: a choice among ``choices``, a number, or text."""

    name: str
    label: str
    choices: tuple[str, ...] = ()
    text: bool = False


@dataclass(frozen=True)
class Page:
    """One capability: the Slicer module whose Logic runs it, and what the page shows.

    Attributes:
        key: URL path (``/qsm``...) and state prefix.
        title: tab title.
        module: the Slicer module (``QSMInversion``...), whose ``<module>Logic`` runs the bundle.
        uploads: files the user gives.
        parameters: choices offered (the rest keep the parameter node's defaults).
        background: parameter whose node stays the background layer under a labelmap output (rim: the QSM).
        help: one line under the tab: what the outputs are and how they are shown.
    """

    key: str
    title: str
    module: str
    uploads: tuple[Upload, ...]
    parameters: tuple[Parameter, ...] = ()
    background: str | None = None
    help: str = ""


def pages() -> tuple[Page, ...]:
    """The four pages, in tab order (needs the module folders on ``sys.path``: :mod:`qsm_web.slicer_layer`)."""
    from IVIMMappingLib.options import METHODS as IVIM_METHODS
    from IVIMMappingLib.options import MODELS, MODES
    from QSMInversionLib.options import FIELD_UNITS, METHOD_CHOICES
    from SPIOQuantificationLib.options import ACCURACY_NOTE as SPIO_ACCURACY

    return (
        Page("qsm", "QSM", "QSMInversion",
             (Upload("input_field", "Local field map (3-D NIfTI)"),
              Upload("input_mask", "Brain mask (optional)", "labelmap", required=False)),
             (Parameter("method", "Method", METHOD_CHOICES), Parameter("field_unit", "Field unit", FIELD_UNITS),
              Parameter("b0_tesla", "B0 (T), for Hz / rad"), Parameter("te_ms", "TE (ms), for rad")),
             help="χ in ppm, DivergingBlueRed, window −0.15…0.15 ppm (as in the QSM Inversion panel)."),
        Page("ivim", "IVIM", "IVIMMapping",
             (Upload("input_dwi", "DWI series (4-D NIfTI, last axis = b-values)", "frames"),
              Upload("b_values_file", "b-values (.bval)", "bval"),
              Upload("input_mask", "Mask (optional)", "labelmap", required=False)),
             (Parameter("b_values", "or type the b-values (s/mm²)", text=True),
              Parameter("model", "Model", MODELS), Parameter("mode", "Mode", MODES),
              Parameter("method", "Method", IVIM_METHODS)),
             help="D, f, D* and S0 maps with the IVIM Mapping panel's colour tables and ranges."),
        Page("spio", "SPIO", "SPIOQuantification",
             (Upload("input_image", "View Line image (NIfTI (nx, nz, 1, 2): even / odd lines)", "frames"),),
             help=f"SPIO concentration in µg Fe/mm³ (inferno, 0…28), as in the SPIO Quantification panel. "
                  f"{SPIO_ACCURACY}"),
        Page("rim", "Rim lesions", "RimLesionDetection",
             (Upload("input_qsm", "QSM (ppm)"), Upload("input_flair", "FLAIR"),
              Upload("input_lesion_mask", "Lesion mask (labelmap)", "labelmap")),
             (Parameter("threshold", "Threshold (0 = validated operating point)"),),
             background="input_qsm",
             help="Lesion table (click a row to jump to the lesion) and the rim labelmap (1 rim−, 2 rim+)."),
    )
