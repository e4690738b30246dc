"""What the Slicer modules ask each bundle for: one small options dataclass per capability.

Field names are the bundles' command-line option names (DESIGN.md, "Command-line contracts"), so the
command line is built from the dataclass fields and cannot drift from them: ``None`` means "not given, use
the bundle's default". The first field is the main input, whose file name gives the output ``stem``. Defaults,
choices and output suffixes come from the bundle's description (:mod:`QSMSlicerCommon.capability`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from QSMSlicerCommon import capability


class BundleOptions(Protocol):
    """What every options dataclass provides."""

    BUNDLE: ClassVar[str]

    def output_suffixes(self) -> dict[str, str]:
        """Output name → file suffix after ``{stem}_``."""
        ...


class _DescribedOutputs:
    """``output_suffixes`` of an options dataclass: the outputs its bundle's description lists for these options."""

    BUNDLE: ClassVar[str]

    def output_suffixes(self) -> dict[str, str]:
        """Output name → file suffix after ``{stem}_``, in the bundle's output order.

        Raises:
            ValueError: an option value outside the description's choices.
        """
        return capability.output_suffixes(self.BUNDLE, **{f.name: getattr(self, f.name)
                                                           for f in dataclasses.fields(self)})  # type: ignore[arg-type]


@dataclass(frozen=True)
class QsmOptions(_DescribedOutputs):
    """``qsm_dipole_inversion``: local field map (+ mask) → susceptibility χ.

    Attributes are the bundle's inputs and options (help, units and choices: its description); ``None`` is
    "not given": ``mask`` then means the voxels where the field is non-zero, ``b0_dir`` scanner z through the
    NIfTI affine, ``method`` the bundle's default.
    """

    BUNDLE: ClassVar[str] = "qsm_dipole_inversion"

    field: Path
    mask: Path | None = None
    field_unit: str = capability.default(BUNDLE, "field_unit")
    b0_tesla: float | None = None
    te_ms: float | None = None
    b0_dir: tuple[float, float, float] | None = None
    method: str | None = None


#: IVIM parameter maps per signal model, in the bundle's output order.
IVIM_MAPS = {model: tuple(capability.output_suffixes("ivim_mapping", model=model))
             for model in capability.choices("ivim_mapping", "model")}


@dataclass(frozen=True)
class IvimOptions(_DescribedOutputs):
    """``ivim_mapping``: 4-D diffusion series + b-values → IVIM parameter maps.

    Attributes are the bundle's inputs and the options the panel offers (help, units, choices and defaults:
    its description); ``mask`` ``None`` fits every voxel.
    """

    BUNDLE: ClassVar[str] = "ivim_mapping"

    dwi: Path
    bvals: Path
    mask: Path | None = None
    model: str = capability.default(BUNDLE, "model")
    mode: str = capability.default(BUNDLE, "mode")
    method: str = capability.default(BUNDLE, "method")


@dataclass(frozen=True)
class SpioOptions(_DescribedOutputs):
    """``spio_quantification``: 2-channel View Line image (nx, nz, 1, 2) → SPIO iron concentration; ``object_shrinkage``
    is the bundle's last step (0–1; its description's default)."""

    BUNDLE: ClassVar[str] = "spio_quantification"

    image: Path
    object_shrinkage: float = capability.default(BUNDLE, "object_shrinkage")


@dataclass(frozen=True)
class RimOptions(_DescribedOutputs):
    """``rim_lesion_detection``: QSM + FLAIR + lesion mask → per-lesion table and rim labelmap.

    Attributes are the bundle's inputs and options (help and units: its description); ``threshold`` ``None``
    is the bundle's validated operating point.
    """

    BUNDLE: ClassVar[str] = "rim_lesion_detection"

    qsm: Path
    flair: Path
    lesion_mask: Path
    threshold: float | None = None


def input_stem(path: str | os.PathLike) -> str:
    """The main input's file name without ``.nii``/``.nii.gz``: the ``stem`` of the output names.

    Same rule as ``lightning_modules.io.nifti_stem`` (a test keeps them equal); repeated here because this
    package must work before ``lightning_modules`` and its dependencies are installed.

    >>> input_stem("/data/sub-01_field.nii.gz")
    'sub-01_field'
    """
    name = Path(path).name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return Path(name).stem


def _format_value(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(repr(float(v)) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def bundle_arguments(options: BundleOptions, output_dir: str | os.PathLike) -> list[str]:
    """``--main_input PATH --output_dir DIR`` followed by every other option that is given."""
    pairs = [(f.name, getattr(options, f.name)) for f in dataclasses.fields(options)]  # type: ignore[arg-type]
    (main_key, main_value), rest = pairs[0], pairs[1:]
    args = [f"--{main_key}", str(main_value), "--output_dir", str(output_dir)]
    for key, value in rest:
        if value is not None:
            args += [f"--{key}", _format_value(value)]
    return args


def build_command(
    options: BundleOptions, *, python: str, bundles_dir: str | os.PathLike, output_dir: str | os.PathLike
) -> list[str]:
    """The child-process command that runs the capability's bundle.

    Args:
        options: one of :class:`QsmOptions`, :class:`IvimOptions`, :class:`SpioOptions`, :class:`RimOptions`.
        python: Python executable of the environment with the bundle dependencies (``PythonSlicer`` in Slicer).
        bundles_dir: folder holding the ``monai_bundles`` (one sub-folder per bundle).
        output_dir: where the bundle writes its outputs.

    Returns:
        ``[python, "-m", "monai.bundle", "run", "--config_file", <bundle>/configs/inference.json, ...]``.
    """
    config = Path(bundles_dir) / options.BUNDLE / "configs" / "inference.json"
    return [python, "-m", "monai.bundle", "run", "--config_file", str(config),
            *bundle_arguments(options, output_dir)]


def main_input(options: BundleOptions) -> Path:
    """The main input file (the first field), whose name gives the output stem."""
    return Path(getattr(options, dataclasses.fields(options)[0].name))  # type: ignore[arg-type]


def expected_outputs(options: BundleOptions, output_dir: str | os.PathLike) -> dict[str, Path]:
    """Output name → ``{output_dir}/{stem}_{suffix}`` as the bundle's contract names it."""
    stem = input_stem(main_input(options))
    return {name: Path(output_dir) / f"{stem}_{suffix}" for name, suffix in options.output_suffixes().items()}
