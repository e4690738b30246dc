# ruff: noqa: N999  (Slicer names packages in CamelCase, like its modules)
"""Plain-Python core shared by the QSM Slicer modules: bundle command lines, child processes, outputs.

Nothing here imports ``slicer``, ``qt`` or ``lightning_modules`` at import time, so the modules load fast
and pytest can drive everything outside 3D Slicer. The few functions that talk to Slicer
(:mod:`QSMSlicerCommon.slicer_nodes`, :mod:`QSMSlicerCommon.slicer_panel`) import it inside their bodies.
The package re-exports nothing: code imports what it uses from the submodules.
"""
