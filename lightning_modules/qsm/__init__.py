"""QSM dipole inversion: dipole physics, classical solvers (TKD, NDI), simulators and the bundle app."""
