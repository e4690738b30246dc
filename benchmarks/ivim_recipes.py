"""IVIM-NET training recipes at SNR 20: how learning rate, weight decay and weight averaging move D, f and D*.

One fit-mode training (self-supervised, early stopping on a 10 % split) on 100,000 signals simulated as IVIM-NET's
example 2 (11 b-values, uniform D 0.0005–0.003, f 0.05–0.55, D* 0.01–0.1 mm²/s, Gaussian noise, SNR 20), then the
NRMSE (RMSE / mean truth) of D, f and D* over all signals. ``--data_seed 20`` is the SNR-20 data of
``benchmarks/ivim_accuracy.py``; use another seed to choose a recipe without looking at the benchmark's data.
``--n_ensemble K`` trains K networks alike from different initial weights and also reports the mean and median
ensembles of the first 1 … K of them (``by_size``) and each member alone (``members``). Appends one JSON line
per run to ``--output``.

Run: ``.venv/bin/python benchmarks/ivim_recipes.py --learning_rate 1e-4 --weight_decay 1e-4 --data_seed 99``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from ivim_accuracy import NAMES, paper_nrmse  # same folder: the benchmark's own NRMSE

from lightning_modules.ivim.data import IvimDataModule
from lightning_modules.ivim.ensemble import COMBINES, IvimNetEnsemble, ensemble_members
from lightning_modules.ivim.lsq import bounds_array
from lightning_modules.ivim.module import train_ivim_net
from lightning_modules.ivim.networks import IVIMNET_OPTIM_BOUNDS, IvimNet, predict_ivim_net
from lightning_modules.ivim.simulate import IVIMNET_B_VALUES, simulate_ivim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--weight_decay", type=float, default=0.0)
    parser.add_argument("--ema_decay", type=float, default=0.0)
    parser.add_argument("--decayed_parameters", nargs="+", default=None,
                        help="parameter networks that get the weight decay (default: all), e.g. Dstar")
    parser.add_argument("--refine_dstar_weight_decay", type=float, default=None,
                        help="after training, retrain only the D* network with this Adam weight decay (others frozen)")
    parser.add_argument("--refine_learning_rate", type=float, default=1e-3)
    parser.add_argument("--refine_parameters", nargs="+", default=["Dstar"],
                        help="parameter networks retrained in that second stage")
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--ivimnet_dropout", action="store_true",
                        help="dropout only between hidden layers, as IVIM-NET's code (default: after each)")
    parser.add_argument("--output_bounds", choices=("widened", "ivimnet", "ivimnet_positive"), default="widened",
                        help="sigmoid bounds: our widened body preset, IVIM-NET_optim's, or those with D, D* >= 0")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--patience_epochs", type=int, default=10)
    parser.add_argument("--max_epochs", type=int, default=200)
    parser.add_argument("--n_ensemble", type=int, default=1,
                        help="train this many networks (different initial weights) and average their estimates")
    parser.add_argument("--data_seed", type=int, default=99)
    parser.add_argument("--output", type=Path, default=Path("ivim_recipes.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    b = np.asarray(IVIMNET_B_VALUES)
    signals, truth = simulate_ivim(b, 100_000, snr=20, seed=args.data_seed, rician=False)
    start = time.perf_counter()
    data = IvimDataModule(signals, b_values_s_per_mm2=b, seed=0, batch_size=args.batch_size,
                          batches_per_epoch=64_000 // args.batch_size)
    bounds = {"widened": None, "ivimnet": IVIMNET_OPTIM_BOUNDS,
              "ivimnet_positive": [(max(lo, 0.0) if k in (0, 2) else lo, hi)
                                   for k, (lo, hi) in enumerate(IVIMNET_OPTIM_BOUNDS)]}[args.output_bounds]
    torch.manual_seed(0)  # the first network's initial weights (the others': ensemble_members)
    network = IvimNet(b, depth=args.depth, last_dropout=not args.ivimnet_dropout, output_bounds=bounds)
    members = []
    for member, seed in ensemble_members(network, args.n_ensemble, seed=0):
        member = train_ivim_net(data, member, seed=seed, max_epochs=args.max_epochs,
                                patience_epochs=args.patience_epochs, learning_rate=args.learning_rate,
                                weight_decay=args.weight_decay, ema_decay=args.ema_decay,
                                decayed_parameters=args.decayed_parameters, progress_bar=False)
        if args.refine_dstar_weight_decay is not None:  # fit mode's second stage (fit_ivim_net), on its own
            member = train_ivim_net(data, member, seed=seed + 1, max_epochs=args.max_epochs,
                                    patience_epochs=args.patience_epochs, learning_rate=args.refine_learning_rate,
                                    weight_decay=args.refine_dstar_weight_decay,
                                    trained_parameters=tuple(args.refine_parameters),
                                    progress_bar=False)
        members.append(member)
    seconds = time.perf_counter() - start
    limits = bounds_array("biexp", "body")

    def nrmse(ensemble: IvimNetEnsemble) -> dict[str, float]:
        estimates = np.clip(predict_ivim_net(ensemble, signals), limits[:, 0], limits[:, 1])
        return {name: paper_nrmse(estimates[:, k], truth[:, k]) for k, name in enumerate(NAMES)}

    by_size = [{"n_ensemble": k, "combine": combine, **nrmse(IvimNetEnsemble(members[:k], combine=combine))}
               for k in range(1, len(members) + 1) for combine in COMBINES]
    for entry in by_size:
        print(" ".join(f"{key} {value:.3f}" if isinstance(value, float) else f"{key} {value}"
                       for key, value in entry.items()), flush=True)
    row = {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
           **nrmse(IvimNetEnsemble(members)), "train_s": seconds, "by_size": by_size,
           "members": [nrmse(IvimNetEnsemble([member])) for member in members]}
    print(json.dumps(row), flush=True)
    with args.output.open("a", encoding="utf-8") as stream:
        stream.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
