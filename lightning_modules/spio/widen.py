"""Start a wider DeepSPIO from a trained narrower one without changing what it computes (Net2WiderNet).

Chen, Goodfellow & Shlens, "Net2Net: Accelerating Learning via Knowledge Transfer", ICLR 2016: every channel
of the wider network copies a channel of the narrower one (the first ones copy themselves, the new ones a
random one), and every layer that reads a copied channel splits the weights it reads among the copies.
Convolution, BatchNorm (also in training mode: copies have equal batch statistics) and (Leaky) ReLU commute
with the copying, so the widened network computes the same map. To let training make copies differ (Adam's
updates do not depend on the gradient's scale, so equal copies would stay equal), the new copies' incoming
weights get a little multiplicative noise and the copies share a channel's outgoing weights unequally (random
shares that sum to one).
"""

from __future__ import annotations

import torch

from lightning_modules.spio.networks import DeepSpio

_BN_KEYS = ("weight", "bias", "running_mean", "running_var")


def _channel_map(narrow: int, wide: int, generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """Source channel of each of ``wide`` channels (identity first, then random), and ``narrow``."""
    if wide < narrow:
        raise ValueError(f"cannot widen {narrow} channels to {wide}: the new network must be at least as wide")
    extra = torch.randint(narrow, (wide - narrow,), generator=generator)
    source = torch.cat([torch.arange(narrow), extra])
    return source, narrow


class _Widener:
    """Copies a narrow state dict into a wider one, layer by layer, tracking the channel map of the input."""

    def __init__(self, narrow: dict[str, torch.Tensor], wide: dict[str, torch.Tensor], noise: float,
                 generator: torch.Generator) -> None:
        self.narrow, self.wide, self.noise, self.generator = narrow, wide, noise, generator
        self.out: dict[str, torch.Tensor] = {}

    def conv(self, key: str, source_in: tuple[torch.Tensor, int] | None, source_out: tuple[torch.Tensor, int] | None,
             *, transposed: bool = False) -> None:
        """Conv weight ``key``: rows copied by ``source_out``, columns copied by ``source_in`` and split."""
        weight = self.narrow[key]
        if transposed:  # ConvTranspose2d stores (in, out, kh, kw)
            weight = weight.transpose(0, 1)
        if source_out is not None:
            weight = weight[source_out[0]]
        if source_out is not None and self.noise:  # new copies: slightly different incoming weights
            new = (torch.arange(len(source_out[0])) >= source_out[1]).view(-1, *([1] * (weight.dim() - 1)))
            weight = weight * (1.0 + self.noise * new * torch.randn(weight.shape, generator=self.generator))
        if source_in is not None:
            weight = weight[:, source_in[0]] * self.split(source_in).view(1, -1, *([1] * (weight.dim() - 2)))
        self.out[key] = weight.transpose(0, 1).contiguous() if transposed else weight.contiguous()

    def split(self, source: tuple[torch.Tensor, int]) -> torch.Tensor:
        """Share of each copy in its source channel: random around 1/copies, summing to 1 over the copies."""
        src, narrow = source
        share = torch.exp(self.noise * torch.randn(len(src), generator=self.generator))
        total = torch.zeros(narrow).index_add_(0, src, share)
        return share / total[src]

    def batch_norm(self, prefix: str, source_out: tuple[torch.Tensor, int]) -> None:
        for name in _BN_KEYS:
            self.out[f"{prefix}.{name}"] = self.narrow[f"{prefix}.{name}"][source_out[0]].clone()
        self.out[f"{prefix}.num_batches_tracked"] = self.narrow[f"{prefix}.num_batches_tracked"].clone()

    def channels(self, key: str, *, transposed: bool = False) -> int:
        return self.wide[key].shape[1 if transposed else 0]


def widen_state_dict(narrow: dict[str, torch.Tensor], network: DeepSpio, *, noise: float = 0.01,
                     seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict for ``network`` that computes what the narrower DeepSPIO ``narrow`` computes.

    Args:
        narrow: ``state_dict`` of a trained DeepSPIO with the same number of layers and at most as many channels.
        network: the wider DeepSPIO to fill (its own weights are ignored).
        noise: relative noise on the new copies' incoming weights and spread (log-normal σ) of the copies'
            shares of a channel's outgoing weights; 0 keeps the narrow network's map exactly.
        seed: seed of the channel copies and the noise.

    Raises:
        ValueError: the two networks differ in depth or ``network`` is narrower somewhere.
    """
    wide = network.state_dict()
    if set(narrow) != set(wide):
        raise ValueError("cannot widen: the two DeepSPIO networks have different layers (depth or decoder stages)")
    w = _Widener(narrow, wide, noise, torch.Generator().manual_seed(seed))
    previous = None
    for i in range(len(network.encoder)):
        key = f"encoder.{i}.0.weight"
        current = _channel_map(narrow[key].shape[0], w.channels(key), w.generator)
        w.conv(key, previous, current)
        w.batch_norm(f"encoder.{i}.1", current)
        previous = current
    for b in range(len(network.bottleneck)):
        prefix = f"bottleneck.{b}"
        inner = _channel_map(narrow[f"{prefix}.body.0.0.weight"].shape[0],
                             w.channels(f"{prefix}.body.0.0.weight"), w.generator)
        block = _channel_map(narrow[f"{prefix}.body.1.weight"].shape[0],
                             w.channels(f"{prefix}.body.1.weight"), w.generator)
        w.conv(f"{prefix}.body.0.0.weight", previous, inner)
        w.batch_norm(f"{prefix}.body.0.1", inner)
        w.conv(f"{prefix}.body.1.weight", inner, block)
        w.batch_norm(f"{prefix}.body.2", block)
        w.conv(f"{prefix}.shortcut.0.weight", previous, block)
        w.batch_norm(f"{prefix}.shortcut.1", block)
        previous = block
    features = previous
    for d, dec in enumerate(network.decoders):
        previous = features
        convs = [i for i, m in enumerate(dec) if isinstance(m, torch.nn.ConvTranspose2d)]
        for i in convs:
            key = f"decoders.{d}.{i}.weight"
            current = _channel_map(narrow[key].shape[1], w.channels(key, transposed=True), w.generator)
            w.conv(key, previous, current, transposed=True)
            w.batch_norm(f"decoders.{d}.{i + 1}", current)
            previous = current
        last = len(dec) - 1
        w.conv(f"decoders.{d}.{last}.weight", previous, None)
        w.out[f"decoders.{d}.{last}.bias"] = narrow[f"decoders.{d}.{last}.bias"].clone()
    return w.out
