"""What a capability is, read from its bundle's one description ``configs/capability.json``, for the modules.

The description (schema: ``lightning_modules.capability``) names the bundle's inputs, its options with help,
default, choices and what a choice requires, and its outputs with file suffix, unit, display preset and table
columns. The panels take their choices, defaults, tooltips, help text, the options a choice needs, output names,
display presets and table columns from it instead of retyping them. This is the
Slicer side's reader of the same file as ``lightning_modules.capability``, with the standard library only,
because Slicer's Python lacks that package's dependencies; ``tests/test_capability.py`` keeps the two readers
and every other reader equal to the description.
"""

from __future__ import annotations

import functools
import json

from QSMSlicerCommon.locations import locate_extension_paths

#: Name of the description file inside a bundle's ``configs/``.
CAPABILITY_FILE = "capability.json"


@functools.cache
def describe(bundle: str) -> dict:
    """The parsed description of ``bundle`` among the extension's bundles. The result is shared: do not modify it.

    Raises:
        FileNotFoundError: the bundle has no description (an incomplete installation).
    """
    path = locate_extension_paths().bundles_dir / bundle / "configs" / CAPABILITY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist; reinstall the QSMSlicerExtension")
    return json.loads(path.read_text(encoding="utf-8"))


def bundles() -> tuple[str, ...]:
    """The names of the bundles that have a description, sorted."""
    root = locate_extension_paths().bundles_dir
    return tuple(sorted(p.parent.parent.name for p in root.glob(f"*/configs/{CAPABILITY_FILE}")))


def default(bundle: str, option: str) -> object:
    """The default of ``--option``.

    >>> default("ivim_mapping", "model")
    'biexp'
    """
    return describe(bundle)["options"][option]["default"]


def choices(bundle: str, option: str) -> tuple:
    """The allowed values of ``--option`` (empty if it is free).

    >>> choices("qsm_dipole_inversion", "field_unit")
    ('ppm', 'hz', 'rad')
    """
    return tuple(describe(bundle)["options"][option].get("choices", ()))


def requires(bundle: str, option: str, value: object) -> tuple[str, ...]:
    """The options that ``--option value`` needs (empty if it needs none, or ``value`` is not a choice).

    >>> requires("qsm_dipole_inversion", "field_unit", "hz")
    ('b0_tesla',)
    """
    return tuple(describe(bundle)["options"][option].get("requires", {}).get(value, ()))


def columns(bundle: str, output: str) -> tuple[str, ...]:
    """The column names of a table output, in the file's order (their units and help: ``describe``).

    >>> columns("rim_lesion_detection", "lesions")[-2:]
    ('rim_probability', 'rim_positive')
    """
    return tuple(column["name"] for column in describe(bundle)["outputs"][output]["columns"])


def help_of(bundle: str, name: str) -> str | None:
    """The help text of an input or option, ``None`` if the description has no such name."""
    description = describe(bundle)
    spec = description["inputs"].get(name) or description["options"].get(name)
    return spec["help"] if spec else None


def output_suffixes(bundle: str, **options: object) -> dict[str, str]:
    """Output name → file suffix after ``{stem}_`` of the outputs written under ``options``, in the description's
    order (options not given or ``None`` take their default; names that are not options are ignored).

    Raises:
        ValueError: an option value outside its choices.

    >>> output_suffixes("ivim_mapping", model="triexp", dwi="d.nii.gz")
    {'D': 'D.nii.gz', 'f1': 'f1.nii.gz', 'Dstar1': 'Dstar1.nii.gz', 'f2': 'f2.nii.gz', 'Dstar2': 'Dstar2.nii.gz', \
'S0': 'S0.nii.gz'}
    """
    description = describe(bundle)
    chosen = {name: spec["default"] for name, spec in description["options"].items()}
    for name, value in options.items():
        if name in chosen and value is not None:
            allowed = choices(bundle, name)
            if allowed and value not in allowed:
                raise ValueError(f"unknown {name} {value!r} for {bundle}; use one of {', '.join(allowed)}")
            chosen[name] = value
    return {name: spec["suffix"] for name, spec in description["outputs"].items()
            if all(chosen.get(option) in values for option, values in spec.get("when", {}).items())}


def displays(bundle: str) -> dict[str, dict]:
    """Output name → display entry (colour node ID, range, labelmap, node unit) of every output shown as a volume."""
    return {name: spec["display"] for name, spec in describe(bundle)["outputs"].items() if spec["display"]}


def module_help(bundle: str) -> str:
    """A module's help text: what the capability does, how it runs, and its outputs with their units."""
    description = describe(bundle)
    outputs = "; ".join(f"{name}: {spec['help']}" for name, spec in description["outputs"].items())
    return (f"{description['title']}: {description['description']}. Runs the {bundle} MONAI bundle in a separate "
            f"process. Outputs: {outputs}.")
