"""project/core/optimizers.py: the injected optimizer gets the named groups with their lr_scale, and
each
schedule steps at its interval and keeps the groups' LR ratio."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from project.core.optimizers import build_optimizer, build_schedule, step_scheduler


def two_groups(ratio: float = 0.1) -> list[dict]:
    return [
        {"name": "backbone", "params": [torch.nn.Parameter(torch.ones(2))], "lr_scale": ratio},
        {"name": "head", "params": [torch.nn.Parameter(torch.ones(2))], "lr_scale": 1.0},
    ]


@pytest.mark.parametrize(
    "lr_scheduler, interval",
    [
        ("onecycle", "step"),
        ("warmup_cosine", "step"),
        (partial(torch.optim.lr_scheduler.StepLR, step_size=5), "epoch"),
        (None, "epoch"),
    ],
)
def test_schedules_keep_the_ratio_and_report_their_interval(lr_scheduler, interval):
    optimizer = build_optimizer(two_groups(), partial(torch.optim.AdamW, lr=0.1))
    schedule = build_schedule(optimizer, lr_scheduler, total_steps=20)
    assert schedule.interval == interval
    head_lrs = []
    for _ in range(20):
        optimizer.step()
        step_scheduler(schedule)
        backbone, head = (group["lr"] for group in optimizer.param_groups)
        assert backbone == pytest.approx(head * 0.1, rel=1e-9)
        head_lrs.append(head)
    if lr_scheduler is None:
        assert set(head_lrs) == {0.1}
    else:
        assert len(set(head_lrs)) > 1  # the schedule moves the learning rate


def test_any_torch_optimizer_gets_the_groups_names_and_scaled_lrs():
    optimizer = build_optimizer(two_groups(0.25), partial(torch.optim.RAdam, lr=0.02))
    assert isinstance(optimizer, torch.optim.RAdam)
    assert [g["name"] for g in optimizer.param_groups] == ["backbone", "head"]
    assert [g["lr"] for g in optimizer.param_groups] == [0.005, 0.02]


def test_reduce_on_plateau_steps_with_its_monitored_metric():
    optimizer = build_optimizer(two_groups(), partial(torch.optim.SGD, lr=0.1))
    plateau = partial(torch.optim.lr_scheduler.ReduceLROnPlateau, patience=0, factor=0.5)
    schedule = build_schedule(optimizer, plateau, total_steps=10, monitor="val/loss")
    assert schedule.monitor == "val/loss"
    step_scheduler(schedule, {"val/loss": 1.0})
    step_scheduler(schedule, {"val/loss": 1.0})  # no better: halved
    assert optimizer.param_groups[1]["lr"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="no such metric"):
        step_scheduler(schedule, {"val/acc": 0.5})


def test_unknown_schedule_names_are_errors():
    optimizer = build_optimizer(two_groups(), partial(torch.optim.SGD, lr=0.1))
    with pytest.raises(ValueError, match="unknown schedule"):
        build_schedule(optimizer, "linear", total_steps=10)
