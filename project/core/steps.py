"""The pieces of a training step that both loops share besides the loss (project/core/loss.py).

The LightningModules (project/lit/classifier.py, the Lightning loop) and project/manual/loop.py (the
plain PyTorch loop) both call these functions; tests/test_manual.py proves the two loops end
with bit-identical weights. Plain PyTorch, no Lightning import.

    from project.core.steps import forward, sum_dtype
    logits = forward(network, images, channels_last=False)
"""

from __future__ import annotations

import torch
from torch import nn


def forward(network: nn.Module, images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """The network's logits. With ``channels_last`` the batch is made NHWC, like the weights
    (``prepare_network``): a mismatch would make every convolution convert its input."""
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return network(images)


def sum_dtype(device: torch.device) -> torch.dtype:
    """The dtype of the epoch's loss sums on the device: float64, the sum a Python float would
    make (the same in both loops); MPS has no float64, so float32 there."""
    return torch.float32 if device.type == "mps" else torch.float64
