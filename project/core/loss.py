"""The loss: cross-entropy as both loops compute it, its floor under label smoothing, and the stop
on a NaN or infinite loss. Plain PyTorch, no Lightning import.

The recipe (project/core/recipe.py, ``ClassifierRecipe.loss``) calls these for both loops: the
LightningModule's ``training_step`` (project/lit/classifier.py) and the manual loop
(project/manual/loop.py).

    from project.core.loss import classification_loss, check_finite, loss_floor
    loss = classification_loss(logits, labels, label_smoothing=0.1)
    check_finite(loss, epoch=0, step=12)      # raises LossNotFinite before the optimizer step
    loss_floor(10, 0.1)                       # 0.500: the lowest loss that smoothing allows
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from project.core.errors import LossNotFinite


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
    (project/core/mixing.py). ``class_weights``: one weight per class (model.class_weights,
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
