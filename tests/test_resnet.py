"""ResNet18 transfer learning: weights sources, freezing, differential LRs, precision, resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torchvision.models import ResNet18_Weights, resnet18

from project.lit.classifier import ResNetClassifier
from project.lit.cli import main
from project.lit.datamodule import ImageDataModule
from project.models.cnn import SmallCNN
from project.models.resnet import ResNetTransfer, WeightsError, torchvision_cache_file

REPO = Path(__file__).resolve().parents[1]


def resnet_args(digits_root: Path, log_dir: Path, *extra: str) -> list[str]:
    """configs/resnet18.yaml cut down to a few fp32 batches of 32 px images, random weights."""
    return [
        "--config",
        str(REPO / "configs" / "resnet18.yaml"),
        f"--data.root={digits_root}",
        "--data.image_size=32",
        "--data.batch_size=32",
        f"--trainer.logger.init_args.save_dir={log_dir}",
        "--model.init_args.weights=null",
        "--trainer.precision=32-true",
        "--trainer.limit_train_batches=4",
        "--trainer.limit_val_batches=2",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        *extra,
    ]


def backbone_snapshot(model: ResNetClassifier) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.network.backbone.state_dict().items()}


# ----------------------------------------------------------------------------- weights sources


def test_torchvision_weights_are_read_from_the_torch_home_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache_file = torchvision_cache_file(ResNet18_Weights.IMAGENET1K_V1)
    assert cache_file == tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    torch.manual_seed(0)
    saved = resnet18(num_classes=1000).state_dict()
    cache_file.parent.mkdir(parents=True)
    torch.save(saved, cache_file)
    network = ResNetTransfer(num_classes=5, weights="IMAGENET1K_V1", download=False)
    loaded = network.backbone.state_dict()
    assert loaded.keys() == {k for k in saved if not k.startswith("fc.")}
    assert all(torch.equal(loaded[k], saved[k]) for k in loaded)
    assert network.head.in_features == 512 and network.head.out_features == 5


def test_missing_weights_offline_name_the_file_and_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsError) as error:
        ResNetTransfer(num_classes=5, weights="ResNet18_Weights.IMAGENET1K_V1", download=False)
    message = str(error.value)
    assert "resnet18-f37072fd.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "--model.init_args.weights" in message


def test_local_pth_file_loads_and_wrong_architecture_is_refused(tmp_path):
    torch.manual_seed(1)
    saved = resnet18().state_dict()
    torch.save(saved, tmp_path / "mine.pth")
    network = ResNetTransfer(num_classes=3, weights=str(tmp_path / "mine.pth"))
    assert torch.equal(network.backbone.conv1.weight, saved["conv1.weight"])
    torch.save(SmallCNN(3).state_dict(), tmp_path / "cnn.pth")
    with pytest.raises(WeightsError, match="mismatched keys"):
        ResNetTransfer(num_classes=3, weights=str(tmp_path / "cnn.pth"))
    with pytest.raises(WeightsError, match="not found"):
        ResNetTransfer(num_classes=3, weights=str(tmp_path / "absent.pth"))
    # Right keys, wrong shape (a 1-channel first conv): also refused, naming the tensor.
    saved["conv1.weight"] = saved["conv1.weight"][:, :1]
    torch.save(saved, tmp_path / "grey.pth")
    with pytest.raises(WeightsError, match="conv1.weight"):
        ResNetTransfer(num_classes=3, weights=str(tmp_path / "grey.pth"))


# ----------------------------------------------------------------------------- freezing


@pytest.mark.slow
def test_frozen_backbone_is_bit_identical_after_an_epoch(digits_root, tmp_path):
    args = resnet_args(
        digits_root,
        tmp_path,
        "--model.init_args.freeze_backbone_epochs=null",
        "--trainer.max_epochs=1",
    )
    cli = main(args, run=False)
    model = cli.model
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"network.head.weight", "network.head.bias"}
    before = backbone_snapshot(model)
    head_before = model.network.head.weight.detach().clone()
    cli.trainer.fit(model, datamodule=cli.datamodule)
    after = backbone_snapshot(model)
    # Parameters and BatchNorm buffers (running mean/var, batch count) are untouched.
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(head_before, model.network.head.weight)


@pytest.mark.slow
def test_unfreeze_gives_named_groups_with_the_lr_ratio_at_every_step(digits_root, tmp_path):
    args = resnet_args(
        digits_root,
        tmp_path,
        "--model.init_args.freeze_backbone_epochs=1",
        "--trainer.max_epochs=2",
        "--trainer.log_every_n_steps=1",
        "--model.init_args.warmup_fraction=0.5",
    )
    cli = main(args, run=False)
    before = backbone_snapshot(cli.model)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    optimizer = cli.trainer.optimizers[0]
    assert [group["name"] for group in optimizer.param_groups] == ["backbone", "head"]
    assert all(p.requires_grad for p in cli.model.parameters())
    after = backbone_snapshot(cli.model)
    assert not torch.equal(before["conv1.weight"], after["conv1.weight"])  # trained in epoch 2

    events = EventAccumulator(cli.trainer.log_dir)
    events.Reload()
    backbone = [e.value for e in events.Scalars("lr/backbone")]
    head = [e.value for e in events.Scalars("lr/head")]
    assert len(head) == 8  # every step of 2 epochs x 4 batches
    for backbone_lr, head_lr in zip(backbone, head, strict=True):
        assert backbone_lr == pytest.approx(head_lr * 0.1, rel=1e-5)
    # warmup_cosine: up during the warm-up, then down to the end.
    peak = head.index(max(head))
    assert head[0] < head[peak] and head[-1] < head[peak]
    assert max(head) == pytest.approx(cli.model.hparams.optimizer["init_args"]["lr"], rel=1e-5)


@pytest.mark.slow
def test_resume_across_the_unfreeze_keeps_groups_and_lrs(digits_root, tmp_path):
    straight = main(
        [
            "fit",
            *resnet_args(
                digits_root,
                tmp_path / "a",
                "--model.init_args.freeze_backbone_epochs=1",
                "--trainer.max_epochs=2",
            ),
        ]
    )
    first = main(
        [
            "fit",
            *resnet_args(
                digits_root,
                tmp_path / "b",
                "--model.init_args.freeze_backbone_epochs=1",
                "--trainer.max_epochs=1",
            ),
        ]
    )
    last = str(Path(first.trainer.checkpoint_callback.dirpath) / "last.ckpt")
    assert first.model.network.backbone_frozen  # the checkpoint was taken before the unfreeze
    # A project .ckpt is also a weights source: its backbone goes into a new model, head excluded.
    transferred = ResNetTransfer(num_classes=3, weights=last)
    assert torch.equal(
        transferred.backbone.layer4[1].conv2.weight,
        first.model.network.backbone.layer4[1].conv2.weight,
    )
    resumed = main(
        [
            "fit",
            *resnet_args(
                digits_root,
                tmp_path / "b",
                "--model.init_args.freeze_backbone_epochs=1",
                "--trainer.max_epochs=2",
            ),
            f"--ckpt_path={last}",
        ]
    )
    assert resumed.trainer.global_step == straight.trainer.global_step == 8
    assert not resumed.model.network.backbone_frozen
    groups = resumed.trainer.optimizers[0].param_groups
    straight_groups = straight.trainer.optimizers[0].param_groups
    assert [g["name"] for g in groups] == ["backbone", "head"]
    for group, reference in zip(groups, straight_groups, strict=True):
        assert group["lr"] == pytest.approx(reference["lr"], rel=1e-6)
        assert len(group["params"]) == len(reference["params"])


# ----------------------------------------------------------------------------- precision


class AutocastRecorder(ResNetClassifier):
    """Remembers whether autocast was on, and the logits' dtype, inside training_step."""

    def training_step(self, batch, batch_idx):
        self.seen = (torch.is_autocast_enabled("cpu"), self(batch[0]).dtype)
        return super().training_step(batch, batch_idx)


@pytest.mark.slow
def test_bf16_mixed_runs_the_step_under_autocast(digits_root, tmp_path):
    model = AutocastRecorder(num_classes=10, weights=None, freeze_backbone_epochs=0)
    data = ImageDataModule(root=str(digits_root), image_size=32, batch_size=16, num_workers=0)
    trainer = Trainer(
        precision="bf16-mixed",
        accelerator="cpu",
        max_steps=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, datamodule=data)
    assert model.seen == (True, torch.bfloat16)
