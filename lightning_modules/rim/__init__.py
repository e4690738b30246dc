"""Rim-lesion detection: QSMRim-Net (Zhang et al., NeuroImage: Clinical 2022) with DeepSMOTE (Dablain et al. 2022).

``lesions`` (components, patches, centroids), ``radiomics`` (pyradiomics wiring), ``synth`` (synthetic subjects),
``smote`` and ``networks`` (the model), ``module`` / ``data`` (Lightning), ``app`` (the bundle's inference app).
"""
