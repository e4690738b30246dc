"""What a capability is, read from its one description: ``monai_bundles/<bundle>/configs/capability.json``.

The description names the capability's inputs (the main input first: its file name gives the output stem),
its options (help text with units, default, choices), and its outputs (file suffix after ``{stem}_``, unit,
help, the display preset the Slicer panel and the web app use, and ``when``: the option values under which an
output is written, e.g. IVIM's ``f1`` only for ``--model triexp``). An option's ``requires`` names, per choice, the
options that choice needs (QSM's ``--field_unit rad`` needs ``--b0_tesla`` and ``--te_ms``); a table output's
``columns`` are its CSV columns in order, with unit and help (the rim bundle's lesion table). The bundle's
``inference.json``, its app and transforms, ``--help``, the Slicer modules and the docs all read it; none of them
repeats a suffix, a unit, a column, a method name, a default or a requirement. ``tests/test_capability.py`` fails
when a reader and the description disagree.

Schema (every key present; ``null`` where it does not apply)::

    {"bundle": str, "title": str, "description": str, "main_input": str,
     "inputs":  {name: {"help": str, "kind": "volume" | "labelmap" | "text", "required": bool, ["unit": str]}},
     "options": {name: {"help": str, "default": value, ["choices": [...]], ["unit": str],
                        ["requires": {choice: [option, ...]}]}},
     "outputs": {name: {"suffix": str, "unit": str | null, "help": str,
                        "display": {"color_node_id": str, "range": [lo, hi] | null, "labelmap": bool,
                                    "node_unit": str | null} | null,
                        ["when": {option: [values]}],
                        ["columns": [{"name": str, "unit": str | null, "help": str}, ...]]}}}

The Slicer side reads the same file with the standard library only (``QSMSlicerCommon``), because Slicer's
Python does not have this package's dependencies.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from lightning_modules.monai_trust import bundles_dir

#: Name of the description file inside a bundle's ``configs/``.
CAPABILITY_FILE = "capability.json"


@functools.cache
def _read(path: str) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def describe(bundle: str, bundle_root: str | None = None) -> dict:
    """The parsed description of ``bundle`` (from ``bundle_root``, default: the bundle in this checkout or
    ``$QSM_BUNDLES_DIR``). The result is shared: do not modify it."""
    root = Path(bundle_root) if bundle_root else Path(bundles_dir()) / bundle
    return _read(str(root / "configs" / CAPABILITY_FILE))


def default(bundle: str, option: str) -> object:
    """The default of ``--option``.

    >>> default("qsm_dipole_inversion", "field_unit")
    'ppm'
    """
    return describe(bundle)["options"][option]["default"]


def choices(bundle: str, option: str) -> tuple:
    """The allowed values of ``--option`` (empty if it is free).

    >>> choices("ivim_mapping", "model")
    ('biexp', 'triexp')
    """
    return tuple(describe(bundle)["options"][option].get("choices", ()))


def main_input(bundle: str) -> str:
    """The option naming the main input (``field``, ``dwi``, ``image``, ``qsm``)."""
    return describe(bundle)["main_input"]


def outputs(bundle: str, **options: object) -> dict[str, str]:
    """Output name → file suffix of the outputs written under ``options`` (unspecified options take their
    default), in the description's order.

    >>> outputs("ivim_mapping", model="triexp")
    {'D': 'D.nii.gz', 'f1': 'f1.nii.gz', 'Dstar1': 'Dstar1.nii.gz', 'f2': 'f2.nii.gz', 'Dstar2': 'Dstar2.nii.gz', \
'S0': 'S0.nii.gz'}
    """
    description = describe(bundle)
    chosen = {name: spec["default"] for name, spec in description["options"].items()}
    chosen.update({k: v for k, v in options.items() if v is not None})
    return {name: spec["suffix"] for name, spec in description["outputs"].items()
            if all(chosen.get(option) in values for option, values in spec.get("when", {}).items())}


def suffix(bundle: str, output: str) -> str:
    """The file suffix of one output (after ``{stem}_``).

    >>> suffix("qsm_dipole_inversion", "chi")
    'chi.nii.gz'
    """
    return describe(bundle)["outputs"][output]["suffix"]


def requires(bundle: str, option: str, value: object) -> tuple[str, ...]:
    """The options that ``--option value`` needs (empty if it needs none, or ``value`` is not a choice).

    >>> requires("qsm_dipole_inversion", "field_unit", "rad")
    ('b0_tesla', 'te_ms')
    """
    return tuple(describe(bundle)["options"][option].get("requires", {}).get(value, ()))


def columns(bundle: str, output: str) -> tuple[str, ...]:
    """The column names of a table output, in the file's order (their units and help: ``describe``).

    >>> columns("rim_lesion_detection", "lesions")[:3]
    ('lesion_id', 'n_voxels', 'volume_mm3')
    """
    return tuple(column["name"] for column in describe(bundle)["outputs"][output]["columns"])
