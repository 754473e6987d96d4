"""The transfer-learning challenge's criteria, each checked on configs/resnet18.yaml (one real run).

1. pretrained weights are loaded: a known tensor from a (fake) weights file in the torchvision
   cache appears in the backbone;
2. in the frozen phase only the head's parameters require gradients;
3. under mixed precision the forward pass runs under autocast;
4. the learning rate decreases per the schedule (warm-up, then cosine decay);
5. the best checkpoint follows validation accuracy.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback
from torchvision.models import ResNet18_Weights, resnet18

from project.lit.cli import main
from project.models.weights import cache_file

from .helpers import RESNET_CONFIG

KNOWN = 0.0123  # every conv1 weight in the fake file


class ChallengeRecorder(Callback):
    """What the criteria need, read from the run as it happens."""

    def __init__(self):
        self.conv1_at_start: torch.Tensor | None = None
        self.trainable: dict[int, set[str]] = {}
        self.autocast: list[tuple[bool, torch.dtype]] = []
        self.lrs: list[float] = []
        self.val_acc: list[float] = []

    def on_train_start(self, trainer, pl_module):
        self.conv1_at_start = pl_module.network.backbone.conv1.weight.detach().clone()

        def record(module, inputs, output):
            if module.training:
                self.autocast.append((torch.is_autocast_enabled("cpu"), output.dtype))

        pl_module.network.head.register_forward_hook(record)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        names = {n for n, p in pl_module.named_parameters() if p.requires_grad}
        self.trainable.setdefault(trainer.current_epoch, names)
        self.lrs.append(trainer.optimizers[0].param_groups[1]["lr"])  # the head's group

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.val_acc.append(trainer.callback_metrics["val/acc"].item())


@pytest.fixture(scope="module")
def challenge_run(digits_root, tmp_path_factory, request):
    folder = tmp_path_factory.mktemp("challenge")
    monkeypatch = pytest.MonkeyPatch()
    request.addfinalizer(monkeypatch.undo)
    monkeypatch.setenv("TORCH_HOME", str(folder / "torch_home"))
    fake = resnet18().state_dict()
    fake["conv1.weight"] = torch.full_like(fake["conv1.weight"], KNOWN)
    path = cache_file(ResNet18_Weights.IMAGENET1K_V1)
    path.parent.mkdir(parents=True)
    torch.save(fake, path)
    cli = main(
        [
            "--config",
            RESNET_CONFIG,
            f"--data.root={digits_root}",
            '--data.classes=["0", "1", "2"]',
            "--data.image_size=32",
            f"--trainer.logger.init_args.save_dir={folder}",
            "--model.init_args.weights=DEFAULT",
            "--model.init_args.download=false",
            "--model.init_args.freeze_backbone_epochs=1",
            "--model.init_args.warmup_fraction=0.3",  # 2 of the 9 steps warm up
            "--trainer.precision=bf16-mixed",
            "--trainer.max_epochs=3",
            "--trainer.limit_train_batches=3",
            "--trainer.limit_val_batches=2",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
        ],
        run=False,
    )
    recorder = ChallengeRecorder()
    cli.trainer.callbacks.append(recorder)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli, recorder


@pytest.mark.slow
def test_pretrained_weights_are_loaded_from_the_file(challenge_run):
    _, recorder = challenge_run
    assert torch.all(recorder.conv1_at_start == KNOWN)


@pytest.mark.slow
def test_only_the_head_requires_grad_in_the_frozen_phase(challenge_run):
    _, recorder = challenge_run
    assert recorder.trainable[0] == {"network.head.weight", "network.head.bias"}
    assert len(recorder.trainable[1]) > 2  # unfrozen afterwards


@pytest.mark.slow
def test_mixed_precision_runs_the_forward_under_autocast(challenge_run):
    _, recorder = challenge_run
    assert recorder.autocast and set(recorder.autocast) == {(True, torch.bfloat16)}


@pytest.mark.slow
def test_learning_rate_decreases_per_the_schedule(challenge_run):
    cli, recorder = challenge_run
    lrs = recorder.lrs
    first = lrs.index(max(lrs))
    last = len(lrs) - 1 - lrs[::-1].index(max(lrs))
    assert max(lrs) == pytest.approx(cli.model.hparams.optimizer["init_args"]["lr"], rel=1e-6)
    # warm-up to the peak, then every step lower than the one before (cosine decay)
    assert first > 0 and all(a < b for a, b in zip(lrs[:first], lrs[1 : first + 1], strict=True))
    assert all(a > b for a, b in zip(lrs[last:], lrs[last + 1 :], strict=False))
    assert lrs[-1] < 0.1 * max(lrs)


@pytest.mark.slow
def test_best_checkpoint_follows_validation_accuracy(challenge_run):
    cli, recorder = challenge_run
    best = cli.trainer.checkpoint_callback
    assert best.monitor == "val/acc" and best.mode == "max"
    assert best.best_model_score.item() == pytest.approx(max(recorder.val_acc))
    epoch = int(re.search(r"best-epoch(\d+)", Path(best.best_model_path).name).group(1))
    assert recorder.val_acc[epoch] == pytest.approx(max(recorder.val_acc))
    assert Path(best.best_model_path).is_file()
