"""project/core/loss.py and project/core/steps.py, the step pieces both loops share: each function
against what it promises,
in process and fast (tests/test_shared_steps.py proves the loops equal end to end)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from project.core.errors import LossNotFinite
from project.core.loss import check_finite, classification_loss, loss_floor
from project.core.steps import forward, sum_dtype


class LayoutSpy(nn.Module):
    """Records whether its input arrived NHWC (channels_last) and returns a fixed function of it."""

    def __init__(self):
        super().__init__()
        self.saw_channels_last = None

    def forward(self, images):
        self.saw_channels_last = images.is_contiguous(memory_format=torch.channels_last)
        return images.flatten(1)[:, :3] * 2


def test_forward_hands_the_batch_over_channels_last_only_when_asked():
    images = torch.randn(2, 3, 4, 4)
    spy = LayoutSpy()
    plain = forward(spy, images, channels_last=False)
    assert spy.saw_channels_last is False
    nhwc = forward(spy, images, channels_last=True)
    assert spy.saw_channels_last is True
    torch.testing.assert_close(nhwc, plain, rtol=0, atol=0)  # same values, other layout


def test_the_loss_is_torchs_cross_entropy_taken_in_float32():
    logits = torch.randn(6, 4).to(torch.bfloat16)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    loss = classification_loss(logits, labels, label_smoothing=0.1)
    assert loss.dtype == torch.float32
    expected = F.cross_entropy(logits.float(), labels, label_smoothing=0.1)
    torch.testing.assert_close(loss, expected, rtol=0, atol=0)
    assert not torch.equal(loss, classification_loss(logits, labels))  # smoothing is passed on


def test_class_weights_equal_torchs_weight_without_smoothing():
    logits = torch.randn(8, 3)
    labels = torch.tensor([0, 0, 1, 2, 2, 2, 1, 0])
    weights = torch.tensor([1.0, 4.0, 0.5])
    loss = classification_loss(logits, labels, class_weights=weights)
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels, weight=weights))


def test_class_weights_weigh_each_image_by_its_class_and_average_over_the_weights():
    logits = torch.randn(3, 2)
    labels = torch.tensor([0, 1, 1])
    weights = torch.tensor([3.0, 1.0])
    per_image = F.cross_entropy(logits, labels, label_smoothing=0.2, reduction="none")
    expected = (3 * per_image[0] + per_image[1] + per_image[2]) / 5
    loss = classification_loss(logits, labels, label_smoothing=0.2, class_weights=weights)
    torch.testing.assert_close(loss, expected)


def test_class_weights_with_mixed_labels_weigh_by_the_label_probabilities():
    logits = torch.randn(2, 2)
    soft = torch.tensor([[0.25, 0.75], [1.0, 0.0]])  # MixUp / CutMix targets
    weights = torch.tensor([2.0, 6.0])
    per_image = F.cross_entropy(logits, soft, reduction="none")
    image_weights = torch.tensor([0.25 * 2 + 0.75 * 6, 2.0])
    expected = (per_image * image_weights).sum() / image_weights.sum()
    torch.testing.assert_close(classification_loss(logits, soft, class_weights=weights), expected)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_check_finite_stops_on_a_non_finite_loss_naming_epoch_and_step(value):
    with pytest.raises(LossNotFinite) as stopped:
        check_finite(torch.tensor(value), epoch=3, step=17)
    message = str(stopped.value)
    hint = "training stopped (lower the learning rate?)"
    assert message == f"loss is {value} at epoch 3, step 17: {hint}"


def test_check_finite_lets_a_finite_loss_pass_and_asks_every_process():
    asked = []

    def any_process(bad: bool) -> bool:
        asked.append(bad)
        return bad

    check_finite(torch.tensor(0.5), epoch=0, step=0, any_process=any_process)
    with pytest.raises(LossNotFinite):
        check_finite(torch.tensor(float("nan")), epoch=0, step=1, any_process=any_process)
    assert asked == [False, True]
    with pytest.raises(LossNotFinite):  # another process saw a NaN: this one stops too
        check_finite(torch.tensor(0.5), epoch=0, step=2, any_process=lambda bad: True)


def test_loss_sums_are_float64_except_on_mps():
    assert sum_dtype(torch.device("cpu")) == torch.float64
    assert sum_dtype(torch.device("mps")) == torch.float32


def test_loss_floor_is_the_smallest_loss_label_smoothing_allows():
    """A near-perfect model's loss stays near 0.5 with label smoothing 0.1 (10 classes): the
    floor is reached by predicting the smoothed target itself, and no other prediction is lower."""
    classes, smoothing = 10, 0.1
    floor = loss_floor(classes, smoothing)
    assert abs(floor - 0.5004) < 1e-3 and loss_floor(classes, 0.0) == 0.0
    labels = torch.arange(classes)
    target = torch.full((classes, classes), smoothing / classes) + torch.eye(classes) * (
        1 - smoothing
    )
    at_target = classification_loss(target.log(), labels, label_smoothing=smoothing).item()
    assert abs(at_target - floor) < 1e-5
    confident = classification_loss(torch.eye(classes) * 20, labels, label_smoothing=smoothing)
    nudged = classification_loss(
        target.log()
        + 0.1 * torch.randn(classes, classes, generator=torch.Generator().manual_seed(0)),
        labels,
        smoothing,
    )
    assert confident.item() > floor + 0.5 and nudged.item() > floor  # over-confidence costs
