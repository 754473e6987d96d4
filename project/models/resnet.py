"""ResNet18 for transfer learning: a pretrained ``backbone`` and a new linear ``head``.

Weight sources (``weights``):
  - a torchvision weights name: "IMAGENET1K_V1" ("ResNet18_Weights.IMAGENET1K_V1", "DEFAULT");
    read from $TORCH_HOME/hub/checkpoints/<file> (TORCH_HOME: ~/.cache/torch), else downloaded;
  - a local file: a ``.pth`` state_dict of torchvision's resnet18, or a ``.ckpt`` written by this
    project's ``fit``, Lightning or manual loop (only its backbone is taken; the head is new);
  - null / "none": random initialisation.

Offline: put the file torchvision expects (resnet18-f37072fd.pth for IMAGENET1K_V1) in
$TORCH_HOME/hub/checkpoints/, or pass its path as ``weights``. A missing file with no network is an
error that names the file and folder: never a hang, never a silent fall-back to random weights.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

from project.checkpoints import CheckpointError, network_state
from project.errors import InputError

BACKBONE_PREFIX = "backbone."  # ResNetTransfer's backbone keys in a project checkpoint
DOWNLOAD_TIMEOUT_S = 20


class WeightsError(InputError, RuntimeError):
    """Pretrained weights could not be found or do not fit the model."""


def torchvision_cache_file(weights: ResNet18_Weights) -> Path:
    """Where torchvision's weights API looks for (and saves) this weights file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def parse_weights_name(name: str) -> ResNet18_Weights | None:
    """ResNet18_Weights for "IMAGENET1K_V1", "ResNet18_Weights.IMAGENET1K_V1" or "DEFAULT"."""
    short = name.split(".")[-1]
    if short == "DEFAULT":
        return ResNet18_Weights.DEFAULT
    return ResNet18_Weights.__members__.get(short)


def read_torchvision_weights(weights: ResNet18_Weights, download: bool) -> dict[str, torch.Tensor]:
    path = torchvision_cache_file(weights)
    if not path.is_file():
        hint = (
            f"pretrained weights {weights} not found: expected the file {path.name} in "
            f"{path.parent} (set TORCH_HOME to move that folder), or pass a local file with "
            "--model.init_args.weights PATH.pth"
        )
        if not download:
            raise WeightsError(hint + " (downloading is off: download: false)")
        path.parent.mkdir(parents=True, exist_ok=True)
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # no network must fail fast, not hang
        try:
            torch.hub.download_url_to_file(weights.url, str(path), progress=False)
        except Exception as error:  # any network failure ends in the same clear message
            raise WeightsError(f"{hint}; downloading {weights.url} failed: {error}") from error
        finally:
            socket.setdefaulttimeout(previous)
    return torch.load(path, map_location="cpu", weights_only=True)


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
            raise WeightsError(
                f"{path}: checkpoint holds no {BACKBONE_PREFIX}* tensors (not a ResNet run?)"
            )
        return backbone
    return loaded


class ResNetTransfer(nn.Module):
    """torchvision's ResNet18 with its ``fc`` layer replaced by a new head for ``num_classes``."""

    def __init__(
        self,
        num_classes: int,
        weights: str | None = "IMAGENET1K_V1",
        train_bn: bool = False,
        download: bool = True,
    ):
        super().__init__()
        self.backbone = resnet18(weights=None)
        in_features = self.backbone.fc.in_features  # read it, never hard-code it (512 for ResNet18)
        self.backbone.fc = nn.Identity()
        self.head = nn.Linear(in_features, num_classes)
        self.train_bn = train_bn
        self.load_backbone(weights, download)

    def load_backbone(self, weights: str | None, download: bool = True) -> None:
        """Fill the backbone from ``weights`` (see the module docstring); None keeps it random."""
        if weights is None or weights.lower() == "none":
            return
        named = parse_weights_name(weights)
        if named is not None:
            state = read_torchvision_weights(named, download)
        elif Path(weights).suffix in (".pth", ".pt", ".ckpt") or Path(weights).exists():
            state = read_local_weights(Path(weights))
        else:
            known = ", ".join(ResNet18_Weights.__members__)
            raise WeightsError(
                f"weights {weights!r} is neither a file nor a torchvision name ({known})"
            )
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}  # the old head
        try:
            # strict: every backbone tensor must come from the file, with the same shape.
            self.backbone.load_state_dict(state, strict=True)
        except RuntimeError as error:  # PyTorch lists the missing, unexpected and resized keys
            raise WeightsError(
                f"weights {weights} do not fit ResNet18, mismatched keys: {error}"
            ) from None

    # ------------------------------------------------------------------ freezing

    @property
    def backbone_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.backbone.parameters())

    def set_backbone_frozen(self, frozen: bool) -> None:
        for parameter in self.backbone.parameters():
            parameter.requires_grad = not frozen
        self.train(self.training)  # re-apply the BatchNorm rule below

    def train(self, mode: bool = True) -> ResNetTransfer:
        super().train(mode)
        if mode and self.backbone_frozen and not self.train_bn:
            # A frozen backbone keeps its pretrained BatchNorm running statistics.
            for module in self.backbone.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # A frozen backbone needs no autograd graph: no activations are kept for backward.
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.backbone_frozen):
            features = self.backbone(images)
        return self.head(features)
