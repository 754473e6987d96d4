"""Optimizers and learning-rate schedules from plain settings (shared by both training loops).

The LightningModule's ``configure_optimizers`` and the manual loop both call ``build_optimizer`` and
``build_scheduler``, so the two loops optimize in exactly the same way. Parameter groups carry a
``name`` ("model"; "backbone" and "head" for ResNet18), which both loops log as ``lr/<name>``
(Lightning's LearningRateMonitor, because configure_optimizers names the scheduler "lr";
tests/test_manual.py checks that both loops log the same tags).

Schedules (``schedule``):
  - "onecycle":      OneCycleLR, warm up then anneal, stepped every batch;
  - "warmup_cosine": linear warm-up then cosine decay to zero, stepped every batch;
  - "step":          multiply by ``gamma`` every ``step_epochs`` epochs, stepped every epoch;
  - "constant":      the learning rate never changes.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

OptimizerName = Literal["adamw", "sgd"]
Schedule = Literal["onecycle", "warmup_cosine", "step", "constant"]
Interval = Literal["step", "epoch"]


def build_optimizer(
    param_groups: list[dict],
    name: OptimizerName,
    weight_decay: float,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """``param_groups``: dicts with "name", "params" and "lr" (each group's own learning rate)."""
    if name == "adamw":
        return torch.optim.AdamW(param_groups, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(
            param_groups, momentum=momentum, weight_decay=weight_decay, nesterov=True
        )
    raise ValueError(f"unknown optimizer {name!r}: use adamw or sgd")


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    total_steps: int,
    warmup_fraction: float = 0.2,
    step_epochs: int = 10,
    gamma: float = 0.1,
) -> tuple[torch.optim.lr_scheduler.LRScheduler, Interval]:
    """The scheduler and how often to step it ("step": every batch, "epoch": every epoch)."""
    peak_lrs = [group["lr"] for group in optimizer.param_groups]
    if schedule == "onecycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=peak_lrs, total_steps=total_steps, pct_start=warmup_fraction
        )
        return scheduler, "step"
    if schedule == "warmup_cosine":
        warmup = max(1, round(total_steps * warmup_fraction))

        def factor(step: int) -> float:  # multiplies each group's own lr: ratios are kept
            if step < warmup:
                return (step + 1) / warmup
            progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
            return 0.5 * (1.0 + math.cos(math.pi * progress))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor), "step"
    if schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_epochs, gamma), "epoch"
    if schedule == "constant":
        # A scheduler that changes nothing keeps the code (and the logged lr/<group> tags) uniform.
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0), "epoch"
    raise ValueError(
        f"unknown schedule {schedule!r}: use onecycle, warmup_cosine, step or constant"
    )
