"""Keep MONAI's config trust warning for other configs, not for this project's own shipped bundle configs.

``python -m monai.bundle run --config_file X`` warns, before it reads ``X``, that a config can run any code. For
the four configs we ship that warning is noise in front of every message users read (the Slicer panels show the
bundle's log). It is printed before any of our code runs, so the filter is installed at interpreter start-up by
a ``.pth`` file in the environment's site-packages (:func:`install_pth`, run by ``tools/install.sh``). A config
counts as ours only if its real path is ``<bundles>/<bundle>/configs/<file>`` with ``<bundles>`` the folder
:func:`bundles_dir` names; copies elsewhere still get MONAI's warning.

This module imports only the standard library: it is imported at every interpreter start-up.
"""

from __future__ import annotations

import ast
import os
import re
import warnings

#: The bundles this project ships (``monai_bundles/<name>``).
BUNDLE_NAMES = ("qsm_dipole_inversion", "ivim_mapping", "spio_quantification", "rim_lesion_detection")

#: The ``.pth`` file written by :func:`install_pth`; it does nothing once the package is gone.
PTH_NAME = "qsm_slicer_extension_monai_trust.pth"
PTH_LINE = ("import importlib.util as _u; _u.find_spec('lightning_modules.monai_trust') and "
            "__import__('lightning_modules.monai_trust').monai_trust.install()\n")

_TRUST_WARNING = re.compile(r"parsing config_file (?P<files>.+?): any `\"_target_\"` value", re.DOTALL)


def bundles_dir() -> str:
    """Folder holding the bundles: ``$QSM_BUNDLES_DIR`` if set, else ``monai_bundles`` of this checkout."""
    return os.environ.get("QSM_BUNDLES_DIR") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "monai_bundles")


def is_shipped_config(config_file: str) -> bool:
    """True if ``config_file`` resolves to ``<bundles_dir>/<one of BUNDLE_NAMES>/configs/<file>``."""
    relative = os.path.relpath(os.path.realpath(config_file), os.path.realpath(bundles_dir()))
    parts = relative.split(os.sep)
    return len(parts) == 3 and parts[0] in BUNDLE_NAMES and parts[1] == "configs"


def _config_files(text: str) -> list[str]:
    if text.startswith(("[", "(")):
        try:
            return [str(f) for f in ast.literal_eval(text)]
        except (ValueError, SyntaxError):
            return []
    return [text]


def is_shipped_trust_warning(message: object, category: type) -> bool:
    """True for MONAI's trust warning about config files that are all shipped by us."""
    match = _TRUST_WARNING.match(str(message))
    files = _config_files(match["files"]) if match and issubclass(category, UserWarning) else []
    return bool(files) and all(is_shipped_config(f) for f in files)


def install() -> None:
    """Make ``warnings`` drop MONAI's trust warning for our shipped configs (every other warning is shown)."""
    previous = warnings.showwarning
    if getattr(previous, "_qsm_monai_trust", False):
        return

    def showwarning(message, category, filename, lineno, file=None, line=None):
        try:
            if is_shipped_trust_warning(message, category):
                return
        except Exception:  # never let the filter hide a warning or break a program
            pass
        previous(message, category, filename, lineno, file, line)

    showwarning._qsm_monai_trust = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning


def install_pth(site_dir: str | None = None) -> str:
    """Write the ``.pth`` file that calls :func:`install` at start-up into ``site_dir`` (default: purelib)."""
    import sysconfig

    path = os.path.join(site_dir or sysconfig.get_paths()["purelib"], PTH_NAME)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(PTH_LINE)
    return path

