"""The optimizer, LR schedule, mixed precision and gradient clipping of the manual loop.

Each function is one thing Lightning does from the config for us:

    configure_optimizers(classifier, batches, settings)  # Lightning: configure_optimizers() and
                                                          # trainer.estimated_stepping_batches
    with autocast(settings): ...                          # Lightning: the precision plugin
    clip_gradients(network, optimizer, scaler, settings)  # Lightning: Trainer(gradient_clip_val)

The optimizer and schedule come from the same builders as the LightningModule's (project/optim.py),
so both loops optimize identically.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from project.manual.settings import LoopSettings
from project.optim import build_optimizer, build_scheduler


def total_training_steps(batches_per_epoch: int, settings: LoopSettings) -> int:
    """Lightning: trainer.estimated_stepping_batches (the length of a per-step LR schedule)."""
    steps = batches_per_epoch * settings.max_epochs
    return steps if settings.max_steps == -1 else min(steps, settings.max_steps)


def configure_optimizers(classifier, batches_per_epoch: int, settings: LoopSettings):
    """``(optimizer, scheduler, interval)``: interval "step" or "epoch" says when to step it."""
    hp = classifier.hparams
    groups = classifier.param_groups()  # named: "model", or "backbone" and "head"
    optimizer = build_optimizer(groups, hp.optimizer, hp.weight_decay, hp.momentum)
    scheduler, interval = build_scheduler(
        optimizer,
        hp.schedule,
        total_steps=total_training_steps(batches_per_epoch, settings),
        warmup_fraction=hp.warmup_fraction,
        step_epochs=hp.step_epochs,
        gamma=hp.gamma,
    )
    return optimizer, scheduler, interval


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
