"""Where the extension's bundles and the ``lightning_modules`` sources are, in the source tree or installed.

Installed extension (see the top-level ``CMakeLists.txt``)::

    <qt-scripted-modules>/QSMSlicerCommon/            this package
    <qt-scripted-modules>/QSMSlicerExtensionData/monai_bundles/
    <qt-scripted-modules>/QSMSlicerExtensionData/lightning_modules/

Source checkout: ``<repo>/QSMSlicerExtension/QSMSlicerCommon`` with ``<repo>/monai_bundles`` and
``<repo>/lightning_modules``. Both have the same shape: a root holding ``monai_bundles`` and ``lightning_modules``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: Folder name of the installed data next to the scripted modules.
INSTALLED_DATA_DIR = "QSMSlicerExtensionData"


@dataclass(frozen=True)
class ExtensionPaths:
    """The two folders a bundle run needs.

    Attributes:
        bundles_dir: holds one folder per MONAI bundle.
        python_path: holds the ``lightning_modules`` package (put on the child's ``PYTHONPATH``).
    """

    bundles_dir: Path
    python_path: Path

    def child_environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a bundle process: ``base`` plus ``PYTHONPATH``, ``QSM_BUNDLES_DIR`` and unbuffered output."""
        env = dict(os.environ if base is None else base)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.python_path), env.get("PYTHONPATH", "")) if p)
        env["QSM_BUNDLES_DIR"] = str(self.bundles_dir)
        env["PYTHONUNBUFFERED"] = "1"
        return env


def locate_extension_paths(package_dir: str | os.PathLike | None = None) -> ExtensionPaths:
    """Find the bundles and ``lightning_modules`` for this copy of ``QSMSlicerCommon``.

    Args:
        package_dir: the ``QSMSlicerCommon`` folder (default: this file's folder).

    Raises:
        FileNotFoundError: neither the installed nor the source-tree layout is present.
    """
    here = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parent
    candidates = (here.parent / INSTALLED_DATA_DIR, here.parent.parent)
    for root in candidates:
        if (root / "monai_bundles").is_dir() and (root / "lightning_modules").is_dir():
            return ExtensionPaths(bundles_dir=root / "monai_bundles", python_path=root)
    raise FileNotFoundError(
        f"no monai_bundles and lightning_modules folders found in {' or '.join(str(c) for c in candidates)}; "
        "reinstall the QSMSlicerExtension or run Slicer from a complete source checkout"
    )
