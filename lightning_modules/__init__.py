"""Deep-learning quantitative MRI: physics, simulators, networks, solvers, Lightning modules and bundle apps.

Import sub-packages explicitly (``lightning_modules.qsm``, ``lightning_modules.ivim`` ...); this top level stays
light so that ``import lightning_modules`` is fast.
"""

__version__ = "0.1.0"
