"""DeepSMOTE (Dablain et al. 2022): N + k·n samples, rim+ labels for the new ones, training only."""

from __future__ import annotations

import torch

from lightning_modules.rim.networks import QsmRimNet
from lightning_modules.rim.smote import DeepSmote, interpolate_minority


def test_interpolation_adds_k_per_minority_sample_between_neighbours() -> None:
    features = torch.randn(20, 8)
    labels = torch.zeros(20)
    labels[[1, 4, 7, 9, 15]] = 1.0
    out, out_labels = interpolate_minority(features, labels, k=3)
    assert out.shape == (20 + 3 * 5, 8) and out_labels.shape == (35,)
    torch.testing.assert_close(out[:20], features)
    assert torch.all(out_labels[20:] == 1.0) and torch.equal(out_labels[:20], labels)
    minority = features[labels > 0.5]
    low, high = minority.min(0).values, minority.max(0).values
    assert torch.all(out[20:] >= low - 1e-6) and torch.all(out[20:] <= high + 1e-6)  # convex combinations


def test_few_minority_samples_use_the_neighbours_there_are() -> None:
    labels = torch.tensor([0.0, 1.0, 0.0, 1.0])
    out, out_labels = interpolate_minority(torch.randn(4, 3), labels, k=3)
    assert out.shape[0] == 4 + 1 * 2 and out_labels.sum() == 4
    single, _ = interpolate_minority(torch.randn(4, 3), torch.tensor([0.0, 1.0, 0.0, 0.0]), k=3)
    assert single.shape[0] == 4


def test_layer_oversamples_only_in_training() -> None:
    layer = DeepSmote(6, k=2)
    x, labels = torch.randn(10, 6), torch.tensor([1.0, 1.0, 1.0, 0, 0, 0, 0, 0, 0, 0])
    out, out_labels = layer(x, labels)
    assert out.shape == (10 + 2 * 3, 6) and out_labels.shape == (16,)
    layer.eval()
    out, out_labels = layer(x, labels)
    assert out.shape == (10, 6) and torch.equal(out_labels, labels)


def test_network_outputs_one_logit_per_lesion_and_stores_its_threshold() -> None:
    network = QsmRimNet(n_radiomics=5, smote_k=3)
    patches, radiomics = torch.randn(8, 3, 24, 24, 24), torch.randn(8, 5)
    labels = torch.tensor([1.0, 1.0, 1.0, 1.0, 0, 0, 0, 0])
    logits, targets = network(patches, radiomics, labels)
    assert logits.shape == (8 + 3 * 4,) and targets.shape == (20,)
    logits.sum().backward()
    assert network.cnn.features[0].weight.grad is not None
    network.eval()
    assert network(patches, radiomics).shape == (8,)
    assert "threshold" in network.state_dict()
    assert QsmRimNet(n_radiomics=0, smote_k=0)(patches).shape == (8,)
