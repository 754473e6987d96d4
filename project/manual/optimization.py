"""The optimizer, LR schedule, mixed precision and gradient clipping of the manual loop.

Each function is one thing Lightning does from the config for us:

    configure_optimizers(recipe, batches, settings)  # Lightning: configure_optimizers() and
                                                      # trainer.estimated_stepping_batches
    with autocast(settings): ...                          # Lightning: the precision plugin
    clip_gradients(network, optimizer, scaler, settings)  # Lightning: Trainer(gradient_clip_val)

The optimizer and schedule come from the same recipe as the LightningModule's
(project/core/recipe.py), so both loops optimize identically.
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, SequentialSampler

from project.core.optimizers import Schedule
from project.manual.settings import LoopSettings


def batch_limit(batches: int, limit: int | float | None) -> int:
    """Batches to run of ``batches`` (Lightning: limit_train_batches / limit_val_batches): all
    for None, a count for an int, a share for a float (1.0: all)."""
    if limit is None:
        return batches
    if isinstance(limit, float):
        return int(batches * limit)
    return min(batches, limit)


def sequential(loader: DataLoader) -> DataLoader:
    """The same DataLoader without its shuffle (Lightning: overfit_batches turns the training
    shuffle off, data_connector._resolve_overfit_batches), so each epoch sees the same batches."""
    if isinstance(loader.sampler, SequentialSampler) or isinstance(loader.dataset, IterableDataset):
        return loader  # a stream (data.shards) keeps its order: LitData shuffles the chunks
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        sampler=SequentialSampler(loader.dataset),
        drop_last=loader.drop_last,
        num_workers=loader.num_workers,
        persistent_workers=loader.persistent_workers,
        pin_memory=loader.pin_memory,
    )


def total_training_steps(batches_per_epoch: int, settings: LoopSettings) -> int:
    """Lightning: trainer.estimated_stepping_batches (the length of a per-step LR schedule)."""
    batches = batch_limit(batches_per_epoch, settings.limit_train_batches)
    steps = math.ceil(batches / settings.accumulate_grad_batches) * max(settings.max_epochs, 1)
    return steps if settings.max_steps == -1 else min(steps, settings.max_steps)


def configure_optimizers(recipe, batches_per_epoch: int, settings: LoopSettings) -> Schedule:
    """The optimizer over the recipe's named groups and its schedule (core/optimizers.py)."""
    return recipe.configure_optimizers(total_training_steps(batches_per_epoch, settings))


def grad_scaler(settings: LoopSettings) -> torch.amp.GradScaler:
    """float16 gradients can underflow to zero: the scaler multiplies the loss before backward and
    divides the gradients after. bfloat16 and float32 do not need it (enabled=False: a no-op)."""
    return torch.amp.GradScaler(settings.device.type, enabled=settings.precision == "16-mixed")


def autocast(settings: LoopSettings) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward pass and the loss (Lightning: the precision plugin)."""
    if settings.precision == "32-true":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if settings.precision == "bf16-mixed" else torch.float16
    return torch.autocast(settings.device.type, dtype=dtype)


def clip_gradients(
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    settings: LoopSettings,
) -> None:
    """Lightning: Trainer(gradient_clip_val=..., gradient_clip_algorithm=...)."""
    if not settings.gradient_clip_val:
        return
    scaler.unscale_(optimizer)  # clip the true gradients, not the float16-scaled ones
    if settings.gradient_clip_algorithm == "value":
        nn.utils.clip_grad_value_(network.parameters(), settings.gradient_clip_val)
    else:
        nn.utils.clip_grad_norm_(network.parameters(), settings.gradient_clip_val)
