"""The library implementations that replaced hand-written ones (issue 26, step 5) give the numbers the hand-written
code gave: scikit-learn's ROC / PR areas (:mod:`lightning_modules.rim.scores`), scikit-image's SSIM
(:mod:`lightning_modules.metrics`) and MONAI's ``ResNetBlock`` (:mod:`lightning_modules.rim.networks`).

The reference numbers were computed by the hand-written code (commit e8ad70b) on the same seeded data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from lightning_modules import metrics
from lightning_modules.rim import scores

RIM_WEIGHTS = Path(__file__).resolve().parents[1] / "monai_bundles" / "rim_lesion_detection" / "models" / "model.pt"


def _lesion_scores() -> tuple[np.ndarray, np.ndarray]:
    """300 lesions, ~20 % rim+, scores rounded to 0.01 so that many tie."""
    rng = np.random.default_rng(2026)
    labels = rng.random(300) < 0.2
    return labels, np.round(rng.random(300) * 0.6 + 0.35 * labels, 2)


def test_scores_give_the_hand_written_numbers():
    labels, s = _lesion_scores()
    assert_allclose(scores.roc_auc(labels, s), 0.8977200000000001, rtol=1e-12)
    assert_allclose(scores.pr_auc(labels, s), 0.7513941118052772, rtol=1e-12)
    assert_allclose(scores.partial_roc_auc(labels, s), 0.6036, rtol=1e-12)
    assert_allclose(scores.partial_roc_auc(labels, s, standardised=True), 0.7913684210526316, rtol=1e-12)
    assert_allclose(scores.partial_roc_auc(labels, s, max_fpr=0.3), 0.69008, rtol=1e-12)
    assert_allclose(scores.partial_roc_auc(labels, s, max_fpr=0.3, standardised=True), 0.8176941176470588, rtol=1e-12)
    assert scores.best_f1_threshold(labels, s) == pytest.approx((0.605, 0.7012987012987013), rel=1e-12)
    assert scores.detection_metrics(labels, s, threshold=0.5)["f1"] == pytest.approx(0.5070422535211268, rel=1e-12)


def test_curves_keep_their_order_and_points():
    labels, s = _lesion_scores()
    fpr, tpr, thresholds = scores.roc_curve(labels, s)
    precision, recall, pr_thresholds = scores.pr_curve(labels, s)
    assert len(fpr) == len(precision) == len(np.unique(s)) + 1 == 83  # one point per distinct score, plus (0, 0)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1) and np.all(np.diff(fpr) >= 0)
    assert thresholds[0] == pr_thresholds[0] == np.inf and np.array_equal(thresholds, pr_thresholds)
    assert (recall[0], precision[0]) == (0, 1) and np.array_equal(recall, tpr)
    tp, fp = tpr * labels.sum(), fpr * (~labels).sum()
    assert_allclose(precision[1:], tp[1:] / (tp[1:] + fp[1:]), rtol=1e-15)


def test_scores_on_cases_worked_by_hand():
    labels, s = np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1])
    assert scores.roc_auc(labels, s) == 0.75  # 3 of the 4 (rim+, rim−) pairs are ordered
    assert scores.pr_auc(labels, s) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)  # recall steps at precision 1 and 2/3
    assert scores.roc_auc([1, 0], [0.5, 0.5]) == 0.5  # a tie counts one half
    perfect = np.array([0.9, 0.2, 0.8, 0.1])
    assert scores.partial_roc_auc(labels, perfect) == scores.partial_roc_auc(labels, perfect, standardised=True) == 1
    tied = np.full(4, 0.3)  # the chance diagonal: area 0.1²/2 over FPR < 0.1
    assert scores.partial_roc_auc(labels, tied) == pytest.approx(0.05)
    assert scores.partial_roc_auc(labels, tied, standardised=True) == pytest.approx(0.5)


def _maps() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2026)
    rng.random(300), rng.random(300)  # the draws of _lesion_scores: the reference numbers were made in one sequence
    estimate = rng.normal(size=(20, 22, 18)) * 0.05
    reference = estimate + rng.normal(size=estimate.shape) * 0.02
    mask = np.zeros(estimate.shape, bool)
    mask[3:17, 4:19, 2:16] = True
    return estimate, reference, mask


def test_ssim_and_xsim_give_the_hand_written_numbers():
    estimate, reference, mask = _maps()
    assert_allclose(metrics.xsim(estimate, reference, mask), 0.9115437345608881, rtol=1e-12)
    assert_allclose(metrics.xsim(estimate, reference), 0.903998683984248, rtol=1e-12)
    assert_allclose(metrics.ssim(estimate, reference, mask), 0.8613189378620109, rtol=1e-12)
    assert_allclose(metrics.ssim(estimate, reference), 0.8484175628369401, rtol=1e-12)
    assert_allclose(metrics.ssim(estimate, reference, mask, data_range=0.3), 0.835484299673629, rtol=1e-12)


def test_xsim_constants_on_flat_maps():
    # flat maps: no variance, so XSIM = C1 / (Δ² + C1) with C1 = (K1 L)² = 1e-4 ppm²; an offset of 0.01 ppm gives 1/2
    flat = np.zeros((12, 12, 12))
    assert metrics.xsim(flat + 0.01, flat) == pytest.approx(0.5, rel=1e-9)
    assert metrics.xsim(flat + 0.3, flat + 0.3) == pytest.approx(1.0)


def _rim_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(7)
    channel_scale = torch.tensor([0.05, 1.0, 1.0])[None, :, None, None, None]  # QSM in ppm, FLAIR, lesion mask
    patches = torch.randn(6, 3, 24, 24, 24, generator=generator) * channel_scale
    patches[:, 2] = (patches[:, 2] > 0).float()
    return patches, torch.randn(6, 536, generator=generator)


@pytest.mark.skipif(not RIM_WEIGHTS.is_file(), reason="the shipped rim weights are not in this checkout")
def test_shipped_rim_weights_give_the_same_probabilities_with_monai_blocks():
    from lightning_modules.rim.ensemble import QsmRimNetEnsemble

    ensemble = QsmRimNetEnsemble(5, n_radiomics=536)
    state = torch.load(RIM_WEIGHTS, map_location="cpu", weights_only=True)
    assert any(".body.0." in k for k in state)  # saved with the hand-written block's layer names
    ensemble.load_state_dict(state)  # strict: every old name maps to a MONAI ResNetBlock layer
    with torch.no_grad():
        probabilities = torch.sigmoid(ensemble.eval()(*_rim_inputs()))
    assert_allclose(probabilities.numpy(), [0.004106597043573856, 0.011182649061083794, 0.883018970489502,
                                            0.001213178737089038, 0.0017195817781612277, 0.10168653726577759],
                    rtol=1e-5)
    again = QsmRimNetEnsemble(5, n_radiomics=536)
    again.load_state_dict(ensemble.state_dict())  # and weights saved with the new names load as they are
    with torch.no_grad():
        assert torch.equal(torch.sigmoid(again.eval()(*_rim_inputs())), probabilities)


def test_rim_network_is_initialised_as_before_for_a_seed():
    from lightning_modules.rim.networks import QsmRimNet

    torch.manual_seed(3)
    state = QsmRimNet(536).state_dict()
    for name, total in (("cnn.features.4.downsample.0.weight", -1.868512996705249),
                        ("cnn.features.4.conv2.weight", 2.4154072726937557),
                        ("cnn.features.5.conv1.weight", 0.7100256024430109),
                        ("classifier.1.weight", 0.9047630575369112)):
        assert_allclose(float(state[name].double().sum()), total, rtol=1e-6, err_msg=name)
