"""Seeded, stratified train/val/test split of sample indices.

Each class is shuffled with the seed and cut by the fractions, so every split keeps the class
balance, the three splits are disjoint and together hold every sample, and the same seed always
gives the same split.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch


def stratified_split(
    labels: Sequence[int], val_fraction: float, test_fraction: float, seed: int
) -> tuple[list[int], list[int], list[int]]:
    """Return (train, val, test) index lists."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in [0, 1) "
            "and leave some samples for training"
        )
    by_class: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_class[label].append(index)
    generator = torch.Generator().manual_seed(seed)
    train, val, test = [], [], []
    for label in sorted(by_class):
        members = by_class[label]
        order = torch.randperm(len(members), generator=generator).tolist()
        shuffled = [members[i] for i in order]
        n_val = round(len(members) * val_fraction)
        n_test = round(len(members) * test_fraction)
        val += shuffled[:n_val]
        test += shuffled[n_val : n_val + n_test]
        train += shuffled[n_val + n_test :]
    return sorted(train), sorted(val), sorted(test)
