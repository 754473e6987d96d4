"""Train and eval transform presets (torchvision.transforms.v2) on uint8 image tensors.

Eval: resize to a square ``image_size`` (or, for photos, the shorter side then a center crop),
scale to float in [0, 1], normalize.
Train: the same plus augmentation that suits the data:
  - "digits":  small random rotation, shift and zoom, one per image, applied to the whole batch
    at once on the training device (``BatchRandomAffine``, called by the DataModule after the
    batch is moved). No horizontal flip: a flipped 2 is no 2.
  - "natural": random resized crop, horizontal flip, colour jitter (photos of objects), per image
    in the DataLoader.
  - "trivialaugment", "randaugment": the "natural" crop and flip, then torchvision's
    TrivialAugmentWide or RandAugment policy (random colour / geometry operations), per image.
  - "none":    no augmentation.

Why "digits" is per batch: per image, torchvision's RandomAffine cost about 0.3 ms an image on
this CPU, more than the SmallCNN's training step per image, so the loader was the bottleneck
(benchmarks/input_pipeline.py). On a batch it is two tensor operations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

Augmentation = Literal["digits", "natural", "trivialaugment", "randaugment", "none"]


def resize(image_size: int) -> v2.Resize:
    return v2.Resize((image_size, image_size), antialias=True)


class ToNormalizedFloat(nn.Module):
    """The last step of every preset: uint8 0..255 -> float 0..1 -> (x - mean) / std.

    The same as torchvision's ``v2.ToDtype(torch.float32, scale=True)`` + ``v2.Normalize`` (to
    within 3e-7), in one step: 9 instead of 36 microseconds an image here, which matters when the
    DataLoader runs it for every image of every epoch (benchmarks/input_pipeline.py).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(-1, 1, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image.to(torch.float32).div_(255).sub_(self.mean).div_(self.std)


def to_normalized_float(mean: Sequence[float], std: Sequence[float]) -> list[nn.Module]:
    return [ToNormalizedFloat(mean, std)]


def eval_transform(
    image_size: int, mean: Sequence[float], std: Sequence[float], crop_ratio: float | None = None
) -> v2.Compose:
    """crop_ratio None: squash to a square. Else keep the aspect ratio as torchvision's weights'
    own preprocessing does: shorter side to image_size x crop_ratio (256/224), center crop."""
    if crop_ratio is None:
        size = [resize(image_size)]
    else:
        shorter_side = round(image_size * crop_ratio)
        size = [v2.Resize(shorter_side, antialias=True), v2.CenterCrop(image_size)]
    return v2.Compose([*size, *to_normalized_float(mean, std)])


def inference_transform(settings: dict) -> v2.Compose:
    """The eval transform a checkpoint's or an ONNX file's inference settings describe
    (``image_size``, ``mean``, ``std`` and, for photos, ``crop_ratio``;
    ``ImageData.inference_settings``): what ``python -m project serve`` applies to an upload."""
    return eval_transform(
        int(settings["image_size"]), settings["mean"], settings["std"], settings.get("crop_ratio")
    )


def only_square_resize(augmentation: Augmentation, crop_ratio: float | None) -> bool:
    """Whether both transforms are ``resize(image_size)`` then normalizing, nothing random per
    image ("digits" moves its random affine to the batch; square evaluation). The DataModule then
    caches the resized images and transforms whole batches (project/data/cache.py, datasets.py)."""
    return augmentation in ("digits", "none") and crop_ratio is None


def train_transform(
    image_size: int, mean: Sequence[float], std: Sequence[float], augmentation: Augmentation
) -> v2.Compose:
    if augmentation == "digits":
        augment = [resize(image_size)]  # the random affine runs per batch: BatchRandomAffine
    elif augmentation == "natural":
        augment = [
            v2.RandomResizedCrop((image_size, image_size), scale=(0.5, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        ]
    elif augmentation in ("trivialaugment", "randaugment"):  # photos: crop, flip, then a policy
        # (torchvision's reference recipe; the policies act on uint8 images, before normalizing)
        policy = v2.TrivialAugmentWide() if augmentation == "trivialaugment" else v2.RandAugment()
        augment = [
            v2.RandomResizedCrop((image_size, image_size), scale=(0.5, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            policy,
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


class BatchRandomAffine(nn.Module):
    """A random rotation, shift and zoom for every image of a normalized N x C x H x W batch.

    Each image gets its own angle in [-degrees, degrees], shift in [-translate, translate] of its
    size and zoom in [scale[0], scale[1]], drawn from torch's random generator (so seeding makes it
    repeatable, in both training loops alike). Pixels brought in from outside the image get
    ``fill``: the normalized value of black, the digits' background.
    """

    def __init__(
        self,
        fill: Sequence[float],
        degrees: float = 10.0,
        translate: float = 0.1,
        scale: tuple[float, float] = (0.9, 1.1),
    ):
        super().__init__()
        self.register_buffer("fill", torch.tensor(fill, dtype=torch.float32).view(1, -1, 1, 1))
        self.degrees, self.translate, self.scale = degrees, translate, scale

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n = images.shape[0]
        uniform = torch.rand(n, 4, device=images.device)  # angle, zoom, shift x, shift y
        angle = (uniform[:, 0] * 2 - 1) * math.radians(self.degrees)
        zoom = self.scale[0] + uniform[:, 1] * (self.scale[1] - self.scale[0])
        shift = (uniform[:, 2:] * 2 - 1) * self.translate * 2  # grid units: the image spans 2
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        # The matrix maps output pixels to input pixels (the inverse of the image's motion).
        theta = torch.stack(
            [torch.stack([cos, -sin, -shift[:, 0]], 1), torch.stack([sin, cos, -shift[:, 1]], 1)],
            dim=1,
        )
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        fill = self.fill.to(images.device, images.dtype)
        moved = F.grid_sample(images - fill, grid, mode="bilinear", align_corners=False)
        return moved + fill  # outside the image: 0 + fill = the background
