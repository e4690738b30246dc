"""Rim-lesion detection on real MS lesion shapes: held-out patients never used for training or any choice.

Subjects are built on the consensus lesion masks of real MS patients (Lesjak et al., Neuroinformatics 2017;
``lightning_modules.rim.real_shapes``): lesions are the masks' 26-connected components, with simulated χ,
rims, veins, dipole forward model, field noise and TKD, and FLAIR. The 7 test patients of
``PATIENT_SPLIT["test"]`` are scored here; the 5 validation patients gave the epochs, the calibration and every
threshold. Compared, all on the same lesions:

- **QSMRim-Net** as shipped (``models/model.pt``: 5 members fine-tuned on the 15 training patients, calibrated
  on the validation patients, threshold chosen there);
- **radiomics only**: the radiomics-only 5-member ensemble, fine-tuned, calibrated and thresholded the same way;
- **shell-contrast rule**: mean QSM in a two-voxel band across the lesion edge minus the core mean (not learned;
  its probability is a Platt fit on the validation patients, its threshold F1-optimal there);
- the ensemble shipped before (0.3.0, synthetic shapes only, uncalibrated, threshold 0.567), for reference.

Metrics from scikit-learn: ROC AUC, partial AUC over FPR < 0.1 McClish-standardised (``roc_auc_score(max_fpr=0.1)``),
PR AUC (``average_precision_score``), F1 at each model's stored threshold, Brier score; expected calibration
error (10 equal-width bins) and reliability curves (``calibration_curve``). 95 % intervals from 1000 lesion
bootstrap resamples; differences in PR AUC against QSMRim-Net are paired (the same resamples). A second,
patient-level (cluster) bootstrap of the PR AUC differences is reported too, as lesions of a patient share
anatomy and noise.

    .venv/bin/python benchmarks/rim_real_shapes.py

Output: ``benchmarks/results/rim/rim_real_shapes.{md,json,png}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, roc_auc_score

from lightning_modules.bundle_app import bundle_root
from lightning_modules.rim.calibration import expected_calibration_error, fit_platt, reliability_curve
from lightning_modules.rim.data import build_cache, load_cache
from lightning_modules.rim.ensemble import QsmRimNetEnsemble
from lightning_modules.rim.radiomics import FeatureStandardiser
from lightning_modules.rim.real_shapes import parse_key, subject_keys
from lightning_modules.rim.scores import best_f1_threshold

BUNDLE = Path(bundle_root("rim_lesion_detection"))
RESULTS = Path(__file__).resolve().parent / "results" / "rim"
STATS = BUNDLE / "models" / "radiomics_standardisation.json"
RADIOMICS_ONLY = {"use_patch": False, "smote_k": 0}
SHIPPED = "QSMRim-Net (shipped 0.4.0: fine-tuned on real shapes, calibrated)"
MODELS = {  # name → (weights, member options)
    SHIPPED: (BUNDLE / "models" / "model.pt", {}),
    "radiomics only (5 members, fine-tuned on real shapes, calibrated)":
        (RESULTS / "radiomics_only_real_shapes.pt", RADIOMICS_ONLY),
    "QSMRim-Net 0.3.0 (synthetic shapes only; shipped before)": (RESULTS / "qsmrim_net_synthetic_0.3.0.pt", {}),
}
RULE = "shell-contrast rule (band − core; Platt on validation)"


def metrics(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, float]:
    """scikit-learn ROC AUC, McClish pAUC (FPR < 0.1), average precision, F1 at ``threshold``, Brier, and ECE."""
    return {"roc_auc": roc_auc_score(labels, probabilities),
            "pauc_mcclish": roc_auc_score(labels, probabilities, max_fpr=0.1),
            "pr_auc": average_precision_score(labels, probabilities),
            "f1": f1_score(labels, probabilities >= threshold),
            "brier": brier_score_loss(labels, probabilities),
            "ece": expected_calibration_error(labels, probabilities), "threshold": threshold}


def lesions(cache: Path, keys: list[str], standardiser: FeatureStandardiser) -> dict:
    data = load_cache([str(cache / f"subject_{k}.npz") for k in keys])
    index = {n: i for i, n in enumerate(data["feature_names"].tolist())}
    data["z"] = standardiser(np.stack([data["features"][:, index[n]] if n in index
                                       else np.full(len(data["rim_positive"]), np.nan)
                                       for n in standardiser.names], 1))
    data["patient"] = np.concatenate([np.full(len(np.load(cache / f"subject_{k}.npz")["rim_positive"]), parse_key(k)[0])
                                      for k in keys])  # simulation seeds of one patient form one cluster
    return data


@torch.no_grad()
def predict(weights: Path, options: dict, data: dict) -> tuple[np.ndarray, float]:
    """Calibrated rim+ probabilities of cached lesions and the stored threshold of a 5-member ensemble."""
    network = QsmRimNetEnsemble(5, n_radiomics=data["z"].shape[1], **options)
    network.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    network.eval()
    out = [torch.sigmoid(network(torch.as_tensor(data["patches"][i:i + 128], dtype=torch.float32),
                                 torch.as_tensor(data["z"][i:i + 128]))).numpy()
           for i in range(0, len(data["z"]), 128)]
    return np.concatenate(out).astype(np.float64), float(network.threshold)


def bootstrap(labels: np.ndarray, scores: dict[str, np.ndarray], groups: np.ndarray | None, *, n: int = 1000,
              seed: int = 0) -> dict[str, np.ndarray]:
    """(n, ) bootstrap values of ROC AUC, pAUC and PR AUC per model; lesions resampled, or whole patients
    (``groups``)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list] = {name: [] for name in scores}
    ids = np.unique(groups) if groups is not None else None
    for _ in range(n):
        if groups is None:
            index = rng.integers(0, len(labels), len(labels))
        else:
            index = np.concatenate([np.flatnonzero(groups == g) for g in rng.choice(ids, len(ids))])
        y = labels[index]
        if y.min() == y.max():
            continue
        for name, s in scores.items():
            out[name].append((roc_auc_score(y, s[index]), roc_auc_score(y, s[index], max_fpr=0.1),
                              average_precision_score(y, s[index])))
    return {name: np.array(v) for name, v in out.items()}


def interval(values: np.ndarray) -> list[float]:
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def plot(labels: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    for name, s in scores.items():
        fpr, tpr, _ = roc_curve(labels, s)
        precision, recall, _ = precision_recall_curve(labels, s)
        observed, predicted = reliability_curve(labels, s)
        axes[0].plot(fpr, tpr, label=name)
        axes[1].plot(recall, precision, label=name)
        axes[2].plot(predicted, observed, "o-", label=name)
    axes[0].axvline(0.1, color="grey", lw=0.5, ls="--")
    axes[0].set(xlabel="false positive rate", ylabel="true positive rate", title="ROC, held-out patients")
    axes[1].set(xlabel="recall", ylabel="precision", title="precision-recall")
    axes[2].plot([0, 1], [0, 1], color="grey", lw=0.5)
    axes[2].set(xlabel="mean predicted rim+ probability", ylabel="observed rim+ fraction",
                title="reliability (10 bins)")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache_dir", type=Path, default=Path("~/.cache/qsm_slicer_extension/rim/real_shapes"))
    parser.add_argument("--output_dir", type=Path, default=RESULTS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--test_seeds", type=int, nargs="+", default=[0],
                        help="simulation seeds of the held-out patients (another seed: new rims, contrasts, noise)")
    parser.add_argument("--name", default="rim_real_shapes", help="output file stem")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cache = args.cache_dir.expanduser()
    test_keys, val_keys = subject_keys("test", args.test_seeds), subject_keys("validation")
    build_cache(val_keys + test_keys, cache, params=BUNDLE / "configs" / "radiomics_qsm.yaml", workers=args.workers)
    standardiser = FeatureStandardiser.load(STATS)
    test, val = lesions(cache, test_keys, standardiser), lesions(cache, val_keys, standardiser)
    labels = test["rim_positive"]
    print(f"held-out: {len(test_keys)} patients, {len(labels)} lesions, {int(labels.sum())} rim+; validation: "
          f"{len(val_keys)} patients, {len(val['rim_positive'])} lesions", flush=True)

    rows, scores = {}, {}
    for name, (weights, options) in MODELS.items():
        if not weights.is_file():
            print(f"skipping {name}: {weights} not found")
            continue
        scores[name], threshold = predict(weights, options, test)
        rows[name] = metrics(labels, scores[name], threshold)
    scale, bias = fit_platt(val["rule_ppm"], val["rim_positive"])
    val_rule = 1 / (1 + np.exp(-(scale * val["rule_ppm"] + bias)))
    scores[RULE] = 1 / (1 + np.exp(-(scale * test["rule_ppm"] + bias)))
    rows[RULE] = metrics(labels, scores[RULE], best_f1_threshold(val["rim_positive"], val_rule)[0])

    lesion_boot = bootstrap(labels, scores, None, n=args.bootstrap)
    patient_boot = bootstrap(labels, scores, test["patient"], n=args.bootstrap)
    for name in rows:
        rows[name]["roc_auc_ci95"] = interval(lesion_boot[name][:, 0])
        rows[name]["pauc_ci95"] = interval(lesion_boot[name][:, 1])
        rows[name]["pr_auc_ci95"] = interval(lesion_boot[name][:, 2])
        if name != SHIPPED and SHIPPED in rows:
            for key, boot in (("lesion", lesion_boot), ("patient", patient_boot)):
                n = min(len(boot[SHIPPED]), len(boot[name]))
                diff = boot[SHIPPED][:n] - boot[name][:n]
                rows[name][f"pr_auc_gap_{key}_ci95"] = interval(diff[:, 2])
                rows[name][f"roc_auc_gap_{key}_ci95"] = interval(diff[:, 0])

    lines = ["| method | ROC AUC [95 % CI] | pAUC McClish (FPR<0.1) [95 % CI] | PR AUC [95 % CI] | F1 at threshold "
             "| threshold | ECE | Brier | QSMRim-Net − this, PR AUC [95 % CI lesion; patient] |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, m in rows.items():
        gap = "" if name == SHIPPED else (
            f"{m['pr_auc_gap_lesion_ci95'][0]:+.3f}…{m['pr_auc_gap_lesion_ci95'][1]:+.3f}; "
            f"{m['pr_auc_gap_patient_ci95'][0]:+.3f}…{m['pr_auc_gap_patient_ci95'][1]:+.3f}" if SHIPPED in rows else "")
        lines.append(f"| {name} | {m['roc_auc']:.3f} [{m['roc_auc_ci95'][0]:.3f}, {m['roc_auc_ci95'][1]:.3f}] | "
                     f"{m['pauc_mcclish']:.3f} [{m['pauc_ci95'][0]:.3f}, {m['pauc_ci95'][1]:.3f}] | "
                     f"{m['pr_auc']:.3f} [{m['pr_auc_ci95'][0]:.3f}, {m['pr_auc_ci95'][1]:.3f}] | {m['f1']:.3f} | "
                     f"{m['threshold']:.3g} | {m['ece']:.4f} | {m['brier']:.4f} | {gap} |")
    reliability = {}
    for name, s in scores.items():
        observed, predicted = reliability_curve(labels, s)
        reliability[name] = {"mean_predicted": predicted.tolist(), "observed": observed.tolist()}
    table = "\n".join(lines)
    print(table, flush=True)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    header = (f"Held-out real-shape patients {list(test_keys)}: {len(labels)} lesions, {int(labels.sum())} rim+ "
              f"(`benchmarks/rim_real_shapes.py`, {args.bootstrap} bootstrap resamples).\n\n")
    (args.output_dir / f"{args.name}.md").write_text(header + table + "\n", encoding="utf-8")
    summary = {"test_subjects": test_keys, "validation_subjects": val_keys, "lesions": int(len(labels)),
               "rim_positive": int(labels.sum()), "metrics": rows, "reliability": reliability}
    (args.output_dir / f"{args.name}.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    plot(labels, scores, args.output_dir / f"{args.name}.png")
    print(f"wrote {args.output_dir}/{args.name}.md, .json, .png", flush=True)


if __name__ == "__main__":
    main()
