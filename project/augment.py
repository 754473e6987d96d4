"""MixUp and CutMix: batch-level augmentation on the training device, with soft targets.

    --model.init_args.mixup_alpha 0.2    blend two images: x = l*a + (1-l)*b, same for targets
    --model.init_args.cutmix_alpha 1.0   paste a box of b into a; the target mixes by box area

l is drawn from Beta(alpha, alpha) once per batch; the partner of each image is the batch in
reverse order (torchvision.transforms.v2.MixUp / CutMix do the same). With both set, each batch
uses one of the two, chosen at random. Both loops call ``mix_batch`` after the batch reaches the
device (ImageClassifier.training_step, project/manual/loop.py train_one_epoch), and train on the
returned soft targets with project/steps.py ``classification_loss`` (cross-entropy accepts class
probabilities). With both alphas 0 (the default) nothing is drawn from the random generators, so
the default run is unchanged. Plain torch, no Lightning import.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def mix_batch(
    images: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, targets): targets are class indices when nothing is mixed, else probabilities
    (N x num_classes). Random draws come from torch's global generator (seeded by the run)."""
    if mixup_alpha <= 0 and cutmix_alpha <= 0:
        return images, labels
    # Host-side draws from CPU tensors: no device sync, whatever the training device.
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or float(torch.rand(())) < 0.5)
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    # One draw per batch, on the host (one number per batch, not per image).
    share = float(torch.distributions.Beta(alpha, alpha).sample())
    partner = images.flip(0)
    one_hot = F.one_hot(labels, num_classes).float()
    if use_cutmix:
        images, share = _paste_box(images, partner, share)
    else:
        images = images * share + partner * (1 - share)
    targets = one_hot * share + one_hot.flip(0) * (1 - share)
    return images, targets


def _paste_box(
    images: torch.Tensor, partner: torch.Tensor, share: float
) -> tuple[torch.Tensor, float]:
    """CutMix: a box covering about (1 - share) of the image, at a random centre, taken from
    ``partner``; returns the images and the share of each image that is still its own."""
    height, width = images.shape[-2:]
    cut = (1 - share) ** 0.5
    box_h, box_w = int(height * cut), int(width * cut)
    centre_y = int(torch.randint(height, ()))
    centre_x = int(torch.randint(width, ()))
    top, bottom = max(centre_y - box_h // 2, 0), min(centre_y + box_h // 2, height)
    left, right = max(centre_x - box_w // 2, 0), min(centre_x + box_w // 2, width)
    mixed = images.clone()
    mixed[..., top:bottom, left:right] = partner[..., top:bottom, left:right]
    kept = 1 - (bottom - top) * (right - left) / (height * width)  # the box after clipping
    return mixed, kept


def hard_labels(targets: torch.Tensor) -> torch.Tensor:
    """Class indices for accuracy: the most weighted class of a soft target."""
    return targets.argmax(dim=1) if targets.ndim == 2 else targets
