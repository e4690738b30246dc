"""The Makefile's SPIO training recipes name only options train.json has (issue 24, session 23): a ``#`` in a make
variable starts a comment, and a silently cut ``--trainer#precision`` would train in float32 without an error."""

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
    text = subprocess.run(["make", "-n", target, "PY=python"], cwd=ROOT, check=True, capture_output=True,
                          text=True).stdout.replace("\\\n", " ")
    return [shlex.split(line) for line in text.splitlines() if "monai.bundle run" in line]


def options(command: list[str]) -> dict[str, str]:
    keys = [i for i, token in enumerate(command) if token.startswith("--")]
    return {command[i][2:]: command[i + 1] for i in keys}


@pytest.mark.parametrize("target", ["train-spio", "train-spio-scratch"])
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


def test_the_scratch_recipe_trains_fast_on_fresh_samples_in_23000_steps():
    batch_size, steps = json.loads(TRAIN_JSON.read_text())["batch_size"], 0
    for command in bundle_commands("train-spio-scratch"):
        given = options(command)
        assert given["trainer#precision"] == "bf16-mixed" and given["channels_last"] == "true"
        assert given["pool_size"] == "0" and given["num_workers"] == "1" and given["auxiliary_weight"] == "1"
        steps += int(given["samples_per_epoch"]) // batch_size * int(given["trainer#max_epochs"])
    assert steps == 23_000
