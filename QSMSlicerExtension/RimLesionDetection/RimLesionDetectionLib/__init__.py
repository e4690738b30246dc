# ruff: noqa: N999  (Slicer names module packages <Module>Lib)
"""Plain-Python helpers of the RimLesionDetection module.

Importing this package makes ``QSMSlicerCommon`` importable when the module runs from a source checkout
(``QSMSlicerExtension/QSMSlicerCommon`` next to the module folder); an installed extension has it next to the
module already.
"""

from __future__ import annotations

import os
import sys

_EXTENSION_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if os.path.isdir(os.path.join(_EXTENSION_DIR, "QSMSlicerCommon")) and _EXTENSION_DIR not in sys.path:
    sys.path.append(_EXTENSION_DIR)
