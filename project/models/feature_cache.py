"""Frozen-backbone feature cache: compute each image's features once, then train only the head.

    python -m project fit --config configs/resnet18.yaml --model.init_args.cache_features true \
        --model.init_args.freeze_backbone_epochs null --data.augmentation none

While the backbone is frozen, its output for an image never changes, so recomputing it every epoch
is wasted work: the cache keeps it, keyed by a hash of the image tensor's bytes (the same image,
bit for bit, gives the same key; nothing else needs an index). The backbone runs in eval mode
under ``torch.no_grad`` for the missing images only. It pays off only if images repeat exactly,
so augmentation must be off (the classifier refuses other settings); once the backbone trains,
the network stops using the cache. Measured in benchmarks/feature_cache.py.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from project.core.errors import InputError

MAX_ITEMS = 500_000  # more distinct images than any dataset this is meant for: augmentation is on


class FeatureCacheError(InputError, RuntimeError):
    """The cache saw far more distinct images than a dataset has: the images are augmented."""


def image_key(image: torch.Tensor) -> bytes:
    data = image.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()
    return hashlib.blake2b(data, digest_size=16).digest()


class FeatureCache:
    """Maps each image's bytes to the frozen backbone's features for it (kept on the CPU)."""

    def __init__(self, max_items: int = MAX_ITEMS):
        self.features: dict[bytes, torch.Tensor] = {}
        self.max_items = max_items
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self.features)

    def clear(self) -> None:
        self.features.clear()

    def __call__(self, backbone: nn.Module, images: torch.Tensor) -> torch.Tensor:
        keys = [image_key(image) for image in images]
        missing = [i for i, key in enumerate(keys) if key not in self.features]
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            self.fill(backbone, images[missing], [keys[i] for i in missing])
        stacked = torch.stack([self.features[key] for key in keys])
        return stacked.to(images.device, non_blocking=True)

    def fill(self, backbone: nn.Module, images: torch.Tensor, keys: list[bytes]) -> None:
        if len(self.features) + len(keys) > self.max_items:
            raise FeatureCacheError(
                f"feature cache: more than {self.max_items} distinct images; augmented images "
                "differ every epoch, so the cache needs data.augmentation: none"
            )
        modes = [(module, module.training) for module in backbone.modules()]
        backbone.eval()  # eval features: no dropout, BatchNorm's running statistics
        with torch.no_grad():
            computed = backbone(images).float().cpu()
        for module, training in modes:  # each module's own mode back (frozen BatchNorm: eval)
            module.training = training
        for key, row in zip(keys, computed, strict=True):
            self.features[key] = row
