"""SmallCNN: a compact convolutional network for small images (a plain nn.Module).

Each block is conv3x3 -> BatchNorm -> ReLU -> 2x2 max-pool, halving the resolution and growing the
channels; global average pooling then makes the head independent of the input size.

    >>> SmallCNN(num_classes=10)(torch.zeros(4, 3, 16, 16)).shape
    torch.Size([4, 10])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        # No bias: the BatchNorm right after it has its own shift, so a bias would be redundant.
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class SmallCNN(nn.Module):
    def __init__(
        self,
        num_classes: int,
        widths: Sequence[int] = (32, 64, 128),
        dropout: float = 0.1,
        in_channels: int = 3,
    ):
        super().__init__()
        blocks, channels = [], in_channels
        for width in widths:
            blocks.append(conv_block(channels, width))
            channels = width
        # Named like the ResNet's parts, so both models read the same way.
        self.backbone = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, num_classes))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images))
