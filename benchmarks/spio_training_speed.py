"""Issue 24, sessions 22 and 25: wall time of one DeepSPIO training step in float32 and in bf16 mixed precision, in
the default (NCHW) and the channels-last layout, with session 22's operators and with session 25's, side by side in
one run (ratios), and of simulating its batch.

Session 25's operators compute the same maps faster: the DWT and inverse DWT as matrix products (session 22: strided
``conv1d``), the 99th-percentile intensity from ``topk`` (``torch.quantile``'s full sort) and the 32 → 1–2 output
convolutions as :class:`~lightning_modules.spio.networks.NarrowConv2d` (``nn.Conv2d``). The session-22 rows put
those back into the same module (same weights), from the 1-D convolutions ``lightning_modules.spio.wavelets`` still
builds its matrices from.

Each step is what ``DeepSpioModule.training_step`` does with the auxiliary targets (session 21's recipe), then
``backward`` and an AdamW step, on a batch of 16 fresh samples (128 × 128), one CPU thread. The configurations are
interleaved, step by step, so a change in the machine's load falls on all of them alike; the median per
configuration is reported. The simulation of a batch (``random_sample_with_targets``) is what a data-loader worker
does meanwhile, on the other core.

Usage:
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spio_training_speed.py [--steps 12] \\
        [--out benchmarks/results/spio/spio_training_speed.md]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from lightning_modules.io import write_text_atomic
from lightning_modules.spio.data import random_sample_with_targets
from lightning_modules.spio.module import DeepSpioModule
from lightning_modules.spio.networks import NarrowConv2d
from lightning_modules.spio.wavelets import _analysis_1d, _filters, _synthesis_1d

#: (name, autocast to bfloat16, channels-last layout, session 25's operators)
CONFIGURATIONS = (("float32, NCHW (session 21)", False, False, False),
                  ("float32, channels-last", False, True, False),
                  ("bf16-mixed, NCHW", True, False, False),
                  ("bf16-mixed, channels-last (session 22)", True, True, False),
                  ("bf16-mixed, channels-last, session 25's operators", True, True, True))


class ConvDwt2(torch.nn.Module):
    """Session 22's DWT: strided circular ``conv1d`` along each axis."""

    def __init__(self) -> None:
        super().__init__()
        dec_lo, dec_hi, _, _ = _filters("db4")
        self.lo, self.hi = dec_lo.flip(0), dec_hi.flip(0)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        low, high = _analysis_1d(image, self.lo, self.hi, dim=-1)
        ca, ch = _analysis_1d(low, self.lo, self.hi, dim=-2)
        cv, cd = _analysis_1d(high, self.lo, self.hi, dim=-2)
        return torch.cat([ca, ch, cv, cd], dim=1)


class ConvInverseDwt2(torch.nn.Module):
    """Session 22's inverse DWT: zero insertion and circular ``conv1d`` along each axis."""

    def __init__(self) -> None:
        super().__init__()
        _, _, self.rec_lo, self.rec_hi = _filters("db4")

    def forward(self, subbands: torch.Tensor) -> torch.Tensor:
        ca, ch, cv, cd = torch.chunk(subbands, 4, dim=1)
        low = _synthesis_1d(ca, ch, self.rec_lo, self.rec_hi, dim=-2)
        high = _synthesis_1d(cv, cd, self.rec_lo, self.rec_hi, dim=-2)
        return _synthesis_1d(low, high, self.rec_lo, self.rec_hi, dim=-1)


def quantile_normalise(image: torch.Tensor) -> torch.Tensor:
    """Session 22's intensity normalisation: ``torch.quantile`` (a full sort per sample)."""
    scale = torch.quantile(image.sum(dim=1).flatten(1), 0.99, dim=1).clamp_min(1e-8)
    return image / scale[:, None, None, None]


def use_session22_operators(module: DeepSpioModule) -> None:
    """Put session 22's operators back into ``module`` (same weights, same maps to rounding)."""
    module.dwt, module.network.inverse_dwt = ConvDwt2(), ConvInverseDwt2()
    module.network.normalise = quantile_normalise
    for layer in module.modules():
        if isinstance(layer, NarrowConv2d):
            layer.__class__ = torch.nn.Conv2d


def cpu_flags() -> str:
    """The CPU's model name and its bfloat16/AMX flags (what bf16-mixed speed depends on)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    return f"{model}; " + (", ".join(f for f in flags if "bf16" in f or f.startswith("amx")) or "no bf16/AMX flags")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="timed steps per configuration (after 2 untimed)")
    parser.add_argument("--out", default="benchmarks/results/spio/spio_training_speed.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    random_sample_with_targets(62, 16)  # untimed: the first call loads the MNI template
    start = time.perf_counter()
    samples = [random_sample_with_targets(62, i) for i in range(16)]
    simulate_s = time.perf_counter() - start
    batch = tuple(torch.stack([s[j] for s in samples]) for j in range(3))
    runs = {}
    for name, bf16, channels_last, session25 in CONFIGURATIONS:
        torch.manual_seed(0)
        module = DeepSpioModule(auxiliary_weight=1.0, image_loss_weight=1.0, channels_last=channels_last)
        module.log = lambda *a, **k: None
        if not session25:
            use_session22_operators(module)
        runs[name] = (module, torch.optim.AdamW(module.parameters(), 1e-3), bf16, [])
    for step in range(args.steps + 2):
        for module, optimiser, bf16, times in runs.values():
            t = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = module.training_step(batch, step)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if step >= 2:
                times.append(time.perf_counter() - t)
    base = float(np.median(next(iter(runs.values()))[3]))
    rows = [f"| {name} | {np.median(times):.3f} | {base / np.median(times):.2f}× |"
            for name, (_, _, _, times) in runs.items()]
    text = "\n".join([
        "# DeepSPIO training step: float32 vs bf16 mixed precision, NCHW vs channels-last, session 22's vs "
        "session 25's operators (one CPU thread)", "",
        f"Command: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/spio_training_speed.py --steps {args.steps}`", "",
        f"CPU: {cpu_flags()}; torch {torch.__version__}. Batch 16 × (2, 128, 128), DeepSPIO with the auxiliary "
        f"decoder and the map loss; median of {args.steps} interleaved steps.", "",
        "| configuration | s per step | speed-up |", "|---|---|---|", *rows, "",
        f"Simulating the batch's 16 fresh samples with targets: {simulate_s:.2f} s (a data-loader worker, other core).",
        ""])
    write_text_atomic(text, Path(args.out))
    print(text)


if __name__ == "__main__":
    main()
