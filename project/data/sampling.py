"""Class imbalance: inverse-frequency class weights, and a sampler that draws classes evenly.

Two remedies for a folder with far more images of one class than another (both loops):

    --data.sampler weighted          each training epoch draws images with probability
                                     1 / (images of their class): every class is drawn about
                                     equally often (rare images repeat, common ones are skipped)
    --model.init_args.class_weights auto   the loss counts a mistake on image i with weight
                                     total / (classes x count[class of i]) (or give a list)

    weights = inverse_frequency_weights([900, 45])     # tensor([0.525, 10.5])
    sampler = ClassBalancedSampler(labels, seed=42)    # a DistributedSampler: call set_epoch()

Under DDP (several processes) the sampler is correct by construction: every process draws the same
sequence of ``len(labels)`` indices (same seed, same epoch, same weights) and keeps every
world_size-th one, starting at its rank, exactly as torch's DistributedSampler splits a shuffle.
Because it is a DistributedSampler, Lightning does not wrap it again and the manual loop keeps it.
Plain torch, no Lightning import.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler


def class_counts(labels: Sequence[int], num_classes: int) -> list[int]:
    return torch.bincount(torch.as_tensor(list(labels), dtype=torch.long), minlength=num_classes)[
        :num_classes
    ].tolist()


def inverse_frequency_weights(counts: Sequence[int]) -> torch.Tensor:
    """total / (classes x count) per class: 1.0 for every class when balanced (scikit-learn's
    ``class_weight="balanced"``). A class with no training images gets weight 0."""
    counts_t = torch.as_tensor(list(counts), dtype=torch.float32)
    total, classes = counts_t.sum(), len(counts_t)
    weights = total / (classes * counts_t.clamp(min=1))
    return torch.where(counts_t > 0, weights, torch.zeros_like(weights))


def imbalance_ratio(counts: Sequence[int]) -> float:
    """Images of the largest class / images of the smallest (inf when a class is empty)."""
    smallest = min(counts)
    return math.inf if smallest == 0 else max(counts) / smallest


class ClassBalancedSampler(DistributedSampler):
    """Draws ``len(labels)`` indices per epoch, with replacement, each with probability
    proportional to 1 / count(its class); this process keeps its share (see the module text)."""

    def __init__(
        self,
        labels: Sequence[int],
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ):
        """``num_replicas`` / ``rank``: the process group's when None (1 and 0 without one)."""
        distributed = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if distributed else 1
        if rank is None:
            rank = dist.get_rank() if distributed else 0
        replicas = num_replicas
        # DistributedSampler's bookkeeping (num_samples per process, set_epoch); no dataset needed.
        super().__init__(list(labels), num_replicas=replicas, rank=rank, shuffle=False, seed=seed)
        labels_t = torch.as_tensor(list(labels), dtype=torch.long)
        classes = int(labels_t.max()) + 1
        per_class = inverse_frequency_weights(class_counts(labels_t.tolist(), classes))
        self.weights = per_class[labels_t].double()

    def __iter__(self) -> Iterator[int]:
        # Seeded by (seed, epoch): the same draw on every process and in a resumed run.
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        drawn = torch.multinomial(self.weights, self.total_size, True, generator=generator)
        return iter(drawn[self.rank : self.total_size : self.num_replicas].tolist())
