"""The optimizer over named parameter groups, and its LR schedule (shared by both loops).

    optimizer = build_optimizer(groups, partial(torch.optim.AdamW, lr=3e-3))
    schedule = build_schedule(optimizer, "onecycle", total_steps=1000)
    schedule.scheduler.step()   # after every optimizer step ("step") or validation ("epoch")

The optimizer is injected: any callable that takes parameter groups and returns a
``torch.optim.Optimizer`` (what ``model.init_args.optimizer`` in the YAML becomes). Each group
carries a ``name`` ("model"; "backbone" and "head" for ResNet18), logged as ``lr/<name>`` by both
loops, and an ``lr_scale`` that multiplies the optimizer's learning rate (the backbone's 0.1).

Schedules (``lr_scheduler``):
  - "onecycle":      OneCycleLR, warm up then anneal, stepped every batch;
  - "warmup_cosine": linear warm-up then cosine decay to zero, stepped every batch;
  - any torch.optim.lr_scheduler class (a callable taking the optimizer), stepped every epoch
    (after validation) or every step; ReduceLROnPlateau is given the monitored metric;
  - None: the learning rate never changes.
The first two are named because they need the run's step count, which the config cannot know.
Plain PyTorch, no Lightning import.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

NamedSchedule = Literal["onecycle", "warmup_cosine"]
Interval = Literal["step", "epoch"]


@dataclass
class Schedule:
    """The optimizer, its scheduler, when to step it, and (ReduceLROnPlateau) what it watches."""

    optimizer: torch.optim.Optimizer
    scheduler: object  # an LRScheduler, or ReduceLROnPlateau
    interval: Interval
    monitor: str | None = None  # set only for ReduceLROnPlateau: step it with this metric


def build_optimizer(param_groups: list[dict], optimizer: Callable) -> torch.optim.Optimizer:
    """``optimizer(param_groups)``, then each group's lr multiplied by its ``lr_scale``."""
    built = optimizer(param_groups)
    for group in built.param_groups:
        group["lr"] = group["lr"] * group.get("lr_scale", 1.0)
    return built


def warmup_cosine(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    """The factor of LambdaLR: linear warm-up, then cosine decay to zero."""
    warmup = max(1, round(total_steps * warmup_fraction))

    def factor(step: int) -> float:  # multiplies each group's own lr: ratios are kept
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_schedule(
    optimizer: torch.optim.Optimizer,
    lr_scheduler: NamedSchedule | Callable | None,
    total_steps: int,
    warmup_fraction: float = 0.2,
    interval: Interval = "epoch",
    monitor: str = "val/loss",
) -> Schedule:
    """The scheduler and how often to step it ("step": every batch, "epoch": every epoch)."""
    if lr_scheduler == "onecycle":
        peak_lrs = [group["lr"] for group in optimizer.param_groups]
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=peak_lrs, total_steps=total_steps, pct_start=warmup_fraction
        )
        return Schedule(optimizer, scheduler, "step")
    if lr_scheduler == "warmup_cosine":
        factor = warmup_cosine(total_steps, warmup_fraction)
        return Schedule(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor), "step")
    if lr_scheduler is None:
        # A scheduler that changes nothing keeps the code (and the logged lr/<group> tags) uniform.
        constant = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
        return Schedule(optimizer, constant, "epoch")
    if isinstance(lr_scheduler, str):
        raise ValueError(f"unknown schedule {lr_scheduler!r}: use onecycle, warmup_cosine, a "
                         "torch.optim.lr_scheduler class or null")  # fmt: skip
    scheduler = lr_scheduler(optimizer)
    plateau = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    return Schedule(optimizer, scheduler, interval, monitor if plateau else None)


def step_scheduler(schedule: Schedule, metrics: dict | None = None) -> None:
    """One scheduler step; ReduceLROnPlateau takes the monitored metric (both loops' rule)."""
    if schedule.monitor is None:
        schedule.scheduler.step()
        return
    if not metrics or schedule.monitor not in metrics:
        raise ValueError(f"lr_scheduler_monitor {schedule.monitor!r}: no such metric")
    schedule.scheduler.step(float(metrics[schedule.monitor]))
