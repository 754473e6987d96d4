"""Frozen backbone: a head-only training epoch with and without the feature cache.

    python -m benchmarks.feature_cache

Today's frozen path runs the frozen ResNet18 backbone on every image of every epoch (without an
autograd graph); with ``cache_features`` (project/models/feature_cache.py) the first epoch fills the
cache and every later epoch runs only the head on the stored features (plus hashing each image to
find them). The epoch here: 512 images in batches of 32 at 64 px, AdamW on the head, fp32; the
images are tensors in memory, so decoding is not measured (it is the same with and without the
cache).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from benchmarks.common import interleaved, ratio, spread, table
from project.models.feature_cache import FeatureCache
from project.models.transfer import TransferNetwork

REPEATS, IMAGES, BATCH, SIZE = 3, 512, 32, 64


def head_only_epoch_s(network: TransferNetwork, images, labels) -> float:
    optimizer = torch.optim.AdamW(network.head.parameters(), lr=1e-3)
    network.train()
    started = time.perf_counter()
    for start in range(0, len(images), BATCH):
        batch = slice(start, start + BATCH)
        loss = F.cross_entropy(network(images[batch]), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def main() -> dict:
    torch.manual_seed(0)
    images = torch.randn(IMAGES, 3, SIZE, SIZE)
    labels = torch.randint(0, 10, (IMAGES,))
    frozen = TransferNetwork(10, "resnet18")
    cached = TransferNetwork(10, "resnet18")
    for network in (frozen, cached):
        network.set_stage("head")
    cached.feature_cache = FeatureCache()
    first_epoch = head_only_epoch_s(cached, images, labels)  # fills the cache
    times = interleaved(
        {
            "frozen backbone, every epoch": lambda: head_only_epoch_s(frozen, images, labels),
            "feature cache, after its first epoch": lambda: head_only_epoch_s(
                cached, images, labels
            ),
        },
        REPEATS,
    )
    names = list(times)
    rows = [[name, spread(times[name], " s", 3)] for name in names]
    rows.append(["feature cache, first epoch (fills it)", f"{first_epoch:.3f} s"])
    table(
        f"ResNet18 head-only epoch: {IMAGES} images, batch {BATCH}, {SIZE} px, fp32",
        ["path", "seconds per epoch, median (min-max)"],
        rows,
    )
    print(f"cached / frozen epoch time = {ratio(times[names[1]], times[names[0]]):.3f}")
    return {"times": times, "first_epoch": first_epoch}


if __name__ == "__main__":
    main()
