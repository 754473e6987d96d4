"""Train and eval transform presets (torchvision.transforms.v2) on uint8 image tensors.

Eval: resize to a square ``image_size``, scale to float in [0, 1], normalize.
Train: the same plus augmentation that suits the data:
  - "digits":  small random rotation, shift and zoom. No horizontal flip: a flipped 2 is no 2.
  - "natural": random resized crop, horizontal flip, colour jitter (photos of objects).
  - "none":    no augmentation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import torch
from torchvision.transforms import v2

Augmentation = Literal["digits", "natural", "none"]


def resize(image_size: int) -> v2.Resize:
    return v2.Resize((image_size, image_size), antialias=True)


def to_normalized_float(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    """The last steps of every preset: uint8 0..255 -> float 0..1 -> (x - mean) / std."""
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]


def eval_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    return v2.Compose([resize(image_size), *to_normalized_float(mean, std)])


def train_transform(
    image_size: int, mean: Sequence[float], std: Sequence[float], augmentation: Augmentation
) -> v2.Compose:
    if augmentation == "digits":
        augment = [
            resize(image_size),
            v2.RandomAffine(degrees=10, translate=(0.1, 0.1), scale=(0.9, 1.1)),
        ]
    elif augmentation == "natural":
        augment = [
            v2.RandomResizedCrop((image_size, image_size), scale=(0.5, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        ]
    elif augmentation == "none":
        augment = [resize(image_size)]
    else:
        raise ValueError(f"unknown augmentation {augmentation!r}: use digits, natural or none")
    return v2.Compose([*augment, *to_normalized_float(mean, std)])


def channel_mean_std(images: Iterable[torch.Tensor]) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images (any sizes) on the 0..1 scale."""
    total = torch.zeros(3, dtype=torch.float64)
    total_sq = torch.zeros(3, dtype=torch.float64)
    count = 0
    for image in images:
        pixels = image.to(torch.float64).div_(255).flatten(1)
        total += pixels.sum(dim=1)
        total_sq += pixels.square().sum(dim=1)
        count += pixels.shape[1]
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(1e-12).sqrt()
    return mean.tolist(), std.tolist()
