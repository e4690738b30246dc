"""Rim-lesion detection on held-out synthetic subjects: QSMRim-Net vs its ablations and the ten-line edge rule.

QSMRim-Net (Zhang et al., NeuroImage: Clinical 2022; DeepSMOTE: Dablain et al. 2022) as shipped in the
``rim_lesion_detection`` bundle, against its ablations, all trained by the same ``train.json`` on the same
lesions and split: (a) radiomics only (the radiomics branch alone, no DeepSMOTE), (b) the image branch alone
(CNN + rim profile) without DeepSMOTE, (c) the CNN alone without the rim profile and without DeepSMOTE, (d) the
full network without the rim profile; and two references outside the network: an L2 logistic regression on the
same standardised radiomic features (scikit-learn) and the FIELD_NOTES rule (mean QSM in a two-voxel band
across the lesion edge minus the core mean). Thresholds are F1-optimal on the training run's validation
lesions. Lesion-level ROC AUC, partial AUC (FPR < 0.1), PR AUC and F1 at each model's stored operating
threshold; a PNG of the ROC/PR curves and example patches; and the wall and CPU time of whole-brain inference
(50 lesions, radiomics included) through the bundle's ``inference.json``.

Train the ablations first (see the bundle's docs/README.md), then:

    .venv/bin/python benchmarks/rim_accuracy.py --train_cache /tmp/rim_cache/train --test_cache /tmp/rim_cache/test2

(``--test_seed_start 100000 --test_cache /tmp/rim_cache/test`` scores the earlier held-out set.)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lightning_modules.bundle_app import bundle_root
from lightning_modules.rim.data import build_cache, load_cache, stratified_folds
from lightning_modules.rim.ensemble import QsmRimNetEnsemble
from lightning_modules.rim.networks import QsmRimNet
from lightning_modules.rim.radiomics import FeatureStandardiser
from lightning_modules.rim.scores import (
    best_f1_threshold,
    detection_metrics,
    pr_auc,
    pr_curve,
    roc_auc,
    roc_curve,
)

BUNDLE = Path(bundle_root("rim_lesion_detection"))
RESULTS = Path(__file__).resolve().parent / "results" / "rim"
#: First seed of the 12 held-out subjects: 200000 is the set kept unseen until the final run of 2026-11-22;
#: 100000 is the earlier set, which guided design choices (its numbers are optimistic).
TEST_SEED_START = 200000
N_TEST_SUBJECTS = 12
STATS = BUNDLE / "models" / "radiomics_standardisation.json"
MODELS = {  # name → (weights, network options, ensemble members or None); all trained by configs/train.json on
    # the same lesions and split (fold k held out for member k; single models: fold 0)
    "QSMRim-Net (shipped 0.4.0; 0.3.0's members fine-tuned on real lesion shapes, calibrated)":
        (BUNDLE / "models" / "model.pt", {}, 5),
    "QSMRim-Net 0.3.0 (5-fold ensemble of CNN + rim profile + radiomics + DeepSMOTE; synthetic shapes)":
        (RESULTS / "qsmrim_net_synthetic_0.3.0.pt", {}, 5),
    "QSMRim-Net, one network (fold 0; shipped before the ensemble)": (RESULTS / "qsmrim_net_fold0.pt", {}, None),
    "radiomics only, 5-fold ensemble": (RESULTS / "radiomics_only_ensemble.pt", {"use_patch": False, "smote_k": 0}, 5),
    "radiomics only (radiomics branch, no DeepSMOTE; fold 0)": (RESULTS / "radiomics_only.pt",
                                                                {"use_patch": False, "smote_k": 0}, None),
    "image branch only (CNN + rim profile), no DeepSMOTE": (RESULTS / "image_branch_only_no_smote.pt",
                                                            {"n_radiomics": 0, "smote_k": 0}, None),
    "CNN only (no rim profile), no DeepSMOTE": (RESULTS / "cnn_only_no_smote.pt",
                                               {"n_radiomics": 0, "smote_k": 0, "use_profile": False}, None),
    "QSMRim-Net without the rim profile": (RESULTS / "qsmrim_net_no_profile.pt", {"use_profile": False}, None),
}


def predict(weights: Path, options: dict, members: int | None, patches: np.ndarray,
            features: np.ndarray) -> tuple[np.ndarray, float]:
    """Rim+ probabilities of cached lesions and the model's stored threshold (``members``: an ensemble's size)."""
    options = {"n_radiomics": features.shape[1], **options}
    network = QsmRimNet(**options) if members is None else QsmRimNetEnsemble(members, **options)
    network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    network.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(patches), 128):
            p = torch.as_tensor(patches[start:start + 128], dtype=torch.float32)
            out.append(torch.sigmoid(network(p, torch.as_tensor(features[start:start + 128]))).numpy())
    return np.concatenate(out), float(network.threshold)


def bootstrap_ci(labels: np.ndarray, scores: np.ndarray, metric, *, n: int = 500, seed: int = 0) -> tuple[float, float]:
    """95 % percentile bootstrap interval of ``metric`` over lesions (resampled with replacement)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n):
        index = rng.integers(0, len(labels), len(labels))
        if labels[index].min() != labels[index].max():
            values.append(metric(labels[index], scores[index]))
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def training_lesions(train_cache: Path, n_subjects: int) -> tuple[dict, np.ndarray]:
    """The training run's cached lesions and its validation mask (fold 0 of 5, seed 0)."""
    paths = sorted(train_cache.glob("subject_*.npz"))[:n_subjects]
    data = load_cache([str(p) for p in paths])
    return data, stratified_folds(data["rim_positive"], n_folds=5, seed=0) == 0


def radiomics_logistic_regression(train: dict, val: np.ndarray, standardiser: FeatureStandardiser,
                                  test_features: np.ndarray) -> tuple[np.ndarray, float]:
    """Reference outside the network: L2 logistic regression (scikit-learn, C = 1) on the standardised radiomic
    features of the training lesions; returns test probabilities and the F1-optimal validation threshold."""
    from sklearn.linear_model import LogisticRegression

    features = standardiser(train["features"])
    model = LogisticRegression(C=1.0, max_iter=5000).fit(features[~val], train["rim_positive"][~val])
    threshold = best_f1_threshold(train["rim_positive"][val], model.predict_proba(features[val])[:, 1])[0]
    return model.predict_proba(test_features)[:, 1], threshold


def time_whole_brain(n_lesions: int, folder: Path) -> dict[str, float]:
    """Wall and CPU seconds of the bundle (its ``inference.json``) on one synthetic brain with ``n_lesions`` lesions."""
    import nibabel as nib
    from monai.bundle import run

    from lightning_modules.rim.synth import make_subject

    subject = make_subject(123456, n_lesions=(n_lesions, n_lesions))
    files = {}
    for key, data in (("qsm", subject.qsm_ppm), ("flair", subject.flair), ("lesion_mask", subject.labels)):
        files[key] = str(folder / f"timing_{key}.nii.gz")
        nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), subject.affine), files[key])
    wall, cpu = time.perf_counter(), time.process_time()
    run(config_file=str(BUNDLE / "configs" / "inference.json"), output_dir=str(folder / "timing_out"), device="cpu",
        **files)
    return {"n_lesions": int(subject.labels.max()), "shape": list(subject.labels.shape),
            "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}


def plot(curves: dict, data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(15, 6.5))
    grid = fig.add_gridspec(2, 4)
    roc_ax, pr_ax = fig.add_subplot(grid[:, 0]), fig.add_subplot(grid[:, 1])
    for name, (labels, scores) in curves.items():
        fpr, tpr, _ = roc_curve(labels, scores)
        precision, recall, _ = pr_curve(labels, scores)
        roc_ax.plot(fpr, tpr, label=name)
        pr_ax.plot(recall[1:], precision[1:], label=name)
    roc_ax.axvline(0.1, color="grey", lw=0.5, ls="--")
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (lesion level)")
    pr_ax.set(xlabel="recall", ylabel="precision", title="precision-recall")
    roc_ax.legend(fontsize=7, loc="lower right")
    rng = np.random.default_rng(0)
    labels = data["rim_positive"]
    picks = [rng.choice(np.flatnonzero((labels == 1) & (data["volume_mm3"] > 200))),
             rng.choice(np.flatnonzero((labels == 0) & (data["volume_mm3"] > 200)))]
    for row, (index, title) in enumerate(zip(picks, ("rim+", "rim−"))):
        patch = data["patches"][index].astype(np.float32)
        middle = patch.shape[-1] // 2
        for col, (channel, limits) in enumerate((("QSM (ppm)", (-0.1, 0.15)), ("FLAIR / brain median", (None, None)))):
            ax = fig.add_subplot(grid[row, 2 + col])
            shown = ax.imshow(patch[col, :, :, middle].T, cmap="gray", origin="lower", vmin=limits[0], vmax=limits[1])
            ax.contour(patch[2, :, :, middle].T, [0.5], colors="r", linewidths=0.6)
            ax.set_title(f"{title} lesion, axial: {channel}", fontsize=8)
            ax.axis("off")
            fig.colorbar(shown, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train_cache", type=Path, default=Path("~/.cache/qsm_slicer_extension/rim/lesions"))
    parser.add_argument("--test_cache", type=Path, default=Path("~/.cache/qsm_slicer_extension/rim/test_200000"))
    parser.add_argument("--n_train_subjects", type=int, default=56)
    parser.add_argument("--test_seed_start", type=int, default=TEST_SEED_START)
    parser.add_argument("--output_dir", type=Path, default=RESULTS)
    parser.add_argument("--timing_lesions", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    test_seeds = list(range(args.test_seed_start, args.test_seed_start + N_TEST_SUBJECTS))
    paths = build_cache(test_seeds, args.test_cache.expanduser(), params=BUNDLE / "configs" / "radiomics_qsm.yaml",
                        workers=args.workers)
    data = load_cache(paths)
    labels = data["rim_positive"]
    index = {n: i for i, n in enumerate(data["feature_names"].tolist())}

    standardiser = FeatureStandardiser.load(STATS)
    features = standardiser(np.stack([data["features"][:, index[n]] if n in index else np.full(len(labels), np.nan)
                                      for n in standardiser.names], 1))

    print(f"held-out: {len(test_seeds)} subjects (seeds {test_seeds[0]}-{test_seeds[-1]}), {len(labels)} lesions, "
          f"{int(labels.sum())} rim+", flush=True)

    rows, curves = {}, {}
    for name, (weights, options, members) in MODELS.items():
        if not weights.is_file():
            print(f"skipping {name}: {weights} not found (train it first)")
            continue
        scores, threshold = predict(weights, options, members, data["patches"], features)
        rows[name] = {**detection_metrics(labels, scores, threshold=threshold), "threshold": threshold}
        curves[name] = (labels, scores)
    train, val = training_lesions(args.train_cache.expanduser(), args.n_train_subjects)
    name = "radiomics, logistic regression (scikit-learn; reference)"
    scores, threshold = radiomics_logistic_regression(train, val, standardiser, features)
    rows[name] = {**detection_metrics(labels, scores, threshold=threshold), "threshold": threshold}
    curves[name] = (labels, scores)
    threshold = best_f1_threshold(train["rim_positive"][val], train["rule_ppm"][val])[0]
    rows["edge rule (band − core, not learned)"] = {
        **detection_metrics(labels, data["rule_ppm"], threshold=threshold), "threshold": threshold}
    curves["edge rule (band − core, not learned)"] = (labels, data["rule_ppm"])

    for name, (y, s) in curves.items():
        rows[name]["roc_auc_ci95"] = bootstrap_ci(y, s, roc_auc)
        rows[name]["pr_auc_ci95"] = bootstrap_ci(y, s, pr_auc)
    header = "| method | ROC AUC [95 % CI] | pAUC (FPR<0.1) | pAUC McClish | PR AUC [95 % CI] | F1 | threshold |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    for name, m in rows.items():
        roc_ci, pr_ci = m["roc_auc_ci95"], m["pr_auc_ci95"]
        lines.append(f"| {name} | {m['roc_auc']:.3f} [{roc_ci[0]:.3f}, {roc_ci[1]:.3f}] | {m['pauc_fpr0.1']:.3f} | "
                     f"{m['pauc_fpr0.1_mcclish']:.3f} | {m['pr_auc']:.3f} [{pr_ci[0]:.3f}, {pr_ci[1]:.3f}] | "
                     f"{m['f1']:.3f} | {m['threshold']:.3g} |")
    table = "\n".join(lines)
    print(table, flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        timing = time_whole_brain(args.timing_lesions, Path(scratch)) if args.timing_lesions else {}
    if timing:
        print(f"whole-brain inference, {timing['n_lesions']} lesions on {timing['shape']}: "
              f"{timing['wall_s']:.1f} s wall, {timing['cpu_s']:.1f} s CPU", flush=True)
    summary = {"test_seeds": [test_seeds[0], test_seeds[-1]], "lesions": int(len(labels)),
               "rim_positive": int(labels.sum()),
               "metrics": rows, "timing": timing}
    (args.output_dir / "rim_accuracy.md").write_text(table + "\n", encoding="utf-8")
    (args.output_dir / "rim_accuracy.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    plot(curves, data, args.output_dir / "rim_accuracy.png")
    print(f"wrote {args.output_dir}/rim_accuracy.md, .json, .png", flush=True)


if __name__ == "__main__":
    main()
