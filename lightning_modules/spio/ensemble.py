"""Combining SPIO networks: the mean of their concentration maps (issue 24, session 18) and the interpolation of a
network's weights with its fine-tuned copy's (session 19).

Each member is a SPIO network (image (B, 2, X, Z) → map (B, 1, X, Z), µg Fe/mm³); the ensemble is one
``nn.Module`` whose ``state_dict`` holds every member's weights under ``members.<i>.``, so a bundle's
``network_def`` and ``model_path`` name it like any single network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MapEnsemble(nn.Module):
    """Mean of the members' concentration maps.

    Args:
        members: the networks, each mapping (B, 2, X, Z) to (B, 1, X, Z).
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(image) for member in self.members]).mean(0)


def deepspio_ensemble(n_members: int = 2) -> MapEnsemble:
    """A :class:`MapEnsemble` of ``n_members`` DeepSPIO networks (session 22: independently trained lineages)."""
    from lightning_modules.spio.networks import DeepSpio

    return MapEnsemble([DeepSpio() for _ in range(n_members)])


def write_ensemble(member_paths: Sequence[str], out: str) -> None:
    """Write the :class:`MapEnsemble` ``state_dict`` of the members' weight files, in order, to ``out`` (atomically)."""
    from lightning_modules.training import save_state_dict

    states = [torch.load(path, map_location="cpu", weights_only=True) for path in member_paths]
    save_state_dict(ensemble_state(states), out)


def ensemble_state(member_states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The ``state_dict`` of a :class:`MapEnsemble` from its members' ``state_dict`` s, in order."""
    return {f"members.{i}.{key}": value for i, state in enumerate(member_states) for key, value in state.items()}


def interpolate_states(base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], alpha: float,
                       ) -> dict[str, torch.Tensor]:
    """Weights ``(1 − alpha) · base + alpha · tuned`` of one network and its fine-tuned copy (WiSE-FT, Wortsman et
    al., CVPR 2022: the interpolation keeps much of what fine-tuning bought on a shifted distribution and recovers
    the base's accuracy on its own); floating-point entries are interpolated, integer ones (counters) taken from
    ``tuned``. Both must have the same keys and shapes."""
    if base.keys() != tuned.keys():
        raise ValueError(f"the two networks differ in their weights: {sorted(base.keys() ^ tuned.keys())[:5]}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return {key: torch.lerp(base[key], tuned[key], alpha) if tuned[key].is_floating_point() else tuned[key].clone()
            for key in tuned}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Write a MapEnsemble's weights from its members' weight files.")
    parser.add_argument("members", nargs="+", help="the members' state_dict files, in order")
    parser.add_argument("--out", required=True, help="the ensemble's state_dict file")
    arguments = parser.parse_args()
    write_ensemble(arguments.members, arguments.out)
