"""A temporary folder for one bundle run: the inputs written from Slicer nodes and the bundle's outputs."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path


class TemporaryWorkspace:
    """``<base>/QSMSlicer-XXXX/{inputs,outputs}``, removed by :meth:`cleanup` (or on leaving a ``with`` block).

    Args:
        base_dir: parent folder (Slicer passes ``slicer.app.temporaryPath``); default: the system temp folder.
    """

    def __init__(self, base_dir: str | os.PathLike | None = None) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="QSMSlicer-", dir=base_dir))
        self.inputs = self.root / "inputs"
        self.outputs = self.root / "outputs"
        self.inputs.mkdir()
        self.outputs.mkdir()

    @property
    def exists(self) -> bool:
        """The folder is still on disk."""
        return self.root.exists()

    def input_path(self, name: str, suffix: str = ".nii.gz") -> Path:
        """Path for an input file named after ``name`` (e.g. a node name), made safe for any file system.

        ``"T2* map (1)"`` becomes ``inputs/T2_map_1.nii.gz``; the file name's stem is the bundle's output stem.
        """
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.") or "input"
        return self.inputs / f"{safe}{suffix}"

    def cleanup(self) -> None:
        """Remove the folder and everything in it (safe to call more than once)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> TemporaryWorkspace:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()
