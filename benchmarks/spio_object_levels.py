"""Issue 24, candidate E: learned object levels on top of DeepSPIO, judged by the rule committed beforehand.

``benchmarks/results/spio/decision_rule_object_levels.md`` holds the rule and why this candidate: DeepSPIO finds
where the iron is; what it gets wrong is each object's level. Steps (each can be run on its own):

1. ``objects``: the shipped pipeline (``predict_concentration``: flip average, 0.1 µg Fe/mm³ floor) on images of
   the cached training pool (seed 0); each connected component of the map is an object, its core the pixels
   ≥ 0.35 × the component's 75th percentile L; a 64 × 64 crop around the core (10 line-feature channels,
   the core mask, the map / L, log L) and the target ratio (true median level in the core) / L (0 if spurious).
2. ``cnn`` / ``gbm``: a small CNN on the crops, or gradient boosting (scikit-learn) on 41 features per object;
   trained on the first 90 % of the pool images, the last 10 % held out (weighted |ratio error| reported).
3. ``extent_oracle``: gradient boosting with and without each object's true extent along y (from the simulator's
   3-D truth, re-drawn from the pool's seeds) on pool images 0–2 499: does the unseen extent explain the level error?
4. ``evaluate``: on the tuning set (samples 1000–1299 of seed 1) and the generator-variant set, NMAE per image of
   DeepSPIO as shipped against E-flat (the core at the predicted level) and E-scale (the map times the ratio),
   overall and per SNR bin.

Usage (one CPU thread; the pool is ``train.json``'s cache of 12 000 seed-0 samples):
    .venv/bin/python benchmarks/spio_object_levels.py objects --pool_images 5000 --work /tmp/spio_levels
    .venv/bin/python benchmarks/spio_object_levels.py gbm --work /tmp/spio_levels
    .venv/bin/python benchmarks/spio_object_levels.py cnn --steps 2500 --work /tmp/spio_levels
    .venv/bin/python benchmarks/spio_object_levels.py evaluate --work /tmp/spio_levels
    .venv/bin/python benchmarks/spio_object_levels.py extent_oracle --pool_images 2500
"""

from __future__ import annotations

import argparse
import pickle
import time
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi
import torch
from spio_design_comparison import snr_bin, tuning_set
from torch import nn

from lightning_modules.bundle_workflow import load_weights
from lightning_modules.metrics import nmae
from lightning_modules.spio.app import predict_concentration
from lightning_modules.spio.data import simulate_pool
from lightning_modules.spio.line_features import LineFeatures
from lightning_modules.spio.networks import DeepSpio

CROP = 64
LEVEL_PERCENTILE, CORE_FRACTION = 75, 0.35
RINGS_PX = ((0, 2), (2, 4), (4, 8), (8, 16))
DEFAULT_POOL = Path.home() / ".cache/qsm_slicer_extension/spio/pools"
SHIPPED = Path(__file__).resolve().parents[1] / "monai_bundles/spio_quantification/models/model.pt"


def objects(concentration: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(component, core, level L) per connected component of a map (x, z) in µg Fe/mm³."""
    labels, n = ndi.label(concentration > 0)
    found = []
    for j in range(1, n + 1):
        component = labels == j
        level = float(np.percentile(concentration[component], LEVEL_PERCENTILE))
        core = component & (concentration >= CORE_FRACTION * level)
        if core.any():
            found.append((component, core, level))
    return found


def crops(image: np.ndarray, concentration: np.ndarray, line_features: LineFeatures):
    """Per object: (crop (13, 64, 64) float32, component, core, L)."""
    features = line_features(torch.as_tensor(image, dtype=torch.float32)[None])[0].numpy()
    result, half = [], CROP // 2
    for component, core, level in objects(concentration):
        i, k = (int(round(v)) for v in ndi.center_of_mass(core))
        channels = np.concatenate([features[:10], core[None].astype(np.float32),
                                   (concentration * component / level)[None].astype(np.float32),
                                   np.full((1, *concentration.shape), np.log(level), np.float32)])
        padded = np.pad(channels, ((0, 0), (half, half), (half, half)))
        result.append((padded[:, i:i + CROP, k:k + CROP].copy(), component, core, level))
    return result


def object_features(crop: np.ndarray) -> np.ndarray:
    """41 hand-made features of one object crop (13, 64, 64): level, map statistics, extent, rings of line data."""
    core, component = crop[10] > 0.5, crop[11] > 0
    outside = ndi.distance_transform_edt(~core)
    def phase_step(phase, axis):
        return np.abs(np.angle(np.exp(1j * np.diff(phase, axis=axis, append=np.take(phase, [-1], axis=axis)))))
    phase4, phase2 = np.arctan2(crop[3], crop[2]), np.arctan2(crop[6], crop[5])
    g4, g2, g4x = phase_step(phase4, 1), phase_step(phase2, 1), phase_step(phase4, 0)
    m = crop[11][core]
    f = [crop[12, 0, 0], np.log(core.sum()), np.log(component.sum() + 1), m.mean(), np.median(m),
         np.percentile(m, 90), m.max(), crop[8][core].mean(), crop[4][core].mean(), (crop[8] == 0).mean(),
         crop[8].mean()]
    for low, high in RINGS_PX:
        ring = (outside > low) & (outside <= high)
        f += ([crop[4][ring].mean(), crop[7][ring].mean(), crop[8][ring].mean(), g4[ring].mean(), g2[ring].mean(),
               g4x[ring].mean(), (crop[0][ring] + crop[1][ring]).std()] if ring.any() else [0.0] * 7)
    ii, kk = np.nonzero(core)
    f += [ii.max() - ii.min() + 1, kk.max() - kk.min() + 1]
    return np.asarray(f, dtype=np.float32)


class ObjectLevelNet(nn.Module):
    """Small CNN: object crop (B, 13, 64, 64) → ratio true level / network level (B,), ≥ 0."""

    def __init__(self, in_channels: int = 13, width: int = 32) -> None:
        super().__init__()
        def block(i, o, s):
            return nn.Sequential(nn.Conv2d(i, o, 3, stride=s, padding=1), nn.GroupNorm(8, o), nn.SiLU())
        self.features = nn.Sequential(block(in_channels, width, 2), block(width, 2 * width, 1),
                                      block(2 * width, 2 * width, 2), block(2 * width, 3 * width, 2),
                                      block(3 * width, 4 * width, 2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * width * 16, 128), nn.SiLU(), nn.Linear(128, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.softplus(self.head(self.features(x)))[:, 0]


def shipped_network() -> nn.Module:
    return load_weights(DeepSpio(), SHIPPED).eval()


def build_objects(work: Path, pool_images: int, pool_dir: Path) -> None:
    images, truths = simulate_pool(0, 12000, cache_dir=pool_dir)
    network, line_features = shipped_network(), LineFeatures()
    x, ratio, weight, image_index = [], [], [], []
    for i in range(pool_images):
        image, truth = images[i].float().numpy(), truths[i, 0].float().numpy()
        for crop, _, core, level in crops(image, predict_concentration(network, image), line_features):
            values = truth[core][truth[core] > 0]
            x.append(crop.astype(np.float16))
            ratio.append(float(np.median(values)) / level if len(values) else 0.0)
            # the object's share of its image's NMAE: |Δlevel| · area / Σ truth
            weight.append(level * core.sum() / (truth.sum() + level * core.sum()))
            image_index.append(i)
        if (i + 1) % 500 == 0:
            print(f"{i + 1}/{pool_images} pool images, {len(x)} objects", flush=True)
    torch.save({"x": torch.as_tensor(np.stack(x)), "ratio": torch.tensor(ratio), "weight": torch.tensor(weight),
                "image": torch.tensor(image_index)}, work / "objects.pt")


def split(data: dict) -> tuple[torch.Tensor, torch.Tensor]:
    cut = torch.quantile(data["image"].float(), 0.9)
    return data["image"] < cut, data["image"] >= cut


def weighted_error(predicted: np.ndarray, ratio: np.ndarray, weight: np.ndarray) -> float:
    return float((weight * np.abs(predicted - ratio)).sum() / weight.sum())


def train_gbm(work: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    data = torch.load(work / "objects.pt")
    features = np.stack([object_features(c.float().numpy()) for c in data["x"]])
    ratio, weight = data["ratio"].numpy(), data["weight"].numpy()
    train, held = (s.numpy() for s in split(data))
    model = HistGradientBoostingRegressor(loss="absolute_error", max_iter=400, learning_rate=0.05, max_leaf_nodes=31,
                                          min_samples_leaf=40, random_state=0)
    model.fit(features[train], ratio[train], sample_weight=weight[train])
    predicted = np.clip(model.predict(features[held]), 0, None)
    print(f"gbm: held-out weighted |ratio error| {weighted_error(predicted, ratio[held], weight[held]):.4f} "
          f"(ratio 1: {weighted_error(np.ones_like(predicted), ratio[held], weight[held]):.4f})", flush=True)
    with open(work / "gbm.pkl", "wb") as f:
        pickle.dump(model, f)


def train_cnn(work: Path, steps: int) -> None:
    torch.manual_seed(0)
    data = torch.load(work / "objects.pt")
    x, ratio, weight = data["x"], data["ratio"].float(), data["weight"].float()
    train, held = split(data)
    ids = torch.nonzero(train)[:, 0]
    draw = weight[ids].clamp_min(1e-4).sqrt()
    net = ObjectLevelNet()
    optimiser = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=2e-3, total_steps=steps)
    start = time.time()
    for step in range(steps):
        b = ids[torch.multinomial(draw / draw.sum(), 64, replacement=True)]
        xb, w = x[b].float(), weight[b] / weight[b].clamp_min(1e-4).sqrt()  # importance-corrected weights
        if torch.rand(()) < 0.5:
            xb = xb.flip(-2)
        loss = (w * (net(xb) - ratio[b]).abs()).sum() / w.sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if (step + 1) % 500 == 0 or step == steps - 1:
            held_ids = torch.nonzero(held)[:, 0]
            with torch.no_grad():
                net.eval()
                predicted = torch.cat([net(x[held_ids[k:k + 256]].float()) for k in range(0, len(held_ids), 256)])
                net.train()
            r_held, w_held = ratio[held_ids].numpy(), weight[held_ids].numpy()
            print(f"cnn step {step + 1}: held-out weighted |ratio error| "
                  f"{weighted_error(predicted.numpy(), r_held, w_held):.4f} "
                  f"(ratio 1: {weighted_error(np.ones(len(held_ids)), r_held, w_held):.4f}); "
                  f"{(time.time() - start) / (step + 1):.2f} s/step", flush=True)
    torch.save(net.state_dict(), work / "cnn.pt")


def extent_oracle(work: Path, n_images: int, pool_dir: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    from lightning_modules.spio import acquisition as acq
    from lightning_modules.spio.phantoms import random_base, random_concentration

    images, _ = simulate_pool(0, 12000, cache_dir=pool_dir)
    network, line_features = shipped_network(), LineFeatures()
    features, extents, ratio, weight, image_index = [], [], [], [], []
    for i in range(n_images):
        rng = np.random.default_rng([0, i])  # the draws of data.random_sample_with_snr, up to the 3-D truth
        rng.integers(2**62)
        rho = random_base(rng) * float(rng.uniform(0.5, 2.0))
        truth_3d = random_concentration(rng, rho).numpy()
        truth = truth_3d[:, truth_3d.shape[1] // 2]
        thickness_mm = (truth_3d > 0).sum(axis=1) * acq.VIEWLINE_DY_MM
        image = images[i].float().numpy()
        for crop, _, core, level in crops(image, predict_concentration(network, image), line_features):
            values = truth[core][truth[core] > 0]
            features.append(object_features(crop))
            t = thickness_mm[core]
            extents.append([t.mean(), np.median(t), t.max()])
            ratio.append(float(np.median(values)) / level if len(values) else 0.0)
            weight.append(level * core.sum() / (truth.sum() + level * core.sum()))
            image_index.append(i)
    features, extents = np.asarray(features), np.asarray(extents, dtype=np.float32)
    ratio, weight, image_index = np.asarray(ratio), np.asarray(weight), np.asarray(image_index)
    held = image_index >= np.quantile(image_index, 0.9)
    def held_out_error(x):
        model = HistGradientBoostingRegressor(loss="absolute_error", max_iter=400, learning_rate=0.05,
                                              max_leaf_nodes=31, min_samples_leaf=40, random_state=0)
        model.fit(x[~held], ratio[~held], sample_weight=weight[~held])
        return weighted_error(np.clip(model.predict(x[held]), 0, None), ratio[held], weight[held])
    print(f"{len(ratio)} objects; held-out weighted |ratio error|: DeepSPIO's level "
          f"{weighted_error(np.ones(held.sum()), ratio[held], weight[held]):.3f}, gbm {held_out_error(features):.3f}, "
          f"gbm + true y-extent {held_out_error(np.concatenate([features, extents], 1)):.3f}")


def evaluate(work: Path, n_tuning: int, n_variant: int) -> str:
    from spio_variant import variant_sample

    network, line_features = shipped_network(), LineFeatures()
    regressors = {}
    if (work / "gbm.pkl").is_file():
        with open(work / "gbm.pkl", "rb") as f:
            gbm = pickle.load(f)
        regressors["gbm"] = lambda cs: np.clip(gbm.predict(np.stack([object_features(c[0]) for c in cs])), 0, None)
    if (work / "cnn.pt").is_file():
        cnn = ObjectLevelNet()
        cnn.load_state_dict(torch.load(work / "cnn.pt"))
        cnn.eval()
        def cnn_ratio(cs):
            with torch.no_grad():
                x = torch.as_tensor(np.stack([c[0] for c in cs]))
                return (0.5 * (cnn(x) + cnn(x.flip(-2)))).numpy()
        regressors["cnn"] = cnn_ratio
    sets = {"tuning": tuning_set(n=n_tuning),
            "variant": [variant_sample(3, i) for i in range(n_variant)]}
    lines = []
    for set_name, samples in sets.items():
        scores: dict[str, dict[str, list[float]]] = {}
        for image, truth, snr in samples:
            if not truth.any():
                continue
            shipped = predict_concentration(network, image)
            maps = {"C (DeepSPIO as shipped)": shipped}
            cs = crops(image, shipped, line_features)
            for name, regress in regressors.items():
                flat, scaled = np.zeros_like(shipped), np.zeros_like(shipped)
                if cs:
                    for (_, component, core, level), r in zip(cs, regress(cs), strict=True):
                        flat[core], scaled[component] = r * level, r * shipped[component]
                maps[f"E-{name}-flat"], maps[f"E-{name}-scale"] = flat, scaled
            for name, estimate in maps.items():
                value = nmae(estimate, truth)
                scores.setdefault(name, {}).setdefault("all", []).append(value)
                scores[name].setdefault(snr_bin(snr), []).append(value)
        bins = ["all", "∞", "5–11 dB", "11–19 dB", "19–30 dB"]
        lines += [f"\n{set_name} set: mean NMAE (images)\n", "| candidate | " + " | ".join(bins) + " |",
                  "|---|" + "---|" * len(bins)]
        for name, by_bin in scores.items():
            lines.append(f"| {name} | " + " | ".join(
                f"{np.mean(by_bin[b]):.3f} ({len(by_bin[b])})" if b in by_bin else "—" for b in bins) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=("objects", "gbm", "cnn", "extent_oracle", "evaluate"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/spio_levels"))
    parser.add_argument("--pool_images", type=int, default=5000)
    parser.add_argument("--pool_dir", type=Path, default=DEFAULT_POOL)
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--n_tuning", type=int, default=300)
    parser.add_argument("--n_variant", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    if args.step == "objects":
        build_objects(args.work, args.pool_images, args.pool_dir)
    elif args.step == "gbm":
        train_gbm(args.work)
    elif args.step == "cnn":
        train_cnn(args.work, args.steps)
    elif args.step == "extent_oracle":
        extent_oracle(args.work, min(args.pool_images, 2500), args.pool_dir)
    else:
        print(evaluate(args.work, args.n_tuning, args.n_variant))


if __name__ == "__main__":
    main()
