"""benchmarks/spio_paired_bins.py's per-base-kind rows (session 36): the right images land in each kind's bin."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import spio_paired_bins as paired  # noqa: E402  (a benchmark module, found through sys.path)
import spio_variant as v1  # noqa: E402


def test_kinds_split_the_images_with_iron_in_order() -> None:
    empty, iron = np.zeros((4, 4)), np.ones((4, 4))
    samples = [(None, iron, 0.0), (None, empty, 0.0), (None, iron, 0.0), (None, iron, 0.0)]
    kinds = ["organ", "vial phantom", "vial phantom", "organ"]
    results = {"A": {"all": [0.1, 0.3, 0.4]}, "B": {"all": [0.2, 0.5, 0.6]}}  # scores() skips the empty image
    order = paired.split_by_kind(results, samples, kinds)
    assert order == ["organ", "vial phantom"]
    assert results["A"]["organ"] == [0.1, 0.4] and results["A"]["vial phantom"] == [0.3]
    assert results["B"]["organ"] == [0.2, 0.6] and results["B"]["vial phantom"] == [0.5]


def test_variant_kinds_name_both_bases_about_equally() -> None:
    kinds = [v1.variant_base_kind(41, i) for i in range(60)]
    assert set(kinds) == {"Shepp–Logan", "random ellipses"}
    assert 15 <= kinds.count("Shepp–Logan") <= 45
    assert paired._base_kinds("variant", range(60), 41) == kinds
    assert paired._base_kinds("real", range(3), 2) is None
