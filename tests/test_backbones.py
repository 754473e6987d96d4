"""Six torchvision families as backbones: head found and replaced, stages, groups, a real step.

Random weights at 32 px (nothing is downloaded); two of them also load a fake weights file put
where torchvision's cache expects it, in a temporary TORCH_HOME. Each family also trains one epoch
through both entry points (``python -m project fit`` and ``python -m project.manual fit``).
"""

from __future__ import annotations

import json
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import get_model, get_model_weights

from project.core.optimizers import build_optimizer
from project.core.recipe import ResNetRecipe
from project.models.transfer import TransferNetwork
from project.models.weights import WeightsError, cache_file

from .helpers import make_class_folders, small_resnet_args

SIZE = 32
# name: (where torchvision keeps the head, its in_features, builder options for 32 px)
BACKBONES = {
    "resnet18": ("fc", 512, {}),
    "resnet50": ("fc", 2048, {}),
    "efficientnet_b0": ("classifier.1", 1280, {}),
    "mobilenet_v3_small": ("classifier.3", 1024, {}),
    "convnext_tiny": ("classifier.2", 768, {}),
    "vit_b_16": ("heads.head", 768, {"image_size": SIZE}),
}


@pytest.fixture(scope="module", params=list(BACKBONES))
def classifier(request) -> ResNetRecipe:
    """One recipe per family (built once: vit_b_16 and convnext_tiny take seconds); the plain
    object both loops train (ResNetClassifier wraps it for Lightning)."""
    options = BACKBONES[request.param][2]
    torch.manual_seed(0)
    return ResNetRecipe(
        num_classes=3,
        backbone=request.param,
        weights=None,
        backbone_options=options,
        freeze_backbone_epochs=1,
        last_block_epochs=1,
    )


def count(network: torch.nn.Module) -> int:
    return sum(p.numel() for p in network.parameters() if p.requires_grad)


def test_head_is_found_replaced_and_sized_from_the_model(classifier):
    network = classifier.network
    head_path, in_features, _ = BACKBONES[network.backbone_name]
    assert network.head_path == head_path
    assert network.head.in_features == in_features and network.head.out_features == 3
    assert isinstance(network.backbone.get_submodule(head_path), torch.nn.Identity)
    images = torch.randn(2, 3, SIZE, SIZE)
    assert network.eval()(images).shape == (2, 3)


def test_stages_head_then_last_block_then_all_with_two_named_groups(classifier):
    network = classifier.network
    head = sum(p.numel() for p in network.head.parameters())
    total = sum(p.numel() for p in network.parameters())
    stages = {}
    for epoch in range(3):
        classifier.prepare_epoch(epoch)
        stages[network.stage] = count(network)
        groups = classifier.param_groups()
        assert [g["name"] for g in groups] == ["backbone", "head"]  # the same in every stage
    assert stages["head"] == head
    assert head < stages["last_block"] < total
    assert stages["all"] == total
    # Frozen BatchNorm layers stay in eval mode in train(); trainable ones train.
    classifier.prepare_epoch(0)
    network.train()
    batchnorms = [m for m in network.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(not m.training for m in batchnorms)


def test_one_step_trains_the_head_only_then_the_last_block(classifier):
    network = classifier.network
    torch.manual_seed(1)
    images, labels = torch.randn(2, 3, SIZE, SIZE), torch.tensor([0, 1])
    for epoch, backbone_moves in ((0, False), (1, True)):
        classifier.prepare_epoch(epoch)
        network.train()
        # SGD: the same param groups both loops build, at a fraction of AdamW's cost for ViT-B.
        sgd = partial(torch.optim.SGD, lr=0.1, momentum=0.9)
        optimizer = build_optimizer(classifier.param_groups(), sgd)
        before = [p.detach().clone() for p in network.backbone.parameters()]
        loss = F.cross_entropy(network(images), labels)
        optimizer.zero_grad()
        loss.backward()
        # Gradients exactly for the trainable parameters (the head's always).
        assert all((p.grad is not None) == p.requires_grad for p in network.parameters())
        assert network.head.weight.grad is not None
        optimizer.step()
        after = list(network.backbone.parameters())
        moved = [not torch.equal(a, p) for a, p in zip(before, after, strict=True)]
        assert any(moved) == backbone_moves
        # Only the trainable ones moved: in the last_block stage, the early layers did not.
        assert all(p.requires_grad for p, m in zip(after, moved, strict=True) if m)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_fake_weights_file_in_the_torch_home_cache_is_loaded(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = get_model_weights(name).DEFAULT
    torch.manual_seed(3)
    saved = get_model(name, weights=None).state_dict()
    path = cache_file(weights)
    assert path.parent == tmp_path / "hub" / "checkpoints"
    path.parent.mkdir(parents=True)
    torch.save(saved, path)
    network = TransferNetwork(3, backbone=name, weights="DEFAULT", download=False)
    loaded = network.backbone.state_dict()
    head = network.head_path + "."
    assert loaded.keys() == {k for k in saved if not k.startswith(head)}
    assert all(torch.equal(loaded[k], saved[k]) for k in loaded)


def test_unknown_backbone_and_weights_names_are_one_line_errors():
    with pytest.raises(WeightsError, match="unknown backbone 'resnet19'"):
        TransferNetwork(3, backbone="resnet19")
    with pytest.raises(WeightsError, match="DEFAULT, IMAGENET1K_V1"):
        TransferNetwork(3, backbone="mobilenet_v3_small", weights="IMAGENET1K_V9")
    with pytest.raises(WeightsError, match="no final nn.Linear"):
        TransferNetwork(3, backbone="squeezenet1_0")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(BACKBONES))
def test_one_epoch_through_both_loops(name, tmp_path):
    """The whole path a user takes with --model.init_args.backbone NAME: config, data, both loops.
    No callbacks (checkpoints of ViT-B with AdamW state are a gigabyte); three training steps."""
    from project.lit.cli import main as lightning_main
    from project.manual.cli import run as manual_run

    root = make_class_folders(tmp_path / "images", {"a": 8, "b": 8}, size=(40, 36))
    args = small_resnet_args(
        root,
        tmp_path / "logs",
        f"--model.init_args.backbone={name}",
        "--model.init_args.weights=null",
        f"--model.init_args.backbone_options={json.dumps(BACKBONES[name][2])}",
        "--model.init_args.freeze_backbone_epochs=0",
        "--data.val_fraction=0.25",
        "--data.test_fraction=0.0",
        "--data.augmentation=none",
        "--trainer.max_epochs=1",
        "--trainer.callbacks=[]",
        "--data.batch_size=4",
    )
    cli = lightning_main(["fit", *args])
    assert cli.trainer.global_step == 3  # 12 training images, batches of 4
    assert cli.model.network.backbone_name == name and cli.model.network.head.out_features == 2
    assert torch.isfinite(cli.trainer.callback_metrics["val/loss"])
    manual = manual_run(["fit", *args])
    assert len(manual.history.step_losses) == 3 and len(manual.history.epochs) == 1
    assert all(torch.isfinite(torch.tensor(manual.history.step_losses)))
