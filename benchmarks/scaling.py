"""Scaling: training time against the number of images and against the image size.

    python -m benchmarks.scaling

7a: one epoch of training steps (the manual loop's step, fp32, no validation) over the digits'
training split repeated 1x, 2x and 4x (the same files listed again), SmallCNN at 16 px from the
memory cache: seconds per 1000 images should stay flat (linear cost in samples).
7b: per-image training-step time of both models at 32, 64, 128 and 224 px (batch 16).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from benchmarks.common import spread, table, training_step_ms
from project.data.datasets import ImageDataset
from project.lit.datamodule import ImageDataModule
from project.models.cnn import SmallCNN
from project.models.resnet import ResNetTransfer

REPEATS = 3


def epoch_seconds(dataset, network, augment) -> float:
    loader = DataLoader(dataset, batch_size=64, shuffle=True, drop_last=True)
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-3)
    network.train()
    start = time.perf_counter()
    for images, labels in loader:
        loss = F.cross_entropy(network(augment(images)), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def main() -> dict:
    data = ImageDataModule(cache_images=True)
    data.setup("fit")
    train = data.datasets["train"]
    rows, per_thousand = [], {}
    for factor in (1, 2, 4):
        repeated = ImageDataset(train.samples * factor, train.class_names, train.transform,
                                train.images * factor)  # fmt: skip
        torch.manual_seed(0)
        seconds = [
            epoch_seconds(repeated, SmallCNN(10), data.augment_batch) for _ in range(REPEATS)
        ]
        per_thousand[factor] = [s / len(repeated) * 1000 for s in seconds]
        rows.append([f"{factor}x ({len(repeated)} images)", spread(seconds, " s", 2),
                     spread(per_thousand[factor], " s", 3)])  # fmt: skip
    table("7a. One training epoch against dataset size (SmallCNN, 16 px, fp32, augmented)",
          ["training images", "epoch", "per 1000 images"], rows)  # fmt: skip

    rows = []
    for size in (32, 64, 128, 224):
        row = [f"{size} px"]
        for build in (lambda: SmallCNN(10), lambda: ResNetTransfer(10, weights=None)):
            torch.manual_seed(0)
            images, labels = torch.randn(16, 3, size, size), torch.randint(0, 10, (16,))
            steps = 3 if size >= 128 else 5
            ms = [training_step_ms(build(), images, labels, steps) / 16 for _ in range(2)]
            row.append(spread(ms, " ms", 2))
        rows.append(row)
    table("7b. Training-step time per image against image size (batch 16, fp32)",
          ["image size", "SmallCNN ms/image", "ResNet18 ms/image"], rows)  # fmt: skip
    return per_thousand


if __name__ == "__main__":
    main()
