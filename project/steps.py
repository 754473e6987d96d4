"""The pieces of a training step that both loops share, so they can never drift apart.

The LightningModules (project/classifier.py, the Lightning loop) and project/manual/loop.py (the
plain PyTorch loop) both call these functions; tests/test_manual.py proves the two loops end
with bit-identical weights. Plain PyTorch, no Lightning import.

    from project.steps import forward, classification_loss, check_finite
    logits = forward(network, images, channels_last=False)
    loss = classification_loss(logits, labels, label_smoothing=0.1)
    check_finite(loss, epoch=0, step=12)      # raises LossNotFinite before the optimizer step
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from project.errors import LossNotFinite


def forward(network: nn.Module, images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """The network's logits. With ``channels_last`` the batch is made NHWC, like the weights
    (``prepare_network``): a mismatch would make every convolution convert its input."""
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return network(images)


def loss_floor(num_classes: int, label_smoothing: float) -> float:
    """The lowest loss label smoothing allows: with smoothing e the target of each image is
    1 - e + e/K on its class and e/K on the K - 1 others, and cross-entropy against it is smallest,
    at that target's entropy, when the prediction equals it. A perfect model is scored this, not 0
    (10 classes, e = 0.1: 0.500), so a loss that stays above 0.5 at 99.9% accuracy is no fault."""
    if label_smoothing <= 0:
        return 0.0
    right, other = (
        1 - label_smoothing + label_smoothing / num_classes,
        label_smoothing / num_classes,
    )
    return -(right * math.log(right) + (num_classes - 1) * other * math.log(other))


def classification_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    label_smoothing: float = 0.0,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy, taken in float32: under mixed precision the logits may be bf16/fp16.

    ``labels``: class indices, or class probabilities (N x classes) for MixUp / CutMix
    (project/augment.py). ``class_weights``: one weight per class (model.class_weights,
    project/data/sampling.py): each image's loss counts with the weight of its class, and the
    mean is taken over those weights (without label smoothing exactly torch's ``weight=``).
    Not torch's ``weight=`` itself: with label smoothing it also weighs the smoothing term of
    every class by that class's weight, which pulls every prediction towards the rarest class
    (on a 20:1 folder test accuracy fell to 36%)."""
    if class_weights is None:
        return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
    losses = F.cross_entropy(
        logits.float(), labels, label_smoothing=label_smoothing, reduction="none"
    )
    weights = class_weights.to(logits.device)
    per_image = weights[labels] if labels.ndim == 1 else labels.float() @ weights
    return (losses * per_image).sum() / per_image.sum()


def check_finite(
    loss: torch.Tensor, epoch: int, step: int, any_process: Callable[[bool], bool] = bool
) -> None:
    """Stop before a NaN or infinite loss reaches the weights (or a checkpoint): exit status 1.

    ``any_process``: with several processes all must stop at the same step, or the others would
    wait forever for this one (the manual loop passes ``distributed.any_process``).
    Reads the loss on the host (on a GPU, a device sync).
    """
    if any_process(not torch.isfinite(loss)):
        raise LossNotFinite(
            f"loss is {loss.item()} at epoch {epoch}, step {step}: training stopped "
            "(lower the learning rate?)"
        )


def sum_dtype(device: torch.device) -> torch.dtype:
    """The dtype of the epoch's loss sums on the device: float64, the sum a Python float would
    make (the same in both loops); MPS has no float64, so float32 there."""
    return torch.float32 if device.type == "mps" else torch.float64
