"""project/optim.py: each schedule steps at its interval and keeps the groups' LR ratio."""

from __future__ import annotations

import pytest
import torch

from project.optim import build_optimizer, build_scheduler


def two_groups(lr: float = 0.1, ratio: float = 0.1) -> list[dict]:
    return [
        {"name": "backbone", "params": [torch.nn.Parameter(torch.ones(2))], "lr": lr * ratio},
        {"name": "head", "params": [torch.nn.Parameter(torch.ones(2))], "lr": lr},
    ]


@pytest.mark.parametrize(
    "schedule, interval",
    [("onecycle", "step"), ("warmup_cosine", "step"), ("step", "epoch"), ("constant", "epoch")],
)
def test_schedules_keep_the_ratio_and_report_their_interval(schedule, interval):
    optimizer = build_optimizer(two_groups(), "adamw", weight_decay=0.0)
    scheduler, got_interval = build_scheduler(optimizer, schedule, total_steps=20, step_epochs=5)
    assert got_interval == interval
    head_lrs = []
    for _ in range(20):
        optimizer.step()
        scheduler.step()
        backbone, head = (group["lr"] for group in optimizer.param_groups)
        assert backbone == pytest.approx(head * 0.1, rel=1e-9)
        head_lrs.append(head)
    if schedule == "constant":
        assert set(head_lrs) == {0.1}
    else:
        assert len(set(head_lrs)) > 1  # the schedule moves the learning rate


def test_unknown_names_are_errors():
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizer(two_groups(), "adam", weight_decay=0.0)
    optimizer = build_optimizer(two_groups(), "sgd", weight_decay=0.0)
    with pytest.raises(ValueError, match="unknown schedule"):
        build_scheduler(optimizer, "linear", total_steps=10)
