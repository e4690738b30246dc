"""A no-learning reference for DeepSPIO's accuracy: the training-mean predictor.

It predicts the mean concentration of the training distribution everywhere (the scale against which a learned
estimate is judged, as in della Maggiora et al., "DeepSPIO", IEEE TPAMI 2020, §5). The all-zero map, the L1
optimum for sparse maps, has NMAE exactly 1.
"""

from __future__ import annotations

import numpy as np


class TrainingMeanBaseline:
    """``TrainingMeanBaseline().fit(concentrations).predict(image)``: a constant map (µg Fe/mm³)."""

    def __init__(self) -> None:
        self.mean_ug_per_mm3 = 0.0

    def fit(self, concentrations: np.ndarray) -> TrainingMeanBaseline:
        """Store the mean of training concentration maps (any shape), µg Fe/mm³."""
        self.mean_ug_per_mm3 = float(np.mean(concentrations))
        return self

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Constant concentration map (x, z) for a View Line image (2, x, z)."""
        return np.full(np.shape(image)[-2:], self.mean_ug_per_mm3)
