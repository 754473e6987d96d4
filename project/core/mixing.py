"""MixUp and CutMix: batch-level augmentation on the training device, with soft targets.

    --model.init_args.mixup_alpha 0.2    blend two images: x = l*a + (1-l)*b, same for targets
    --model.init_args.cutmix_alpha 1.0   paste a box of b into a; the target mixes by box area

torchvision's own ``transforms.v2.MixUp`` and ``CutMix`` do the work: l is drawn from
Beta(alpha, alpha) once per batch, the partner of each image is the one before it in the batch
(the batch rolled by one), and with both set each batch uses one of the two, chosen at random
(``RandomChoice``). Both loops call ``mix_batch`` after the batch reaches the device (the
LightningModule's training_step, project/manual/loop.py train_one_epoch), and train on the
returned soft targets with project/core/loss.py ``classification_loss`` (cross-entropy accepts class
probabilities). With both alphas 0 (the default) nothing is built or drawn from the random
generators, so the default run is unchanged. Plain torch and torchvision, no Lightning import.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2


def mix_batch(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, targets): targets are class indices when nothing is mixed, else probabilities
    (N x num_classes). Random draws come from torch's global generator (seeded by the run), on
    the host: a number or two per batch, no device sync."""
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        return images, labels
    mixes = []
    if cutmix_alpha > 0:
        mixes.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
    if mixup_alpha > 0:
        mixes.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
    mix = mixes[0] if len(mixes) == 1 else v2.RandomChoice(mixes)
    return mix(images, labels)


def hard_labels(targets: torch.Tensor) -> torch.Tensor:
    """Class indices for accuracy: the most weighted class of a soft target."""
    return targets.argmax(dim=1) if targets.ndim == 2 else targets
