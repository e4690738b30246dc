"""The View Line acquisition the SPIO capability assumes (its constants live with the capability they describe).

DESIGN.md, "View Line (SPIO)"; della Maggiora et al., "DeepSPIO: Super Paramagnetic Iron Oxide Particle
Quantification Using Deep Learning in Magnetic Resonance Imaging", IEEE TPAMI 2020. Image plane x–z,
x = phase-encode axis (array axis 0), z = readout axis and B0 direction (array axis 1).
"""

from __future__ import annotations

#: Main field strength of the View Line acquisition, T.
VIEWLINE_B0_TESLA = 7.0
#: SPIO volume susceptibility (SI, dimensionless) per µg Fe/mm³ (saturated iron oxide at 7 T).
SPIO_CHI_SI_PER_UG_FE_PER_MM3 = 2.0e-5
#: Air minus tissue volume susceptibility (SI): air 0.36 ppm, water −9.05 ppm (the air-bubble confounder).
AIR_MINUS_TISSUE_CHI_SI = 9.41e-6
#: Field of view (x, z), mm, and image matrix (x, z).
VIEWLINE_FOV_MM = (50.0, 50.0)
VIEWLINE_MATRIX = (128, 128)
#: Number of excited view lines, their width and spacing (mm); line k is centred at (k − 12) · spacing.
VIEWLINE_N_LINES = 25
VIEWLINE_LINE_WIDTH_MM = 1.0
VIEWLINE_LINE_SPACING_MM = 2.0
#: Slice-selection (excitation) and readout gradients, T/m.
VIEWLINE_GZ_T_PER_M = 40e-3
VIEWLINE_GR_T_PER_M = 160e-3
#: Echo time, s.
VIEWLINE_TE_S = 8.7e-3
#: Transverse relaxation rate R2* = R2*_tissue + relaxivity · concentration (s⁻¹, s⁻¹ per µg Fe/mm³).
VIEWLINE_R2STAR_TISSUE_PER_S = 20.0
VIEWLINE_R2STAR_PER_UG_FE_PER_MM3 = 1800.0
#: Oversampling of the readout axis z in the simulation (≥ 4 × finer than the image).
VIEWLINE_Z_OVERSAMPLING = 4
#: Out-of-plane (y) extent of the simulated 3-D volume: number of slices and slice thickness (mm).
VIEWLINE_NY = 24
VIEWLINE_DY_MM = 1.25
#: Concentration range of the training distribution (DeepSPIO §3.2), µg Fe/mm³.
SPIO_CONCENTRATION_RANGE_UG_FE_PER_MM3 = (0.22, 27.9)
