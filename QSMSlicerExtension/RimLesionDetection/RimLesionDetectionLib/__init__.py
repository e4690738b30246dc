# ruff: noqa: N999  (Slicer names module packages <Module>Lib)
"""Plain-Python helpers of the RimLesionDetection module; importing the package first makes ``QSMSlicerCommon``
importable from a source checkout (QSMSlicerExtension/README.md, "From a source checkout")."""

import os
import sys

_EXTENSION_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if os.path.isdir(os.path.join(_EXTENSION_DIR, "QSMSlicerCommon")) and _EXTENSION_DIR not in sys.path:
    sys.path.append(_EXTENSION_DIR)
