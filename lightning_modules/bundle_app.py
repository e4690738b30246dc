"""What every bundle's inference app shares: case lists, output names, progress lines and one-line errors.

The bundles' ``inference.json`` build an app object (e.g. :class:`lightning_modules.qsm.app.QsmInversionApp`)
whose ``run()`` is the workflow's ``run`` expression. User errors leave through :func:`exit_on_input_error`
as a single line on stderr and a non-zero exit, never as a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from lightning_modules.io import InputError, nifti_stem

if TYPE_CHECKING:
    from torch import nn

#: Exit status for bad input (argparse's convention).
EXIT_INPUT_ERROR = 2

#: Prefix of machine-readable progress lines, parsed by the Slicer modules.
PROGRESS_PREFIX = "[progress]"


@contextlib.contextmanager
def exit_on_input_error() -> Iterator[None]:
    """Turn an :class:`InputError` into one line on stderr and exit status 2."""
    try:
        yield
    except InputError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_INPUT_ERROR) from None


def report_progress(fraction: float, message: str = "") -> None:
    """Print a progress line ``[progress] 42% message`` (0 ≤ fraction ≤ 1) that front ends can parse."""
    pct = int(round(100 * min(max(float(fraction), 0.0), 1.0)))
    print(f"{PROGRESS_PREFIX} {pct}% {message}".rstrip(), flush=True)


def is_given(value: object) -> bool:
    """True for a real command-line value; ``None``, ``""`` and ``"None"`` (fire's spelling) mean absent."""
    return value is not None and not (isinstance(value, str) and value.strip() in ("", "None", "none", "null"))


def parse_flag(value: object) -> object:
    """A command-line boolean: ``True``/``False`` and the strings "true"/"false"/"1"/"0" (any case) become a bool;
    anything else comes back unchanged for the caller to refuse (fire hands ``--x false`` over as the string
    "false", and ``bool("false")`` is True)."""
    if isinstance(value, bool):
        return value
    return {"true": True, "1": True, "false": False, "0": False}.get(str(value).strip().lower(), value)


def case_list(single_case: dict, *, datalist: str | os.PathLike | None, main_key: str) -> list[dict]:
    """The cases to process: the single case given on the command line, or every entry of ``--datalist``.

    Datalist entries are dicts with the same keys as the command-line options; options given on the command
    line (other than the main input) act as defaults for every entry. Relative paths in a datalist are taken
    relative to the datalist's folder.

    Raises:
        InputError: no main input, unreadable datalist, or entries without the main input key.
    """
    if not is_given(datalist):
        if not is_given(single_case.get(main_key)):
            raise InputError(f"no input given; pass --{main_key} FILE.nii.gz or --datalist FILE.json")
        return [dict(single_case)]
    path = Path(str(datalist))
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"datalist file {str(path)!r} does not exist; check the path") from None
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"datalist file {str(path)!r} is not valid JSON ({err})") from None
    if isinstance(entries, dict):  # MONAI-style {"testing": [...]} is accepted too
        entries = next((v for v in entries.values() if isinstance(v, list)), None)
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise InputError(f"datalist file {str(path)!r} must be a non-empty JSON list of objects")
    defaults = {k: v for k, v in single_case.items() if k != main_key and is_given(v)}
    cases = []
    for i, entry in enumerate(entries):
        if not is_given(entry.get(main_key)):
            raise InputError(f"datalist file {str(path)!r}: entry {i} has no {main_key!r}")
        case = {**defaults, **entry}
        for key, value in case.items():
            if isinstance(value, str) and (value.endswith(".nii") or value.endswith(".nii.gz") or key == "bvals"):
                p = Path(value)
                case[key] = str(p if p.is_absolute() else path.parent / p)
        cases.append(case)
    return cases


def output_path(output_dir: str | os.PathLike, main_input: str | os.PathLike, suffix: str) -> Path:
    """``{output_dir}/{stem}_{suffix}`` with ``stem`` the main input's name without ``.nii``/``.nii.gz``."""
    return Path(output_dir) / f"{nifti_stem(main_input)}_{suffix}"


def check_distinct_outputs(paths: list[Path]) -> None:
    """Two cases whose outputs would overwrite each other are an input error."""
    seen: set[Path] = set()
    for p in paths:
        if p in seen:
            raise InputError(f"two cases would both write {str(p)!r}; give the inputs distinct file names")
        seen.add(p)


def validated_cases(
    single_case: dict, *, datalist: str | os.PathLike | None, main_key: str,
    outputs_of: Callable[[str], list[Path]], validate: Callable[[dict], object],
) -> list[dict]:
    """The cases to process, each validated (``validate`` raises :class:`InputError`) before anything is written,
    and none writing an output another one writes (``outputs_of(main_input)`` lists a case's outputs)."""
    cases = case_list(single_case, datalist=datalist, main_key=main_key)
    check_distinct_outputs([p for c in cases for p in outputs_of(c[main_key])])
    for case in cases:
        validate(case)
    return cases


def load_network(
    network: nn.Module, model_path: str | os.PathLike, *, hint: str = "train them with configs/train.json"
) -> nn.Module:
    """Load a shipped ``state_dict`` (``torch.load(..., weights_only=True)``) into ``network``, in eval mode.

    Raises:
        InputError: the weights file is missing or holds another architecture's weights (the message ends with
            ``hint``).
    """
    import torch

    path = Path(model_path)
    if not path.is_file():
        raise InputError(f"weights file {str(path)!r} does not exist; {hint}")
    try:
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except RuntimeError as error:  # a state_dict of another architecture: name the file, not a traceback
        detail = str(error).strip().splitlines()[-1].strip() if str(error).strip() else type(error).__name__
        raise InputError(f"weights file {str(path)!r} does not fit {type(network).__name__} ({detail[:160]}); "
                         f"{hint}") from None
    return network.eval()


def bundle_root(name: str) -> str:
    """Folder of the bundle ``name``: ``$QSM_BUNDLES_DIR/name`` if set, else ``monai_bundles/name`` in this checkout."""
    base = os.environ.get("QSM_BUNDLES_DIR") or str(Path(__file__).resolve().parents[1] / "monai_bundles")
    return str(Path(base) / name)
