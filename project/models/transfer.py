"""Transfer learning for any torchvision classifier: a pretrained ``backbone`` and a new ``head``.

    net = TransferNetwork(num_classes=10, backbone="efficientnet_b0", weights="DEFAULT")
    net.set_stage("head")        # only the head trains (the backbone is frozen)
    net.set_stage("last_block")  # the head and the backbone's last stage
    net.set_stage("all")         # everything

Weights (``weights``, see project/models/weights.py): DEFAULT or a weights enum name (torchvision's
file, from the cache folder), a local .pth/.ckpt file, or null (random). The torchvision route is
the standard call ``get_model(name, weights=...)``, then the new head replaces the old one.

Frozen parameters keep ``requires_grad = False``: the optimizer skips them (they have no
gradient) and autograd builds no graph through a fully frozen backbone. BatchNorm layers whose
parameters are frozen stay in eval mode (their pretrained running statistics are kept) unless
``train_bn``. Plain nn.Module, no Lightning: the manual loop trains exactly this network.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torchvision.models import get_model

from project.models.backbones import build_backbone, last_block_parameters
from project.models.weights import (
    WeightsError,
    ensure_cached,
    is_random,
    known_names,
    weights_enum,
)
from project.runs.checkpoints import CheckpointError, network_state

Stage = Literal["head", "last_block", "all"]
BACKBONE_PREFIX = "backbone."  # the backbone's keys in a project checkpoint's network


def read_local_weights(path: Path) -> dict[str, torch.Tensor]:
    """Backbone tensors from a torchvision-style .pth or a project .ckpt, keyed like torchvision."""
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsError(f"{path}: not a readable PyTorch weights file ({error})") from error
    if "state_dict" in loaded or "model" in loaded:  # a project checkpoint, from either loop
        try:
            state = network_state(loaded, path)
        except CheckpointError as error:
            raise WeightsError(str(error)) from None
        backbone = {
            key.removeprefix(BACKBONE_PREFIX): tensor
            for key, tensor in state.items()
            if key.startswith(BACKBONE_PREFIX)
        }
        if not backbone:
            raise WeightsError(f"{path}: checkpoint holds no {BACKBONE_PREFIX}* tensors")
        return backbone
    return loaded


class TransferNetwork(nn.Module):
    """torchvision's ``backbone`` model with its final layer replaced by a new ``head``."""

    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet18",
        weights: str | None = None,
        train_bn: bool = False,
        download: bool = True,
        backbone_options: dict | None = None,
    ):
        super().__init__()
        self.backbone_name = backbone
        self.backbone_options = dict(backbone_options or {})
        self.backbone, in_features, self.head_path = build_backbone(
            backbone, **self.backbone_options
        )
        self.head = nn.Linear(in_features, num_classes)
        self.train_bn = train_bn
        self.last_block = set(last_block_parameters(backbone, self.backbone))
        # project/models/feature_cache.py, when switched on
        self.feature_cache: Callable | None = None
        self.load_backbone(weights, download)

    # ------------------------------------------------------------------ weights

    def load_backbone(self, weights: str | None, download: bool = True) -> None:
        """Fill the backbone from ``weights`` (see the module docstring); None keeps it random."""
        if is_random(weights):
            return
        named = weights_enum(self.backbone_name, str(weights))
        if named is not None:
            state = self.torchvision_state(named, download)
        elif Path(weights).suffix in (".pth", ".pt", ".ckpt") or Path(weights).exists():
            state = read_local_weights(Path(weights))
        else:
            raise WeightsError(
                f"weights {weights!r} is neither a file nor a torchvision name for "
                f"{self.backbone_name} ({known_names(self.backbone_name)})"
            )
        old_head = self.head_path + "."
        state = {k: v for k, v in state.items() if not k.startswith(old_head)}
        try:
            # strict: every backbone tensor must come from the file, with the same shape.
            self.backbone.load_state_dict(state, strict=True)
        except RuntimeError as error:  # PyTorch lists the missing, unexpected and resized keys
            raise WeightsError(
                f"weights {weights} do not fit {self.backbone_name}, mismatched keys: "
                + " ".join(str(error).split())
            ) from None
        self.feature_cache_clear()

    def torchvision_state(self, weights, download: bool) -> dict[str, torch.Tensor]:
        ensure_cached(weights, download)  # offline and missing: one line, exit status 2
        try:
            # The standard call: torchvision reads the file from $TORCH_HOME/hub/checkpoints.
            pretrained = get_model(self.backbone_name, weights=weights, **self.backbone_options)
        except ValueError as error:  # e.g. vit_*: image_size must match the weights' size
            raise WeightsError(f"{weights}: {error}") from None
        return pretrained.state_dict()

    # ------------------------------------------------------------------ freezing

    def set_stage(self, stage: Stage) -> None:
        """Which parameters train: the head only, also the last block, or all of them."""
        for name, parameter in self.backbone.named_parameters():
            parameter.requires_grad = stage == "all" or (
                stage == "last_block" and name in self.last_block
            )
        self.train(self.training)  # re-apply the BatchNorm rule below

    @property
    def stage(self) -> Stage:
        trainable = {n for n, p in self.backbone.named_parameters() if p.requires_grad}
        if not trainable:
            return "head"
        return "last_block" if trainable == self.last_block else "all"

    @property
    def backbone_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.backbone.parameters())

    def set_backbone_frozen(self, frozen: bool) -> None:
        self.set_stage("head" if frozen else "all")

    def train(self, mode: bool = True) -> TransferNetwork:
        super().train(mode)
        if mode and not self.train_bn:
            # A frozen BatchNorm keeps its pretrained running statistics.
            frozen = self.backbone_frozen
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    parameters = list(module.parameters())
                    if (frozen or parameters) and not any(p.requires_grad for p in parameters):
                        module.eval()
        return self

    # ------------------------------------------------------------------ forward

    def features(self, images: torch.Tensor) -> torch.Tensor:
        if self.feature_cache is not None and self.backbone_frozen:
            return self.feature_cache(self.backbone, images)  # for_inference() removes the cache
        if self.training and self.backbone_frozen and torch.is_grad_enabled():
            # A frozen backbone needs no autograd graph: no activations are kept for backward.
            with torch.no_grad():
                return self.backbone(images)
        return self.backbone(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    def for_inference(self) -> TransferNetwork:
        """This network as it is deployed: eval mode, no feature cache, every parameter frozen.
        What training adds (the cache, the frozen backbone's no-grad region) is not in the graph
        that export, quantize and serve trace, so a frozen and an unfrozen backbone export the
        same graph."""
        self.feature_cache = None
        self.requires_grad_(False)
        return self.eval()

    def feature_cache_clear(self) -> None:
        if self.feature_cache is not None:
            self.feature_cache.clear()
