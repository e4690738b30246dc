"""What every bundle's command line shares: case lists, output names, progress lines and one-line errors.

The bundles' ``inference.json`` are MONAI workflows built from :mod:`lightning_modules.bundle_workflow`, which
uses these helpers. User errors leave through :func:`exit_on_input_error`
as a single line on stderr and a non-zero exit, never as a traceback. :func:`validated_cases` checks every
case and resolves every output path of a run before anything is written; :func:`interruptible` makes SIGTERM
and SIGINT end a run with a non-zero exit and no temporary or partial output; :func:`print_bundle_help` is what
``--help`` prints.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from lightning_modules.io import InputError, nifti_stem, remove_pending_temp_files
from lightning_modules.monai_trust import bundles_dir

if TYPE_CHECKING:
    import torch
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


def no_input_error(main_key: str) -> InputError:
    """The one-line error of a run given neither its main input nor ``--datalist``."""
    return InputError(f"no input given; pass --{main_key} FILE.nii.gz or --datalist FILE.json")


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
            raise no_input_error(main_key)
        return [dict(single_case)]
    path = Path(str(datalist))
    if path.is_dir():
        raise InputError(f"datalist file {str(path)!r} is a folder, not a file; give the JSON file inside it")
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


def _real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.path.expanduser(str(path)))


def _given_paths(case: dict) -> dict[str, str]:
    """Each option of a case whose value names an existing file, by its real path (symlinks resolved)."""
    return {_real(v): k for k, v in case.items() if isinstance(v, str) and is_given(v) and os.path.isfile(v)}


def check_output_folder(folder: str | os.PathLike) -> None:
    """Raise :class:`InputError` unless ``folder`` is a folder we can write to, or can be created."""
    probe = Path(_real(folder))
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        what = "--output_dir" if probe == Path(_real(folder)) else f"--output_dir {str(folder)!r}: the path"
        raise InputError(f"{what} {str(probe)!r} is an existing file, not a folder; give a folder path")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"--output_dir {str(folder)!r}: folder {str(probe)!r} is not writable; give another folder")


def check_outputs(cases: list[dict], outputs: list[list[Path]], *, datalist: str | os.PathLike | None = None) -> None:
    """Refuse a run whose outputs would overwrite any input of any case (compared as real paths, so symlinks and
    ``..`` do not hide a collision), each other, or a folder, or whose output folder cannot be written.

    Args:
        cases: the cases of the run (dicts of command-line options; every value naming a file is an input).
        outputs: for each case, every path it writes.
        datalist: the ``--datalist`` file, an input too.

    Raises:
        InputError: the first collision, naming both paths and the fix.
    """
    inputs: dict[str, str] = {}
    for case in cases:
        inputs.update(_given_paths(case))
    if is_given(datalist) and os.path.isfile(str(datalist)):
        inputs[_real(str(datalist))] = "datalist"
    seen: dict[str, Path] = {}
    for path in (p for case_outputs in outputs for p in case_outputs):
        check_output_folder(path.parent)
        real = _real(path)
        if real in inputs:
            raise InputError(f"output {str(path)!r} would overwrite the --{inputs[real]} input file; give another "
                             f"--output_dir or rename the input")
        if real in seen:
            raise InputError(f"two cases would both write {str(path)!r}; give the inputs distinct file names")
        if os.path.isdir(real):
            raise InputError(f"output {str(path)!r} is an existing folder; remove it or give another --output_dir")
        seen[real] = path


def validated_cases(
    single_case: dict, *, datalist: str | os.PathLike | None, main_key: str,
    outputs_of: Callable[[str], list[Path]], validate: Callable[[dict], object],
) -> list[dict]:
    """The cases to process, each validated (``validate`` raises :class:`InputError`) before anything is written,
    with every output path resolved and checked by :func:`check_outputs` (``outputs_of(main_input)`` lists a
    case's outputs): no output overwrites an input of the run or another output."""
    cases = case_list(single_case, datalist=datalist, main_key=main_key)
    check_outputs(cases, [outputs_of(c[main_key]) for c in cases], datalist=datalist)
    for case in cases:
        validate(case)
    return cases


def parse_number(value: object, option: str, *, integer: bool = False, minimum: float | None = None,
                 maximum: float | None = None, hint: str = "") -> float | int | None:
    """A numeric command-line option (``None`` if absent), refused with the option's name if it is not a number
    (or not an integer) or lies outside ``[minimum, maximum]``; ``hint`` says what is expected.

    >>> parse_number("3", "b0_tesla", minimum=0.1)
    3.0
    """
    if not is_given(value):
        return None
    expected = f"; give {hint}" if hint else ""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InputError(f"--{option} {value!r} is not a number{expected}") from None
    if not math.isfinite(number) or (integer and number != int(number)):
        raise InputError(f"--{option} {value!r} is not {'an integer' if integer else 'a finite number'}{expected}")
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        low = "" if minimum is None else f"{minimum:g} ≤ "
        raise InputError(f"--{option} {number:g} is outside {low}value{'' if maximum is None else f' ≤ {maximum:g}'}"
                         f"{expected}")
    return int(number) if integer else number


def resolve_device(device: object) -> torch.device:
    """``--device`` as a torch device, refused in one line if it is not a device name or is not available here."""
    import torch

    try:
        resolved = torch.device(device)  # type: ignore[arg-type]
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"--device {device!r} is not a device; use cpu or cuda (cuda:0, ...)") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"--device {device} is not available (this PyTorch has no CUDA or sees no GPU); "
                             "use --device cpu")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise InputError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {device} is not available here; use --device cpu")
    return resolved


class Interrupted(BaseException):
    """Raised in the main thread when the process receives SIGTERM inside :func:`interruptible` (a
    ``BaseException``, like ``KeyboardInterrupt``, so that ``except Exception`` does not swallow it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Run a bundle so that SIGTERM (e.g. the Slicer panel's Cancel) and SIGINT (Ctrl+C) end it with exit status
    128 + signal number, one line on stderr, and no temporary file of an unfinished atomic write.

    Outputs are written atomically (a case's set with :func:`lightning_modules.io.atomic_output_set`), so an
    interrupted run leaves the complete outputs of the cases that finished and nothing of the others. A
    ``SystemExit`` raised after a signal (Lightning ends ``fit`` that way on SIGTERM, without an exit code) or a
    run that returns after swallowing one also exits non-zero.
    """
    received: list[int] = []

    def on_sigterm(signum: int, _frame: object) -> None:
        received.append(signum)
        raise Interrupted(signum)

    main_thread = _in_main_thread()
    # SIGINT too: a process started in the background of a non-interactive shell inherits SIGINT as ignored, and
    # Python then installs no KeyboardInterrupt handler, so an explicit Ctrl+C / kill -INT would do nothing
    previous = {s: signal.signal(s, on_sigterm) for s in (signal.SIGTERM, signal.SIGINT)} if main_thread else {}
    try:
        yield
    except (Interrupted, KeyboardInterrupt) as err:
        _exit_interrupted(getattr(err, "signum", signal.SIGINT))
    except SystemExit as err:
        if received and not err.code:
            _exit_interrupted(received[0])
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        _exit_interrupted(received[0])


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _exit_interrupted(signum: int) -> None:
    remove_pending_temp_files()
    name = signal.Signals(signum).name
    print(f"error: interrupted by {name}; the unfinished case wrote nothing", file=sys.stderr, flush=True)
    raise SystemExit(128 + int(signum)) from None


def _output_help(spec: dict, options: dict) -> str:
    """``{stem}_<suffix> (unit; with --option value)`` of one described output, for ``--help`` (the condition only
    where the output is not written under every choice of the option)."""
    unit = spec["unit"] or ("a table" if "columns" in spec else "no unit")
    when = [f"with --{option} " + " or ".join(json.dumps(v) if isinstance(v, bool) else str(v) for v in values)
            for option, values in spec.get("when", {}).items()
            if set(options[option].get("choices", ())) - set(values)]
    return f"{{stem}}_{spec['suffix']} ({'; '.join([unit, *when])})"


def print_bundle_help(bundle_root: str | os.PathLike) -> None:
    """Print a bundle's command-line options as its capability description (``configs/capability.json``, see
    :mod:`lightning_modules.capability`) states them: inputs, then options with units, choices and defaults."""
    from lightning_modules.capability import describe

    root = Path(bundle_root)
    description = describe(root.name, str(root))
    config = root / "configs" / "inference.json"
    lines = [f"usage: python -m monai.bundle run --config_file {config} --OPTION VALUE ...", "",
             f"{description['bundle']}: {description['title']}: {description['description']}", "", "options:"]
    for option, spec in {**description["inputs"], **description["options"]}.items():
        text = spec["help"]
        if "default" in spec and "default" not in text and is_given(spec["default"]):
            text = f"{text} (default {json.dumps(spec['default'], ensure_ascii=False)})"
        lines.append(f"  --{option:<22} {text}")
    lines.append(f"  --{'help':<22} print these options and exit")
    outputs = ", ".join(_output_help(spec, description["options"]) for spec in description["outputs"].values())
    lines += ["", f"Outputs in {{output_dir}}: {outputs}; see the bundle's docs/README.md."]
    print("\n".join(lines), flush=True)


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
    return str(Path(bundles_dir()) / name)
