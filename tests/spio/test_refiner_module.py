"""The refiner's Lightning training (issue 24, session 30) on a tiny pool with a known answer."""

from __future__ import annotations

import pytest
import torch

from lightning_modules.spio.refiner_module import chain_pool, damped_nmae, load_pools, make_pool, train_refiner
from lightning_modules.spio.simulation_refiner import LIFTS, SimulationRefiner, simulate_hypothesis


def _pool(path, n: int, seed: int, lifts: tuple[str, ...] = ("ball",)) -> None:
    """Discs of one level with the prior at half the truth: the refiner must learn a factor of 2."""
    g = torch.Generator().manual_seed(seed)
    x, z = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    truths = []
    for _ in range(n):
        cx, cz, r = (torch.rand(3, generator=g) * torch.tensor([60.0, 60.0, 6.0]) + torch.tensor([34.0, 34.0, 5.0]))
        truths.append(((x - cx) ** 2 + (z - cz) ** 2 <= r**2).float() * 3.0)
    truth = torch.stack(truths)
    prior = 0.5 * truth
    image = torch.rand(n, 2, 128, 128, generator=g)
    hypothesis = torch.stack([simulate_hypothesis(p.numpy(), lifts) for p in prior])
    torch.save({"image": image.half(), "hypothesis": hypothesis.half(), "prior": prior, "truth": truth}, path)


@pytest.mark.parametrize(("lifts", "channels_last"), [(("ball",), False), (LIFTS, False), (("ball",), True)],
                         ids=["ball", "three_lifts", "channels_last"])
def test_lightning_stage_learns_a_known_factor_and_saves_the_refiner(tmp_path, lifts, channels_last):
    _pool(tmp_path / "pool.pt", 8, 0, lifts)
    _pool(tmp_path / "val.pt", 4, 1, lifts)
    val = load_pools([tmp_path / "val.pt"])
    start = float(damped_nmae(val["prior"], val["truth"], eps=0.0))
    best = train_refiner([str(tmp_path / "pool.pt")], str(tmp_path / "val.pt"), tmp_path / "refiner.pt",
                         max_steps=40, val_every=20, batch_size=4, learning_rate=3e-3, precision="32-true",
                         widths=(4, 8), lifts=lifts, channels_last=channels_last)
    assert abs(start - 0.5) < 1e-6
    assert best < 0.4  # the half-level prior is 0.5 off; the refiner has learned to raise it
    refiner = SimulationRefiner(widths=(4, 8), lifts=lifts)
    state = torch.load(tmp_path / "refiner.pt", weights_only=True)
    refiner.load_state_dict(state)
    assert all(v.is_contiguous() for v in state.values())  # saved in the default layout whatever it trained in
    assert not (tmp_path / "refiner.pt.tmp").exists()


def test_pool_generator_options_are_checked_by_name(tmp_path):
    """A misspelt generator option is an error naming the valid ones, not a silently plain pool."""
    with pytest.raises(ValueError, match="unknown generator option.*rim_base;.*rim_bases"):
        make_pool(tmp_path / "pool.pt", seed=0, start=0, n=1, rim_base=0.5)
    assert not (tmp_path / "pool.pt").exists()


def test_chained_pool_holds_the_previous_stage_map_and_its_simulation(tmp_path):
    """The next stage's pool (session 32): image and truth as they were, the map replaced by the previous refiner's
    floored output and the hypothesis by that map's simulation. A refiner that adds 0.3 µg Fe/mm³ everywhere makes the
    expected map exact."""
    _pool(tmp_path / "pool.pt", 3, 0)
    refiner = SimulationRefiner(widths=(4, 8))
    with torch.no_grad():
        refiner.head.bias[1] = 0.3  # b = 0.3, a = 0: m₂ = relu(m₁ + 0.3), above the 0.15 floor everywhere
    torch.save(refiner.state_dict(), tmp_path / "r1.pt")
    chain_pool([tmp_path / "pool.pt"], tmp_path / "r1.pt", tmp_path / "chained.pt", batch_size=2)
    before, after = load_pools([tmp_path / "pool.pt"]), load_pools([tmp_path / "chained.pt"])
    assert torch.equal(after["image"], before["image"]) and torch.equal(after["truth"], before["truth"])
    torch.testing.assert_close(after["prior"], before["prior"] + 0.3)
    expected = torch.stack([simulate_hypothesis(m.numpy()) for m in after["prior"]]).half()
    assert torch.equal(after["hypothesis"], expected)
    assert not before["hypothesis"].equal(after["hypothesis"])  # the map's simulation changed with the map
    assert not (tmp_path / "chained.pt.tmp").exists()
