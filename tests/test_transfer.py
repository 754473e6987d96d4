"""Transfer learning end to end: the offline weights error, the weights command, gradual unfreezing
resumed in every stage in both loops, DDP across the unfreeze, and the frozen-feature cache.

Nothing touches the network: subprocesses get an empty TORCH_HOME and an https proxy on a closed
local port (127.0.0.1:9), so a download attempt is refused at once, as on a machine offline.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch import Callback

from project.lit.cli import main as lightning_main
from project.manual.cli import run as manual_run
from project.models.feature_cache import FeatureCache
from project.models.transfer import TransferNetwork
from project.models.weights import main as weights_main
from project.runs.checkpoints import load_checkpoint

from .helpers import (
    DEFAULTS_CONFIG,
    REPO,
    assert_same_tensors,
    make_class_folders,
    only_line,
    run_command,
    small_resnet_args,
)

OFFLINE_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, the connection is refused


def offline_env(torch_home: Path) -> dict[str, str]:
    env = dict(os.environ, TORCH_HOME=str(torch_home))
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        env[name] = OFFLINE_PROXY
    env.pop("no_proxy", None)
    env.pop("NO_PROXY", None)
    return env


# ----------------------------------------------------------------------------- offline weights


@pytest.mark.parametrize("entry", ["project", "project.manual"])
def test_missing_weights_offline_is_one_line_and_exit_status_2(entry, digits_root, tmp_path):
    torch_home = tmp_path / "torch_home"
    command = [
        sys.executable,
        "-m",
        entry,
        "fit",
        *small_resnet_args(digits_root, tmp_path / "logs", '--data.classes=["0", "1"]'),
    ]
    result = run_command(command, env=offline_env(torch_home), check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    line = only_line(result.stderr)
    assert line.startswith("error: ")
    assert "resnet18-f37072fd.pth" in line  # the file,
    assert str(torch_home / "hub" / "checkpoints") in line  # the folder,
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in line  # the URL
    assert "python -m project weights ResNet18_Weights.IMAGENET1K_V1" in line


def test_weights_command_offline_says_where_and_checks_the_hash(tmp_path, monkeypatch, capsys):
    for name, value in offline_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_status:
        weights_main(["mobilenet_v3_small"])
    assert exit_status.value.code == 2
    line = capsys.readouterr().err.strip()
    folder = tmp_path / "hub" / "checkpoints"
    assert f"mobilenet_v3_small-047dcff4.pth in {folder}" in line and "\n" not in line
    assert "downloading" in line and "failed" in line  # the network error as this machine words it
    # A file in the right place whose bytes do not match the hash in its name is refused.
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mobilenet_v3_small-047dcff4.pth").write_bytes(b"not the weights")
    with pytest.raises(SystemExit) as exit_status:
        weights_main(["MobileNet_V3_Small_Weights.IMAGENET1K_V1", "--no-download"])
    assert exit_status.value.code == 2
    assert "does not match the hash" in only_line(capsys.readouterr().err)


# ----------------------------------------------------------------------------- gradual unfreezing


def every_epoch_config(folder: Path) -> Path:
    """The configured callbacks with the val/acc checkpoint keeping every epoch as epoch<N>.ckpt."""
    callbacks = yaml.safe_load(DEFAULTS_CONFIG.read_text())["trainer"]["callbacks"]
    best = [c for c in callbacks if c.get("init_args", {}).get("monitor") == "val/acc"]
    best[0]["init_args"].update(save_top_k=-1, filename="epoch{epoch}")
    path = folder / "every_epoch.yaml"
    path.write_text(yaml.safe_dump({"trainer": {"callbacks": callbacks}}))
    return path


def staged_args(folder: Path) -> list[str]:
    """3 epochs on 3 classes x 12 small images: the head, then the head + last block, then
    everything; deterministic. (No limit_*_batches: the manual loop does not implement them.)"""
    root = make_class_folders(folder / "images", {"a": 12, "b": 12, "c": 12})
    return small_resnet_args(
        root,
        folder / "logs",
        "--data.val_fraction=0.25",
        "--data.test_fraction=0.0",
        "--data.augmentation=none",
        "--model.init_args.weights=null",
        "--model.init_args.freeze_backbone_epochs=1",
        "--model.init_args.last_block_epochs=1",
        "--trainer.max_epochs=3",
        "--trainer.deterministic=true",
        "--config",
        str(every_epoch_config(folder)),
    )


def lightning_checkpoints(cli) -> Path:
    return Path(cli.trainer.log_dir) / "checkpoints"


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["lightning", "manual"])
def test_gradual_unfreezing_resumes_exactly_from_every_stage(loop, tmp_path, capsys):
    args = staged_args(tmp_path)
    if loop == "lightning":
        straight = lightning_checkpoints(lightning_main(["fit", *args]))
    else:
        straight = manual_run(["fit", *args]).log_dir / "checkpoints"
    printed = capsys.readouterr().out
    assert "epoch 1: training the head and the last block" in printed
    assert "epoch 2: training everything" in printed
    final = load_checkpoint(straight / "epoch2.ckpt")
    for stopped in (0, 1):  # stopped after the head-only epoch, after the last-block epoch
        start = str(straight / f"epoch{stopped}.ckpt")
        if loop == "lightning":
            resumed = lightning_checkpoints(lightning_main(["fit", *args, f"--ckpt_path={start}"]))
        else:
            resumed = manual_run(["fit", *args, "--resume", start]).log_dir / "checkpoints"
        got = load_checkpoint(resumed / "epoch2.ckpt")
        key = "state_dict" if loop == "lightning" else "model"
        assert_same_tensors(final[key], got[key])  # bit-identical to the straight run
        optimizer = "optimizer_states" if loop == "lightning" else "optimizer"
        groups = final[optimizer][0] if loop == "lightning" else final[optimizer]
        resumed_groups = got[optimizer][0] if loop == "lightning" else got[optimizer]
        names = [g["name"] for g in resumed_groups["param_groups"]]
        assert names == [g["name"] for g in groups["param_groups"]] == ["backbone", "head"]


# ----------------------------------------------------------------------------- DDP


class SaveRankWeights(Callback):
    """Each process writes its own weights at the end (process 0 alone writes checkpoints)."""

    def __init__(self, folder: str):
        self.folder = folder

    def save(self, trainer, pl_module, when: str) -> None:
        path = Path(self.folder) / f"{when}-rank{trainer.global_rank}.pt"
        torch.save({k: v.detach().cpu() for k, v in pl_module.state_dict().items()}, path)

    def on_train_start(self, trainer, pl_module):
        self.save(trainer, pl_module, "start")

    def on_train_end(self, trainer, pl_module):
        self.save(trainer, pl_module, "end")


@pytest.mark.slow
def test_lightning_ddp_keeps_the_late_unfrozen_backbone_identical_on_both_ranks(
    digits_root, tmp_path
):
    callback = {
        "class_path": "tests.test_transfer.SaveRankWeights",
        "init_args": {"folder": str(tmp_path)},
    }
    command = [
        sys.executable,
        "-m",
        "project",
        "fit",
        *small_resnet_args(
            digits_root,
            tmp_path / "logs",
            '--data.classes=["0", "1", "2"]',
            "--model.init_args.weights=null",
            "--model.init_args.freeze_backbone_epochs=1",
            "--trainer.max_epochs=2",
            "--trainer.limit_train_batches=3",
            "--trainer.limit_val_batches=1",
        ),
        "--config",
        str(REPO / "configs" / "presets" / "ddp_cpu.yaml"),
        f"--trainer.callbacks+={yaml.safe_dump(callback, default_flow_style=True).strip()}",
    ]
    run_command(command)  # status 0, or fails with the output; past the bound kills both ranks
    weights = {
        (when, rank): torch.load(tmp_path / f"{when}-rank{rank}.pt", weights_only=True)
        for when in ("start", "end")
        for rank in (0, 1)
    }
    assert_same_tensors(weights["end", 0], weights["end", 1])
    # The backbone did train after the unfreeze, on each process's own half of the data.
    key = "network.backbone.layer1.0.conv1.weight"
    assert not torch.equal(weights["start", 0][key], weights["end", 0][key])


# ----------------------------------------------------------------------------- feature cache


def test_feature_cache_computes_each_image_once_and_equals_the_frozen_path():
    torch.manual_seed(0)
    network = TransferNetwork(3, backbone="resnet18")
    network.set_stage("head")
    images = torch.randn(6, 3, 32, 32)
    expected = network.eval()(images)
    network.feature_cache = FeatureCache()
    network.train()  # frozen BatchNorm stays in eval: the cached features are the same
    first, second = network(images), network(images[[5, 0, 3]])
    assert network.feature_cache.misses == 6 and network.feature_cache.hits == 3
    torch.testing.assert_close(first, expected)
    torch.testing.assert_close(second, expected[[5, 0, 3]])
    network.set_stage("all")  # a trainable backbone never reads the cache
    network(images)
    assert network.feature_cache.hits == 3


def test_feature_cache_with_augmentation_is_refused(digits_root, tmp_path, capsys):
    args = small_resnet_args(
        digits_root,
        tmp_path,
        '--data.classes=["0", "1"]',
        "--model.init_args.weights=null",
        "--model.init_args.cache_features=true",
        "--trainer.fast_dev_run=true",
    )
    with pytest.raises(SystemExit) as exit_status:
        lightning_main(["fit", *args])
    assert exit_status.value.code == 2
    assert "needs --data.augmentation none" in capsys.readouterr().err


# ----------------------------------------------------------------------------- glyph data


def test_glyphs_are_deterministic_and_the_font_sets_never_meet(tmp_path):
    from project.transfer import glyphs

    source = glyphs.usable_fonts(glyphs.SOURCE_FONTS, glyphs.LETTERS)
    target = glyphs.usable_fonts(glyphs.TARGET_FONTS, glyphs.DIGITS)
    assert len(source) == 16 and len(target) == 6 and not set(source) & set(target)
    draws = [glyphs.draw("7", target[0], np.random.default_rng(5)) for _ in range(2)]
    assert draws[0].size == (32, 32) and draws[0].tobytes() == draws[1].tobytes()
    # A few-shot split: k images per digit from the pool, every validation image, as files.
    for digit in glyphs.DIGITS:
        for part, count in (("pool", 4), ("val", 2)):
            folder = tmp_path / "digits" / part / digit
            folder.mkdir(parents=True)
            for n in range(count):
                draws[0].save(folder / f"{n}.png")
    split = glyphs.few_shot_split(tmp_path, k=3, seed=0)
    assert split == tmp_path / "digits" / "k3_seed0"
    for digit in glyphs.DIGITS:
        assert len(list((split / "train" / digit).glob("*.png"))) == 3
        assert len(list((split / "val" / digit).glob("*.png"))) == 2


# ----------------------------------------------------------------------------- the challenge, small

# The real commands (make challenge-data: python -m project.transfer.source; make transfer:
# python -m project.transfer), run as scripts in a fresh interpreter from a scratch folder (their
# data/glyphs is relative to the working directory), on a small version of the glyphs: 2 fonts a
# side, 2 letters per font and class, the 20-per-digit pool the challenge split needs, 1 validation
# image per font and digit; one epoch per stage. The module constants are the only change.
SMALL_CHALLENGE = """
import runpy, sys
from project.transfer import glyphs, proof
glyphs.SOURCE_FONTS, glyphs.TARGET_FONTS = glyphs.SOURCE_FONTS[:2], glyphs.TARGET_FONTS[:2]
glyphs.SOURCE_PER_FONT, glyphs.POOL_PER_FONT, glyphs.VAL_PER_FONT = 2, 10, 1
one_epoch = ["--trainer.max_epochs=1", "--trainer.check_val_every_n_epoch=1"]
proof.QUIET = [*proof.QUIET, *one_epoch]  # every row of the table: one epoch, validated
command = sys.argv[1]
sys.argv = [command, *sys.argv[2:]]
runpy.run_module(command, run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_the_challenge_pipeline_runs_through_its_commands(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's project, from any folder

    def command(*args: str) -> str:
        result = run_command([sys.executable, "-c", SMALL_CHALLENGE, *args], cwd=tmp_path, env=env)
        return result.stdout

    # make challenge-data: glyphs, the source backbone (1 epoch on the letters), the k=20 split
    out = command("project.transfer.source", "--trainer.max_epochs=1", "--data.val_fraction=0.25")
    root = tmp_path / "data" / "glyphs"
    weights = root / "source_resnet18.pth"
    assert f"ready: {Path('data/glyphs/source_resnet18.pth')}" in out, out
    assert re.search(r"source backbone: letters val/acc [01]\.\d{4}", out), out
    fonts = (root / "done.txt").read_text().splitlines()
    assert len([f for f in fonts if f.startswith("source:")]) == 2, fonts
    backbone = torch.load(weights, weights_only=True)
    assert "conv1.weight" in backbone and not any(k.startswith("fc.") for k in backbone)
    split = root / "digits" / "k20_seed0"
    for digit in "0123456789":
        assert len(list((split / "train" / digit).glob("*.png"))) == 20
        assert len(list((split / "val" / digit).glob("*.png"))) == 2
    # The challenge's target config loads that file like downloaded weights (as the exercise does).
    trained = TransferNetwork(10, weights=str(weights))
    assert torch.equal(trained.backbone.state_dict()["conv1.weight"], backbone["conv1.weight"])

    # make transfer: the table, every row a real fit of configs/transfer/target.yaml (1 seed)
    out = command("project.transfer", "--seeds", "1")
    table = out[out.index("digits 0-9 in 6 unseen fonts") :].splitlines()
    rows = [line for line in table[2:] if not line.startswith("whole run")]
    assert len(rows) == 5, out
    for line in rows:
        mean = float(line[52:].split()[0])
        assert 0.0 <= mean <= 1.0, line
    assert (tmp_path / "lightning_logs" / "transfer" / "target").is_dir()  # target.yaml's logger

    # WORKSHOP.md phase 4's stretch: ONNX export of the challenge model, as written there, on
    # train/val-only data; then again with the glyphs moved away (the checkpoint alone).
    checkpoint = sorted((tmp_path / "lightning_logs" / "transfer" / "target").rglob("*.ckpt"))[0]
    stretch = "python -m project export --ckpt_path CKPT --output glyphs.onnx"
    assert stretch in " ".join((REPO / "WORKSHOP.md").read_text().split())
    export = [sys.executable, "-m", "project", "export", "--ckpt_path", str(checkpoint),
              "--output", "glyphs.onnx"]  # fmt: skip
    out = run_command(export, cwd=tmp_path, env=env).stdout
    assert "checked on" in out and "val" in out.split("checked on", 1)[1].splitlines()[0], out
    assert (tmp_path / "glyphs.onnx").stat().st_size > 1_000_000
    root.rename(tmp_path / "moved_away")
    (tmp_path / "glyphs.onnx").unlink()
    out = run_command(export, cwd=tmp_path, env=env).stdout
    assert "checked on" in out and (tmp_path / "glyphs.onnx").exists(), out
