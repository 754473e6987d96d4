"""project/metrics.py: per-class precision / recall / F1, macro and weighted means, top-5 and the
confusion matrix, checked against numbers worked out by hand (and against batches split
differently: the result must not depend on how the images were batched)."""

from __future__ import annotations

import pytest
import torch

from project.metrics import EvaluationMetrics


def logits_for(predicted: list[int], classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(predicted), classes).float()


def test_per_class_macro_and_weighted_match_hand_computed_values():
    # true:      0 0 0 0 1 1 2      predicted: 0 0 0 1 1 0 2
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    metrics = EvaluationMetrics(3)
    metrics.update(logits_for([0, 0, 0, 1, 1, 0, 2], 3), labels)
    result = metrics.compute()
    # class 0: precision 3/4, recall 3/4; class 1: 1/2, 1/2; class 2: 1, 1
    assert result["precision"].tolist() == pytest.approx([0.75, 0.5, 1.0])
    assert result["recall"].tolist() == pytest.approx([0.75, 0.5, 1.0])
    assert result["f1"].tolist() == pytest.approx([0.75, 0.5, 1.0])
    assert result["support"].tolist() == [4, 2, 1]
    assert float(result["recall_macro"]) == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    assert float(result["f1_weighted"]) == pytest.approx((0.75 * 4 + 0.5 * 2 + 1.0) / 7)
    assert result["confusion"].tolist() == [[3, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert "acc_top5" not in result  # 3 classes: top-5 says nothing


def test_batching_does_not_change_the_result_and_reset_forgets():
    torch.manual_seed(0)
    logits, labels = torch.randn(50, 8), torch.randint(0, 8, (50,))
    whole, parts = EvaluationMetrics(8), EvaluationMetrics(8)
    whole.update(logits, labels)
    for start in range(0, 50, 7):
        parts.update(logits[start : start + 7], labels[start : start + 7])
    a, b = whole.compute(), parts.compute()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    top5 = (logits.topk(5, dim=1).indices == labels[:, None]).any(dim=1).float().mean()
    assert float(a["acc_top5"]) == pytest.approx(float(top5))
    whole.reset()
    whole.update(logits[:5], labels[:5])
    assert int(whole.compute()["support"].sum()) == 5


def test_scalars_are_the_logged_names():
    metrics = EvaluationMetrics(6)
    metrics.update(torch.randn(12, 6), torch.arange(12) % 6)
    names = set(EvaluationMetrics.scalars(metrics.compute(), "val"))
    assert names == {"val/precision_macro", "val/recall_macro", "val/f1_macro", "val/acc_top5"}


def test_a_result_survives_the_reset_that_follows_it():
    """Both loops log the accuracy after reset(): the result must be a copy of the counts."""
    metrics = EvaluationMetrics(3)
    metrics.update(torch.eye(3), torch.arange(3))
    result = metrics.compute()
    metrics.reset()
    assert EvaluationMetrics.accuracy(result) == 1.0
    assert int(metrics.confusion.sum()) == 0
