"""The Makefile's SPIO training recipes name only options train.json has (issue 24, session 23): a ``#`` in a make
variable starts a comment, and a silently cut ``--trainer#precision`` would train in float32 without an error. The
from-scratch recipes (the shipped 0.8.0's, 27 000 steps, and the 23 000-step one) chain their stages and add up to
their step counts (session 24)."""

from __future__ import annotations

import inspect
import json
import shlex
import shutil
import subprocess
from pathlib import Path
from pydoc import locate

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRAIN_JSON = ROOT / "monai_bundles" / "spio_quantification" / "configs" / "train.json"
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def bundle_commands(target: str) -> list[list[str]]:
    """The ``monai.bundle run`` command lines of ``make -n target`` as argument lists."""
    text = subprocess.run(["make", "-n", "--no-print-directory", target, "PY=python"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.replace("\\\n", " ")
    return [shlex.split(line) for line in text.splitlines() if "monai.bundle run" in line]


def options(command: list[str]) -> dict[str, str]:
    keys = [i for i, token in enumerate(command) if token.startswith("--")]
    return {command[i][2:]: command[i + 1] for i in keys}


@pytest.mark.parametrize("target", ["train-spio", "train-spio-scratch", "train-spio-060", "train-spio-noise-robust"])
def test_every_recipe_option_is_a_train_json_key(target):
    config = json.loads(TRAIN_JSON.read_text())
    commands = bundle_commands(target)
    assert commands
    for command in commands:
        for key, value in options(command).items():
            head, _, rest = key.partition("#")
            assert head in config or head == "config_file", f"{target}: --{key} is not in train.json"
            if rest:  # a key of that section, or an argument of the class it instantiates (Trainer's limits)
                known = set(config[head]) | set(inspect.signature(locate(config[head]["_target_"])).parameters)
                assert rest in known, f"{target}: --{key} is neither in train.json's {head} nor an argument of it"
            assert not value.startswith("--"), f"{target}: --{key} has no value"


@pytest.mark.parametrize(("target", "expected_steps", "workers"),
                         [("train-spio-scratch", 23_000, ["1"] * 5), ("train-spio", 27_000, ["1"] * 5 + ["2"])])
def test_the_from_scratch_recipes_train_fast_on_fresh_samples(target, expected_steps, workers):
    batch_size, steps = json.loads(TRAIN_JSON.read_text())["batch_size"], 0
    commands = bundle_commands(target)
    assert [options(c)["num_workers"] for c in commands] == workers
    for command in commands:
        given = options(command)
        assert given["trainer#precision"] == "bf16-mixed" and given["channels_last"] == "true"
        assert given["pool_size"] == "0" and given["auxiliary_weight"] == "1"
        steps += int(given["samples_per_epoch"]) // batch_size * int(given["trainer#max_epochs"])
    assert steps == expected_steps
    # each stage starts from the one before (session 24's G3n replaces G3 after G2)
    for before, after in zip(commands, commands[1:], strict=False):
        assert options(after)["init_weights"] == options(before)["model_path"]


def test_the_shipped_recipe_ends_in_the_bundle_weights_with_a_quarter_of_its_samples_noise_free_and_rim_bases():
    text = subprocess.run(["make", "-n", "--no-print-directory", "train-spio", "PY=python"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout   # (under `make test` make would name its folder)
    commands = bundle_commands("train-spio")
    assert [options(c).get("noise_free_fraction") for c in commands] == [None] * 4 + ["0.25"] * 2
    # 0.8.0 (sessions 27-28): one in eight of the last stage's base images gets a bright thin rim, no earlier stage
    assert [options(c).get("rim_bases") for c in commands] == [None] * 5 + ["0.125"]
    copies = [line.split() for line in text.splitlines() if line.startswith("cp ")]
    assert copies[0] == ["cp", options(commands[-1])["model_path"], "monai_bundles/spio_quantification/models/model.pt"]
    assert text.splitlines().index(" ".join(copies[0])) > max(i for i, line in enumerate(text.splitlines())
                                                              if "monai.bundle run" in line)  # after the last stage
    # 0.9.0 (session 30): then the refiner's pool is simulated with those weights and the refiner trained on it
    assert copies[1][-1] == "monai_bundles/spio_quantification/models/refiner.pt" and len(copies) == 2
    lines = text.splitlines()
    pools = [i for i, line in enumerate(lines) if "refiner_module pool" in line]
    trains = [i for i, line in enumerate(lines) if "refiner_module train" in line]
    assert pools and trains and lines.index(" ".join(copies[0])) < min(pools) < max(pools) < trains[0]
    training = " ".join(lines[trains[0]:trains[0] + 3])
    assert "--batch_size 4 --learning_rate 0.0005" in training  # 0.10.1 (session 31)
    assert "--steps 5000" in training and "--channels_last" in training  # 0.10.2 (session 32): NHWC buys the steps
    # 0.10.0 (session 31): both training shards of the refiner's pool come from the broader generator
    pool_text = " ".join(lines[min(pools):max(pools) + 1])
    training_shards = pool_text.split("pool --seed ")[1:]
    assert [shard.startswith("300 ") for shard in training_shards] == [True, True, False]  # + validation, seed 301
    assert all("--last_stage --rim_bases 0.5 --shape_variety 0.5" in shard for shard in training_shards[:2])
    # 0.13.0 (session 40): and a quarter of their objects are ellipsoids of random extent along y
    assert ["--extent_family 0.25" in shard for shard in training_shards] == [True, True, False]
    assert "--rim_bases" not in training_shards[2]  # the validation shard stays training's plain generator
    # session 32: the shards split 3 500 samples 1 850 | 1 650 (the validation shard beside the second), contiguous
    # and in the training line's order, so the pool is the same 3 500 samples as 0.10.1's 1 750 | 1 750
    ranges = [(int(shard.split("--start ")[1].split()[0]), int(shard.split("--n ")[1].split()[0]))
              for shard in training_shards[:2]]
    assert ranges == [(0, 1850), (1850, 1650)]
    outs = [shard.split("--out ")[1].split()[0] for shard in training_shards[:2]]
    assert training.split("--pool ")[1].split()[:2] == outs


def _dry_run(target: str) -> list[str]:
    text = subprocess.run(["make", "-n", "--no-print-directory", target, "PY=python"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.replace("\\\n", " ")
    return text.splitlines()


def test_the_noise_robust_companion_is_the_last_stages_with_other_noise_models():
    """0.11.0 (session 34): the companion weights are train-spio's last DeepSPIO stage and its refiner stage, each
    with --noise_models 0.25 and nothing else changed, copied beside the shipped weights (not over them)."""
    last = bundle_commands("train-spio")[-1]
    robust = bundle_commands("train-spio-noise-robust")
    assert len(robust) == 1
    differs = {k: v for k, v in options(robust[0]).items() if options(last).get(k) != v}
    assert set(differs) == {"noise_models", "work_dir", "model_path"} and differs["noise_models"] == "0.25"
    assert options(robust[0])["init_weights"] == options(last)["init_weights"]  # the same G3n
    lines = _dry_run("train-spio-noise-robust")
    copies = [line.split() for line in lines if line.startswith("cp ")]
    models = "monai_bundles/spio_quantification/models"
    assert [c[-1] for c in copies] == [f"{models}/model_noise_robust.pt", f"{models}/refiner_noise_robust.pt"]
    assert copies[0][1] == options(robust[0])["model_path"]
    shipped = [line for line in _dry_run("train-spio-refiner") if "refiner_module" in line]
    companion = [line for line in lines if "refiner_module" in line]
    assert len(shipped) == len(companion) == 2  # one line of pools (three processes), one of training
    for a, b in zip(shipped, companion, strict=True):  # the same lines but for the pools' maps and noise, and names
        a_words, b_words = a.replace("refiner_pool", "X_pool").replace("refiner_val", "X_val").split(), \
            b.replace("refiner_noise_robust_pool", "X_pool").replace("refiner_noise_robust_val", "X_val").split()
        extra = [w for w in b_words if w not in a_words]
        assert all(w in ("--noise_models", "0.25", "--model_path", options(robust[0])["model_path"])
                   or w.endswith("refiner_noise_robust.pt") for w in extra), extra
    pools = companion[0].split("pool --seed ")[1:]
    assert ["--noise_models 0.25" in p for p in pools] == [True, True, False]  # validation: Rician, as shipped
    assert not any("--extent_family" in p for p in pools)  # 0.11.0's pool, so the recipe makes the shipped companion
    assert all(f"--model_path {options(robust[0])['model_path']}" in p for p in pools)
