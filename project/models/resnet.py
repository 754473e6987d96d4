"""ResNet18 for transfer learning: the default of ``TransferNetwork`` (project/models/transfer.py).

Kept as the name the older code, tests and benchmarks use; every torchvision classifier works
through ``TransferNetwork(num_classes, backbone=NAME)``. Weight sources (``weights``):
  - a torchvision weights name: "IMAGENET1K_V1", "ResNet18_Weights.IMAGENET1K_V1" or "DEFAULT";
    read from $TORCH_HOME/hub/checkpoints/<file> (TORCH_HOME: ~/.cache/torch), else downloaded;
  - a local file: a ``.pth`` state_dict of torchvision's resnet18, or a ``.ckpt`` written by this
    project's ``fit``, Lightning or manual loop (only its backbone is taken; the head is new);
  - null / "none": random initialisation.

Offline: put the file torchvision expects (resnet18-f37072fd.pth for IMAGENET1K_V1) in
$TORCH_HOME/hub/checkpoints/, or pass its path as ``weights``; ``python -m project weights
resnet18`` says where. A missing file with no network is an error that names the file, the folder
and the URL: never a hang, never a silent fall-back to random weights.
"""

from __future__ import annotations

from torchvision.models import WeightsEnum

from project.models.transfer import BACKBONE_PREFIX, TransferNetwork, read_local_weights
from project.models.weights import WeightsError, cache_file, weights_enum

__all__ = [
    "BACKBONE_PREFIX",
    "ResNetTransfer",
    "WeightsError",
    "read_local_weights",
    "torchvision_cache_file",
]


def torchvision_cache_file(weights: WeightsEnum):
    """Where torchvision's weights API looks for (and saves) this weights file."""
    return cache_file(weights)


def parse_weights_name(name: str) -> WeightsEnum | None:
    """ResNet18_Weights for "IMAGENET1K_V1", "ResNet18_Weights.IMAGENET1K_V1" or "DEFAULT"."""
    return weights_enum("resnet18", name)


class ResNetTransfer(TransferNetwork):
    """torchvision's ResNet18 with its ``fc`` layer replaced by a new head for ``num_classes``."""

    def __init__(
        self,
        num_classes: int,
        weights: str | None = "IMAGENET1K_V1",
        train_bn: bool = False,
        download: bool = True,
    ):
        super().__init__(num_classes, "resnet18", weights, train_bn, download)
